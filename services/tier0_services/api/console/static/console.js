// The tier0 console: polls the region API it was served by (through the global Service, so the
// active region answers), draws both regions, the RegionPair and live charts, and drives the
// seed's buttons. Every call has a timeout, so a dead dependency shows as an error, never a hang.
"use strict";

const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(250, Number(params.get("poll")) || 2000);
const TIMEOUT_MS = 4000;
const SWITCH_TIMEOUT_MS = 75000; // the API waits up to TIER0_FAILOVER_TIMEOUT_SECONDS (60 s)
const CHART_WINDOW_MS = 5 * 60 * 1000;
const TIMELINE_WINDOW_MS = 15 * 60 * 1000;
const TOKEN_KEY = "tier0.apiToken";
const $ = (id) => document.getElementById(id);

const state = {
  lastOverview: null, // {t, messages}
  mps: [], ok: [], warn: [], alert: [], latency: [], latencyFailed: [],
  bursts: [], // [startMillis, endMillis | null]: the traffic bursts, shaded on the latency chart
  transitions: new Map(), // key -> {type, from, to, startedAt, completedAt, durationSeconds, outcome}
  lastPhase: null,
};

// --- HTTP ------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status, region, ms) {
    super(message);
    this.status = status; this.region = region; this.ms = ms;
  }
}

async function api(path, { method = "GET", body, token, timeout = TIMEOUT_MS } = {}) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeout);
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const began = performance.now();
  let res;
  try {
    res = await fetch(path, {
      method, headers, signal: ctrl.signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    const ms = performance.now() - began;
    const why = err.name === "AbortError" ? `no answer within ${timeout / 1000} s` : `network error: ${err.message}`;
    throw new ApiError(`${method} ${path}: ${why}`, 0, null, ms);
  } finally {
    clearTimeout(timer);
  }
  const text = await res.text();
  const ms = performance.now() - began;
  const region = res.headers.get("X-Tier0-Region");
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { detail: text }; }
  if (!res.ok) {
    throw new ApiError(`${res.status}: ${detailOf(data)}`, res.status, region, ms);
  }
  return { data, ms, region, status: res.status };
}

function detailOf(data) {
  if (!data) return "no detail";
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return JSON.stringify(data);
}

// --- small DOM helpers -----------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const num = (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"));
const badge = (text) => h("span", { class: `badge ${text || ""}` }, text || "unknown");
const ago = (iso) => (iso ? `${new Date(iso).toLocaleTimeString()}` : "—");

function dl(pairs) {
  return h("dl", {}, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function table(rows, columns) {
  if (!rows.length) return h("p", { class: "muted" }, "none");
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, cell(r[c])))))));
}

function cell(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return typeof v === "number" ? num(v) : String(v);
}

function showBanner(message) {
  const b = $("error-banner");
  if (message) { b.textContent = message; b.hidden = false; } else { b.hidden = true; b.textContent = ""; }
}

function pushPoint(list, t, v) {
  list.push([t, v]);
  while (list.length && list[0][0] < t - CHART_WINDOW_MS) list.shift();
}

// --- polling ---------------------------------------------------------------------------------------

