"""The pure decisions of `make bench BENCH=scale` (bench_scale.py), kept apart from the cluster so
they are unit-tested (tests/system/test_scale_plan.py): which steps run at which rate, how the kubelet's
stats become each component's CPU and memory, when a step counts as saturated, what a device
identity costs in Redis, and the table rows.
"""

import copy
import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOSS_TOLERANCE = 0.10
"""A step is saturated when it delivers less than (1 - this) of the offered rate..."""
FRESH_LIMIT_S = 5.0
"""...or when its freshness p99 exceeds this."""


@dataclass(frozen=True)
class Step:
    """One bounded run of the device simulator: `devices` identities, each publishing every
    `interval` s (so `devices / interval` msg/s offered), over `shards` simulator pods, with
    `workers` ingest workers in the active region (None: as the release has them)."""

    kind: str  # "ramp", "push" or "workers"
    devices: int
    interval: float
    shards: int
    workers: int | None = None

    @property
    def rate(self) -> float:
        return self.devices / self.interval

    @property
    def label(self) -> str:
        workers = "" if self.workers is None else f", {self.workers} ingest"
        return f"{self.kind} {self.devices:,} dev @ {self.rate:,.0f}/s{workers}"


def shards_for(rate: float, per_shard: float, max_shards: int) -> int:
    """Simulator pods for `rate` msg/s: one per `per_shard` msg/s, at most `max_shards` (more
    processes than cores only adds contention on this machine)."""
    return max(1, min(max_shards, math.ceil(rate / per_shard)))


def interval_for(devices: int, rate: float, max_interval: float) -> float:
    """The publish interval giving `rate` msg/s from `devices` identities, shortened to
    `max_interval` so that every identity publishes at least once within a step of that length
    (a large fleet then runs above `rate`)."""
    return min(devices / rate, max_interval)


def ramp(fleet: Iterable[int], rate: float, max_interval: float, per_shard: float, max_shards: int) -> list[Step]:
    """The identity steps at about `rate` msg/s each."""
    steps = []
    for devices in fleet:
        interval = interval_for(devices, rate, max_interval)
        steps.append(Step("ramp", devices, interval, shards_for(devices / interval, per_shard, max_shards)))
    return steps


def push(devices: int, start: float, factor: float, max_rate: float, per_shard: float, max_shards: int) -> list[Step]:
    """The rate push on `devices` identities: `start`, then times `factor` up to `max_rate`."""
    steps, rate = [], start
    while rate <= max_rate:
        steps.append(Step("push", devices, devices / rate, shards_for(rate, per_shard, max_shards)))
        rate *= factor
    return steps


def scale_out(base: Step, workers: Iterable[int]) -> list[Step]:
    """The same step with each number of ingest workers."""
    return [Step("workers", base.devices, base.interval, base.shards, n) for n in workers]


def step_seconds(warmup: float, measure: float, interval: float) -> float:
    """How long the simulator runs: the warm-up, then the measured window, which is at least one
    interval long (every identity publishes in it), plus 5 s so the window ends before the fleet."""
    return warmup + max(measure, interval) + 5.0


def fits(elapsed: float, estimate: float, budget: float) -> bool:
    """Whether a step of `estimate` s still fits the bench's time budget."""
    return elapsed + estimate <= budget


# --- what the cluster reports ------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """A component's cumulative CPU (core-seconds) and current working set (bytes)."""

    cpu_s: float = 0.0
    memory: int = 0


def component_of(labels: Mapping[str, str]) -> str:
    """A pod's component as the tables name it: `ingest region1`, `device-simulator`, ..."""
    component = labels.get("app.kubernetes.io/component", "other")
    region = labels.get("tier0.dev/region")
    return f"{component} {region}" if region else component


NODE = "node"
"""The whole machine's figure in usage/cores maps, beside the pods'."""


def usage_by_pod(summary: Mapping[str, Any]) -> dict[str, Usage]:
    """The kubelet's /stats/summary: each pod's usage by name, and NODE's."""
    out: dict[str, Usage] = {}
    for pod in summary.get("pods", []):
        name = pod.get("podRef", {}).get("name", "")
        cpu = (pod.get("cpu") or {}).get("usageCoreNanoSeconds") or 0
        out[name] = Usage(cpu / 1e9, (pod.get("memory") or {}).get("workingSetBytes") or 0)
    node = summary.get("node", {})
    cpu = (node.get("cpu") or {}).get("usageCoreNanoSeconds") or 0
    out[NODE] = Usage(cpu / 1e9, (node.get("memory") or {}).get("workingSetBytes") or 0)
    return out


