// Small hand-drawn SVG charts for the tier0 console (no library): line charts over a sliding
// time window and a timeline of RegionPair transitions. Each call redraws the whole chart.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const W = 600, H = 150, PAD_L = 44, PAD_R = 8, PAD_T = 10, PAD_B = 20;

function el(name, attrs, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 10000) return (v / 1000).toFixed(0) + "k";
  if (v >= 1000) return (v / 1000).toFixed(1) + "k";
  if (v >= 10 || v === 0) return v.toFixed(0);
  return v.toFixed(1);
}

function axes(svg, t0, t1, max) {
  const y = (v) => PAD_T + (H - PAD_T - PAD_B) * (1 - v / max);
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(el("line", { x1: PAD_L, x2: W - PAD_R, y1: y(max * f), y2: y(max * f), stroke: "#22314f" }));
    svg.appendChild(el("text", { x: PAD_L - 4, y: y(max * f) + 4, "text-anchor": "end" }, fmt(max * f)));
  }
  const span = Math.round((t1 - t0) / 1000);
  svg.appendChild(el("text", { x: PAD_L, y: H - 5 }, `-${span}s`));
  svg.appendChild(el("text", { x: W - PAD_R, y: H - 5, "text-anchor": "end" }, "now"));
  return y;
}

// series: [{name, color, points: [[tMillis, value], ...]}]; bands: [[startMillis, endMillis | null]],
// shaded behind the lines (a band without an end is still open).
// The window grows with the data (at least 30 s) up to `maxWindowMs`, so a fresh page is readable.
function lineChart(svg, series, maxWindowMs, bands = []) {
  svg.replaceChildren();
  const t1 = Date.now();
  let first = t1;
  for (const s of series) if (s.points.length && s.points[0][0] < first) first = s.points[0][0];
  const windowMs = Math.min(maxWindowMs, Math.max(30000, t1 - first));
  const t0 = t1 - windowMs;
  let max = 0;
  for (const s of series) for (const [t, v] of s.points) if (t >= t0 && v > max) max = v;
  max = niceMax(max);
  const y = axes(svg, t0, t1, max);
  const x = (t) => PAD_L + (W - PAD_L - PAD_R) * ((t - t0) / windowMs);
  for (const [start, end] of bands) {
    if ((end || t1) < t0) continue;
    const xs = x(Math.max(start, t0)), xe = Math.max(x(end || t1), xs + 2);
    svg.appendChild(el("rect", {
      x: xs, y: PAD_T, width: xe - xs, height: H - PAD_T - PAD_B, fill: "#f59e0b", "fill-opacity": 0.18,
      "data-band": end ? "closed" : "open",
    }));
  }
  let legendX = PAD_L + 6;
  for (const s of series) {
    const pts = s.points.filter(([t]) => t >= t0);
    if (pts.length > 1) {
      svg.appendChild(el("polyline", {
        points: pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
        fill: "none", stroke: s.color, "stroke-width": 2, "data-series": s.name,
      }));
    }
    const last = pts.length ? pts[pts.length - 1][1] : null;
    const label = `${s.name}${last === null ? "" : " " + fmt(last)}`;
    svg.appendChild(el("text", { x: legendX, y: PAD_T + 10, fill: s.color, style: `fill:${s.color}` }, label));
    legendX += 12 + label.length * 6.5;
  }
}

// transitions: [{type, from, to, startedAt (ms), completedAt (ms|null), durationSeconds, outcome}]
function timelineChart(svg, transitions, windowMs) {
  svg.replaceChildren();
  const t1 = Date.now(), t0 = t1 - windowMs;
  const x = (t) => PAD_L + (W - PAD_L - PAD_R) * ((Math.max(t, t0) - t0) / windowMs);
  svg.appendChild(el("line", { x1: PAD_L, x2: W - PAD_R, y1: H - PAD_B, y2: H - PAD_B, stroke: "#22314f" }));
  svg.appendChild(el("text", { x: PAD_L, y: H - 5 }, `-${Math.round(windowMs / 60000)} min`));
  svg.appendChild(el("text", { x: W - PAD_R, y: H - 5, "text-anchor": "end" }, "now"));
  const shown = transitions.filter((tr) => (tr.completedAt || t1) >= t0).slice(-6);
  if (!shown.length) {
    svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no transition in this window"));
    return;
  }
  shown.forEach((tr, i) => {
    const row = PAD_T + i * 19;
    const xs = x(tr.startedAt), xe = Math.max(x(tr.completedAt || t1), xs + 3);
    const color = tr.outcome && tr.outcome !== "Succeeded" ? "#ef4444" : tr.completedAt ? "#22c55e" : "#f59e0b";
    svg.appendChild(el("rect", { x: xs, y: row, width: xe - xs, height: 14, rx: 2, fill: color, "data-transition": i }));
    const dur = tr.durationSeconds != null ? `${tr.durationSeconds.toFixed(2)} s` : "running";
    const label = `${tr.type || "transition"} ${tr.from || "?"}→${tr.to || "?"} ${dur}`;
    const anchorRight = xe > W - 200;
    svg.appendChild(el("text", {
      x: anchorRight ? xs - 4 : xe + 4, y: row + 11, "text-anchor": anchorRight ? "end" : "start",
    }, label));
  });
}

window.Tier0Charts = { lineChart, timelineChart };