async function poll() {
  const t = Date.now();
  try {
    const { data, ms } = await api("/api/console/overview");
    pushPoint(state.latency, t, ms);
    renderOverview(data, ms);
    showBanner(null);
    setPoll("ok", `live · answered by ${data.answered_by} · ${ms.toFixed(0)} ms · ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    pushPoint(state.latency, t, err.ms || 0);
    pushPoint(state.latencyFailed, t, err.ms || 0);
    const who = err.region ? `${err.region} answered` : "the region API";
    showBanner(`Status unavailable — ${who}: ${err.message} (retrying every ${POLL_MS / 1000} s; the panels show the last answer)`);
    setPoll("error", `error · ${new Date().toLocaleTimeString()}`);
    markStale();
  }
  drawCharts();
  setTimeout(poll, POLL_MS);
}

function setPoll(kind, text) {
  $("poll-state").dataset.state = kind;
  $("poll-text").textContent = text;
}

function markStale() {
  for (const card of document.querySelectorAll(".region")) card.classList.add("stale");
}

function renderOverview(o, ms) {
  state.regionNames = o.regions.map((r) => r.name);
  $("answered-by").textContent = `answered by ${o.answered_by} in ${ms.toFixed(0)} ms`;
  const active = o.pair && o.pair.active_region;
  $("regions").replaceChildren(...o.regions.map((r) => {
    const isActive = active ? r.name === active : r.status === "active";
    return h("div", {
      class: `region${isActive ? " active" : ""}${r.name === o.answered_by ? " answering" : ""}`,
      "data-region": r.name,
    },
      h("h3", {}, r.name, " ", badge(r.status)),
      dl([
        ["role", badge(r.role)],
        ["version", r.version || "—"],
        ["active devices", num(r.active_devices)],
        ["active users", num(r.active_users)],
        ["replication lag", r.lag_bytes === null ? "—" : `${num(r.lag_bytes)} bytes`],
        ["healthy", r.healthy === null ? "—" : r.healthy ? "yes" : "no"],
        ["source", r.source],
      ]),
      r.error ? h("p", { class: "muted" }, r.error) : null);
  }));

  const p = o.pair;
  if (!p) {
    $("pair").replaceChildren(h("p", { class: "muted" }, `RegionPair: ${o.pair_error || "not available"}`));
  } else {
    const lt = p.last_transition;
    $("pair").replaceChildren(dl([
      [`RegionPair ${p.name}`, h("span", { id: "pair-phase" }, badge(p.phase))],
      ["active region", h("span", { id: "pair-active" }, p.active_region || "—")],
      ["desired region", p.desired_region || "—"],
      ["epoch", num(p.epoch)],
      ["last transition", h("span", { id: "pair-last" }, lt
        ? `${lt.type || "?"} ${lt.from_region || "?"} → ${lt.to_region || "?"}, ${lt.outcome || ""} in ${
          lt.duration_seconds != null ? lt.duration_seconds.toFixed(3) + " s" : "?"} (${ago(lt.completed_at)})`
        : "none yet")],
    ]));
    trackTransitions(p);
  }

  const t = Date.parse(o.timestamp);
  const m = o.telemetry.messages_total;
  if (state.lastOverview && t > state.lastOverview.t && m >= state.lastOverview.messages) {
    pushPoint(state.mps, Date.now(), (m - state.lastOverview.messages) / ((t - state.lastOverview.t) / 1000));
  }
  state.lastOverview = { t, messages: m };
  const s = o.telemetry.devices_by_state, now = Date.now();
  pushPoint(state.ok, now, s.OK || 0);
  pushPoint(state.warn, now, s.WARN || 0);
  pushPoint(state.alert, now, s.ALERT || 0);
}

function trackTransitions(p) {
  const lt = p.last_transition;
  if (lt && lt.started_at) {
    const key = `${lt.started_at}|${lt.to_region}`;
    state.transitions.delete("running");
    state.transitions.set(key, {
      type: lt.type, from: lt.from_region, to: lt.to_region, outcome: lt.outcome,
      startedAt: Date.parse(lt.started_at),
      completedAt: lt.completed_at ? Date.parse(lt.completed_at) : null,
      durationSeconds: lt.duration_seconds,
    });
  }
  if (p.in_transition) {
    if (!state.transitions.has("running")) {
      state.transitions.set("running", { type: p.phase, from: p.active_region, to: p.desired_region,
        startedAt: Date.now(), completedAt: null, durationSeconds: null });
    }
  } else {
    state.transitions.delete("running");
  }
  state.lastPhase = p.phase;
}

function drawCharts() {
  const C = window.Tier0Charts;
  C.lineChart($("chart-mps"), [{ name: "msg/s", color: "#38bdf8", points: state.mps }], CHART_WINDOW_MS);
  C.lineChart($("chart-states"), [
    { name: "OK", color: "#22c55e", points: state.ok },
    { name: "WARN", color: "#f59e0b", points: state.warn },
    { name: "ALERT", color: "#ef4444", points: state.alert },
  ], CHART_WINDOW_MS);
  C.lineChart($("chart-latency"), [
    { name: "poll ms", color: "#a78bfa", points: state.latency },
    { name: "failed", color: "#ef4444", points: state.latencyFailed },
  ], CHART_WINDOW_MS, state.bursts);
  const list = [...state.transitions.values()].sort((a, b) => a.startedAt - b.startedAt);
  C.timelineChart($("chart-transitions"), list, TIMELINE_WINDOW_MS);
}

// --- token -----------------------------------------------------------------------------------------

function renderToken() {
  const has = !!sessionStorage.getItem(TOKEN_KEY);
  $("token-state").textContent = has ? "token set (this tab)" : "no token";
  $("token-forget").hidden = !has;
}

function askToken() {
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) return Promise.resolve(saved);
  const dialog = $("token-dialog");
  $("token-input").value = "";
  return new Promise((resolve) => {
    const done = (value) => {
      $("token-form").onsubmit = null; $("token-cancel").onclick = null;
      dialog.close();
      resolve(value);
    };
    $("token-form").onsubmit = (ev) => {
      ev.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      renderToken();
      done(value);
    };
    $("token-cancel").onclick = () => done(null);
    dialog.showModal();
  });
}

async function withToken(call) {
  const token = await askToken();
  if (!token) throw new ApiError("cancelled: no token given", 0, null, 0);
  try {
    return await call(token);
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      renderToken();
      err.message = `token rejected — ${err.message}`;
    }
    throw err;
  }
}

// --- the buttons -----------------------------------------------------------------------------------

function result(title, meta, ...body) {
  $("action-result").replaceChildren(h("h3", {}, title), meta ? h("p", { class: "muted" }, meta) : null, ...body);
}

function resultError(title, err) {
  $("action-result").replaceChildren(h("h3", {}, title), h("p", { class: "banner", role: "alert" }, err.message));
}

const answeredBy = (r) => `answered by ${r.region || "?"} in ${r.ms.toFixed(0)} ms`;

const actions = {
  async users() {
    const [a, c] = await Promise.all([api("/api/users/active?limit=10"), api("/api/users/connections?limit=5")]);
    result("Active Users", answeredBy(a),
      dl([["active users", num(a.data.active_users)], ["as of", ago(a.data.as_of)],
        ["active connections", num(c.data.active_connections)],
        ["users with connections", num(c.data.users_with_connections)]]),
      h("h4", {}, "Most recently active"),
      table(a.data.users, ["user_id", "ip_address", "client", "location", "connections", "last_activity_utc"]));
  },
  async devices() {
    const [a, al] = await Promise.all([api("/api/devices/active"), api("/api/devices/alerts?limit=10")]);
    result("Active Devices", answeredBy(a),
      dl([["active devices", num(a.data.active_devices)], ["known devices", num(a.data.known_devices)],
        ["sites", num(a.data.sites)], ["window", `${a.data.window_seconds} s`],
        ["devices in ALERT", num(al.data.total_alerts)]]),
      h("h4", {}, "Newest alerts"),
      table(al.data.devices.map((d) => ({ ...d, state: d.status.code, message: d.status.message })),
        ["device_id", "device_type", "site_id", "state", "message", "timestamp_utc"]));
  },
  async version() {
    const regions = state.regionNames || ["region1", "region2"];
    const rows = await Promise.all(regions.map(async (r) => {
      try {
        const v = await api(`/fastapi/${encodeURIComponent(r)}/getappversion`);
        return { region: r, version: v.data.version, "answered by": v.region };
      } catch (err) {
        return { region: r, version: `unknown (${err.message})`, "answered by": err.region };
      }
    }));
    result("Deployment Version", null, table(rows, ["region", "version", "answered by"]));
  },
  async status() {
    const s = await api("/api/status");
    result("Status", answeredBy(s), dl(Object.entries(s.data).map(([k, v]) => [k, cell(v)])));
  },
};

async function runButton(button, title, fn) {
  button.disabled = true;
  try {
    await fn();
  } catch (err) {
    resultError(title, err);
  } finally {
    button.disabled = false;
  }
}

async function switchRegion(kind) {
  const path = kind === "failover" ? "/api/failover/simulate" : "/api/failover/restore";
  const title = kind === "failover" ? "Simulate Failover" : "Restore";
  result(title, "asking the operator through the RegionPair… (the status panel follows it live)");
  const r = await withToken((token) => api(path, { method: "POST", token, timeout: SWITCH_TIMEOUT_MS }));
  const d = r.data;
  result(title, answeredBy(r), h("div", { id: "switch-result" }, dl([
    ["outcome", `${d.status}: ${d.message}`],
    ["from → to", `${d.source_region} → ${d.target_region}`],
    ["operator's measured duration", d.operator_duration_seconds != null ? `${d.operator_duration_seconds} s` : "—"],
    ["API-measured latency", `${d.failover_latency_seconds} s`],
    ["client-side latency", `${(r.ms / 1000).toFixed(3)} s`],
    ["phase / epoch", `${d.phase || "—"} / ${d.epoch ?? "—"}`],
    ["lost bytes", d.lost_bytes ?? "—"],
  ])));
}

async function simulateTraffic() {
  const title = "Simulate High Traffic";
  const sentAt = Date.now();
  const start = await withToken((token) => api("/api/console/traffic", {
    method: "POST", token, body: { requests: 3000, concurrency: 16 },
  }));
  let run = start.data;
  // The band runs from the request to the first poll that sees the burst finished (client clock:
  // the server's may differ).
  const band = [sentAt, null];
  state.bursts.push(band);
  while (state.bursts.length > 20) state.bursts.shift();
  const show = () => result(title, `${run.state} · answered by ${start.region}`, h("div", { id: "traffic-result" }, dl([
    ["sent", `${num(run.sent)} of ${num(run.requests)} (concurrency ${run.concurrency})`],
    ["elapsed", `${run.elapsed_seconds} s (limit ${run.max_seconds} s)`],
    ["answers", Object.entries(run.by_status).map(([k, v]) => `${k}: ${num(v)}`).join(", ") || "—"],
    ["burst latency", run.latency_ms.p50 !== undefined
      ? `p50 ${run.latency_ms.p50} ms · p95 ${run.latency_ms.p95} ms · p99 ${run.latency_ms.p99} ms` : "—"],
    ["stopped by", run.stopped_by || "—"],
  ]), h("p", { class: "muted" }, "Its effect shows on the API latency chart.")));
  show();
  try {
    while (run.state === "running") {
      await new Promise((r) => setTimeout(r, 500));
      run = (await api("/api/console/traffic")).data;
      show();
    }
  } finally {
    band[1] = Date.now();
    drawCharts();
  }
}

// --- image search and questions ----------------------------------------------------------------------

async function search(query) {
  const out = $("search-results");
  out.replaceChildren(h("p", { class: "muted" }, "searching…"));
  try {
    const r = await api("/api/images/search", { method: "POST", body: { query, top_k: 8 } });
    const d = r.data;
    const cards = d.results.map((hit) => h("div", { class: "card", "data-image": hit.image_id },
      h("img", { src: `/api/console/images/${encodeURIComponent(hit.image_id)}`, alt: hit.description, loading: "lazy",
        onerror: "this.replaceWith(Object.assign(document.createElement('div'),{className:'muted',textContent:'no picture kept'}))" }),
      h("div", { class: "body" },
        h("strong", {}, hit.site_id), " · ", hit.device_type, h("br"),
        h("span", { class: "score" }, `score ${hit.score.toFixed(3)}`), ` · #${hit.rank}`, h("br"),
        h("span", { class: "muted" }, hit.description))));
    out.replaceChildren(
      h("p", { class: "muted", style: "grid-column: 1 / -1" },
        `${d.count} result(s) · ${d.mode} embeddings (${d.model}, ${d.backend}) · ${answeredBy(r)}`),
      ...(cards.length ? cards : [h("p", {}, "No image matches.")]));
  } catch (err) {
    out.replaceChildren(h("p", { class: "banner", role: "alert" }, `Search failed — ${err.message}`));
  }
}