def cores(
    before: Mapping[str, Usage], after: Mapping[str, Usage], seconds: float, components: Mapping[str, str]
) -> dict[str, float]:
    """Cores each component (`components`: pod name -> component; other pods left out) used between
    two readings by pod, plus NODE's. A pod born in between started at 0; one whose counter went
    back (restarted) counts from 0 too. Empty when a reading is missing."""
    if not before or not after or seconds <= 0:
        return {}
    out: dict[str, float] = {}
    for pod, end in after.items():
        component = NODE if pod == NODE else components.get(pod)
        if component is None:
            continue
        start = before.get(pod, Usage()).cpu_s
        used = end.cpu_s - start if end.cpu_s >= start else end.cpu_s
        out[component] = out.get(component, 0.0) + used / seconds
    return out


def memory(usage: Mapping[str, Usage], components: Mapping[str, str]) -> dict[str, int]:
    """Working set per component (and NODE's) at one reading."""
    out: dict[str, int] = {}
    for pod, u in usage.items():
        component = NODE if pod == NODE else components.get(pod)
        if component is not None:
            out[component] = out.get(component, 0) + u.memory
    return out


def busiest(used: Mapping[str, float]) -> str:
    """The component using the most CPU (the machine-wide `node` figure aside): the nearest its
    limit on a machine whose components share the same cores."""
    parts = {k: v for k, v in used.items() if k != NODE}
    return max(parts, key=lambda k: parts[k]) if parts else "-"