function dataView(data) {
  if (!data) return null;
  const parts = [];
  const scalars = Object.entries(data).filter(([, v]) => v === null || typeof v !== "object");
  if (scalars.length) parts.push(dl(scalars.map(([k, v]) => [k, cell(v)])));
  for (const [k, v] of Object.entries(data)) {
    if (Array.isArray(v) && v.length && typeof v[0] === "object") {
      parts.push(h("h4", {}, k), table(v, Object.keys(v[0])));
    } else if (Array.isArray(v)) {
      parts.push(dl([[k, v.map(cell).join(", ") || "—"]]));
    } else if (v && typeof v === "object") {
      parts.push(h("h4", {}, k), table(Object.entries(v).map(([a, b]) => ({ key: a, value: b })), ["key", "value"]));
    }
  }
  return h("div", { class: "data", id: "answer-data" }, h("h4", {}, "Data behind this answer"), ...parts);
}

async function ask(question) {
  const out = $("answer");
  $("ask-question").value = question;
  out.replaceChildren(h("p", { class: "muted" }, "thinking…"));
  try {
    const r = await api("/api/diagnostics/query", { method: "POST", body: { question }, timeout: 30000 });
    const d = r.data;
    const abstain = d.mode === "abstain";
    out.replaceChildren(h("div", { class: `answer${abstain ? " abstain" : ""}`, "data-mode": d.mode },
      h("p", { class: "muted" }, `${d.mode} · ${d.provider.answerer} · ${answeredBy(r)}`,
        d.fallback ? ` · fallback: ${d.fallback}` : ""),
      abstain ? h("h4", { id: "abstain" }, "I don't know") : null,
      h("p", { class: "text" }, d.answer),
      d.citations.length ? h("ol", { class: "citations", id: "citations" }, d.citations.map((c) =>
        h("li", { value: c.ref }, h("strong", {}, c.title), ` (${c.source}, score ${c.score.toFixed(3)}) `,
          h("span", { class: "muted" }, c.text.length > 280 ? c.text.slice(0, 280) + "…" : c.text)))) : null,
      dataView(d.data)));
  } catch (err) {
    out.replaceChildren(h("p", { class: "banner", role: "alert" }, `Question failed — ${err.message}`));
  }
}

// --- wiring ----------------------------------------------------------------------------------------

function wire() {
  for (const [name, fn] of Object.entries(actions)) {
    const button = document.querySelector(`[data-action="${name}"]`);
    button.addEventListener("click", () => runButton(button, button.textContent, fn));
  }
  $("btn-failover").addEventListener("click", (e) => runButton(e.currentTarget, "Simulate Failover", () => switchRegion("failover")));
  $("btn-restore").addEventListener("click", (e) => runButton(e.currentTarget, "Restore", () => switchRegion("restore")));
  $("btn-traffic").addEventListener("click", (e) => runButton(e.currentTarget, "Simulate High Traffic", simulateTraffic));
  $("token-forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); renderToken(); });
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search($("search-query").value); });
  $("ask-form").addEventListener("submit", (ev) => { ev.preventDefault(); ask($("ask-question").value); });
  for (const chip of document.querySelectorAll("#quick-queries .chip")) {
    chip.addEventListener("click", () => ask(chip.textContent));
  }
  renderToken();
}

wire();
poll();