def delivered(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    """Messages the ingest workers processed between two readings of `stats:ingest` (applied, or
    recognised as stale or duplicate: each was received and handled end to end)."""
    counted = ("stored", "stale", "duplicate")
    return sum(after.get(k, 0) - before.get(k, 0) for k in counted)


def bytes_per_device(memory_before: int, memory_after: int, ids_before: int, ids_after: int) -> float | None:
    """Redis memory one more device identity costs (None when no identity was added)."""
    added = ids_after - ids_before
    return (memory_after - memory_before) / added if added > 0 else None


def saturation(offered: float, delivered_rate: float, fresh_p99: float | None) -> str | None:
    """Why a step counts as saturated, or None when the system kept up."""
    if offered > 0 and delivered_rate < (1 - LOSS_TOLERANCE) * offered:
        return f"delivered {delivered_rate:,.0f} < {1 - LOSS_TOLERANCE:.0%} of {offered:,.0f} msg/s"
    if fresh_p99 is None:
        return "no fresh reading"
    if fresh_p99 > FRESH_LIMIT_S:
        return f"freshness p99 {fresh_p99:.1f} s > {FRESH_LIMIT_S:.0f} s"
    return None


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def freshness(readings: Iterable[tuple[float, float | None]]) -> list[float]:
    """Age of the newest device message visible through the API at each reading: (read at, the
    site's last_seen) -> read at - last_seen, unanswered readings left out."""
    return [max(0.0, t - seen) for t, seen in readings if seen is not None]


@dataclass(frozen=True)
class Latency:
    endpoint: str
    seconds: float
    ok: bool


def parse_latency(log: str, endpoints: list[str]) -> list[Latency]:
    """The prober's `latency` lines: `<epoch s> <endpoint index> <seconds> <status>`."""
    out = []
    for line in log.splitlines():
        words = line.split()
        if len(words) == 4 and words[0][0].isdigit() and words[1].isdigit():
            out.append(Latency(endpoints[int(words[1])], float(words[2]), words[3] == "200"))
    return out


def latency_p99(samples: Iterable[Latency], endpoint: str) -> tuple[float | None, int]:
    """p99 of the endpoint's successful answers (s) and how many answers were not 200."""
    mine = [s for s in samples if s.endpoint == endpoint]
    return p99([s.seconds for s in mine if s.ok]), sum(1 for s in mine if not s.ok)


# --- rows -------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What one step measured."""

    step: Step
    seconds: float
    delivered: int
    simulated: float | None  # msg/s the simulator pods last reported achieving (None: no report)
    fresh: list[float]
    acked: int
    lost: int
    used: dict[str, float]  # cores per component
    memory: dict[str, int]  # working set per component at the window's end
    identities: int
    redis_memory: int
    bytes_per_device: float | None
    endpoints: dict[str, tuple[float | None, int]] = field(default_factory=dict)

    @property
    def delivered_rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def fresh_p99(self) -> float | None:
        return p99(self.fresh)

    @property
    def saturated(self) -> str | None:
        return saturation(self.step.rate, self.delivered_rate, self.fresh_p99)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


STEP_COLUMNS = [
    "step",
    "offered msg/s",
    "simulator msg/s",
    "delivered msg/s",
    "delivered/offered",
    "fresh p99 s",
    "acked lost",
    "identities",
    "redis used_memory MiB",
    "bytes/identity",
    "busiest component (cores)",
    "node cores",
    "verdict",
]


def step_row(r: Result) -> list[object]:
    top = busiest(r.used)
    return [
        r.step.label,
        r.step.rate,
        "-" if r.simulated is None else r.simulated,
        r.delivered_rate,
        r.delivered_rate / r.step.rate if r.step.rate else 0.0,
        _s(r.fresh_p99),
        f"{r.lost} of {r.acked}",
        r.identities,
        r.redis_memory / 2**20,
        "-" if r.bytes_per_device is None else f"{r.bytes_per_device:,.0f}",
        f"{top} ({r.used.get(top, 0.0):.2f})",
        r.used.get(NODE, 0.0),
        f"SATURATED: {r.saturated}" if r.saturated else "kept up",
    ]


def components(results: Iterable[Result]) -> list[str]:
    """Every component any step measured, in a stable order (node last)."""
    names = sorted({n for r in results for n in [*r.used, *r.memory] if n != NODE})
    return [*names, NODE]


def cost_row(r: Result, names: list[str]) -> list[object]:
    """Cores and working set (MiB) of each component in one step: `0.12 / 85`."""
    cells: list[object] = [r.step.label]
    for n in names:
        used, memory = r.used.get(n), r.memory.get(n)
        cells.append("-" if used is None else f"{used:.2f} / {memory / 2**20 if memory else 0:.0f}")
    return cells


def endpoint_row(r: Result, endpoints: list[str]) -> list[object]:
    cells: list[object] = [r.step.label, r.identities]
    for e in endpoints:
        p, errors = r.endpoints.get(e, (None, 0))
        cells.append(_ms(p) + (f" ({errors} err)" if errors else ""))
    return cells


def workers_row(r: Result, one: Result | None) -> list[object]:
    """msg/s per ingest worker and the throughput against the one-worker step."""
    n = r.step.workers or 1
    ingest = sum(v for k, v in r.used.items() if k.startswith("ingest "))
    ratio = r.delivered_rate / one.delivered_rate if one and one.delivered_rate else None
    return [
        n,
        r.step.rate,
        r.delivered_rate,
        r.delivered_rate / n,
        "-" if ratio is None else f"{ratio:.2f} x (ideal {n} x)",
        f"{ingest:.2f}",
        _s(r.fresh_p99),
        f"{r.lost} of {r.acked}",
        f"SATURATED: {r.saturated}" if r.saturated else "kept up",
    ]


def first_saturated(results: Iterable[Result]) -> Result | None:
    return next((r for r in results if r.saturated), None)


# --- the simulator Job ------------------------------------------------------------------------------

BENCH_LABEL = {"bench": "scale"}
JOB_LABEL_PREFIXES = ("batch.kubernetes.io/", "controller-uid", "job-name")
"""Labels the Job controller puts on a Job's pod template; a new Job gets its own."""


SIM_RATE = re.compile(r"(?:published|achieved) (\d+(?:\.\d+)?) msg/s")


def simulator_job(chart_job: Mapping[str, Any], name: str, step: Step, duration: float) -> dict[str, Any]:
    """A Job running the chart's device simulator for one step: the chart's own Job's pod template
    (image, MQTT env, the gateway Secret's mount, security context, the labels the broker's
    NetworkPolicy admits) with the step's fleet, interval and duration as its arguments, one pod
    per shard, never restarted (a re-run shard would publish twice) and bounded in time."""
    template = copy.deepcopy(chart_job["spec"]["template"])
    labels = {k: v for k, v in template["metadata"].get("labels", {}).items() if not k.startswith(JOB_LABEL_PREFIXES)}
    template["metadata"] = {"labels": {**labels, **BENCH_LABEL}}
    spec = template["spec"]
    spec["restartPolicy"] = "Never"
    container = spec["containers"][0]
    module = container["args"][0]
    container["args"] = [
        module,
        *("--shard-count", str(step.shards), "--devices", str(step.devices)),
        *("--interval", f"{step.interval:.3f}", "--duration", f"{duration:.0f}", "--report-every", "5"),
    ]
    limits = container.setdefault("resources", {}).setdefault("limits", {})
    limits["memory"] = "1Gi"  # 100,000 identities in one shard
    meta = chart_job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": {**meta.get("labels", {}), **BENCH_LABEL}},
        "spec": {
            "completionMode": "Indexed",
            "completions": step.shards,
            "parallelism": step.shards,
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(duration + 120),
            "template": template,
        },
    }


def simulator_rate(log: str) -> float | None:
    """The rate a simulator pod last reported achieving (its periodic `published N msg/s (target M)`
    or `FALLING BEHIND: achieved N msg/s` lines), None before its first report."""
    found = SIM_RATE.findall(log)
    return float(found[-1]) if found else None
