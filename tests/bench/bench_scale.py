"""`make bench BENCH=scale`: the deployed system with up to 100,000 device identities (issue 23,
items 1 and 2): where it saturates on this machine, what each component costs, and how ingest scales
with more workers in the share group.

On the cluster of the e2e tier (the built-in node, or TIER0_E2E_KUBECONFIG) with both charts
installed, the chart's own device simulator Job is suspended and, step by step, a Job built from
its pod template (scaleplan.simulator_job: same image, MQTT user, Secret and NetworkPolicy labels)
publishes for a bounded time:

- ramp: 1,000 / 10,000 / 30,000 / 100,000 identities (SCALE_FLEET) at about SCALE_RATE msg/s
  (interval = devices / rate, shortened so every identity publishes within a step);
- push: SCALE_PUSH_DEVICES identities at SCALE_RATE x 2, x 4, ... up to SCALE_MAX_RATE, stopping at
  the first saturated step (delivered < 90 % of offered, or freshness p99 > 5 s);
- workers: that step again with 1, 2 and 4 ingest workers in the active region (its StatefulSet
  scaled, Ready awaited).

In each step's measured window: delivered msg/s (the pair's `stats:ingest` counters in the active
Redis, read before and after), freshness (a reader pod polls a site's last_seen through the global
Service: read time - last_seen), acknowledged messages lost (kit's ledger pod, then every
acknowledged device looked up in Redis), CPU and memory per component (the kubelet's
/stats/summary before and after: cores = CPU-seconds delta / window), Redis used_memory per device
identity (against the reading before the first step), and p99 of the device endpoints (a prober pod,
kept-alive connections, ~SCALE_PROBE_RPS requests/s through the global Service). Every step is
bounded and skipped when it would overrun SCALE_BUDGET_S; the release is always given back (Jobs
deleted, ingest replicas and the chart's simulator restored). Exits non-zero when an acknowledged
message was lost.
"""

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

import kit  # noqa: E402
import scaleplan as plan  # noqa: E402
from table import Table  # noqa: E402

from tier0_contract import keys  # noqa: E402
from tier0_dev.node import cluster, deploy  # noqa: E402
from tier0_dev.node.layout import Layout  # noqa: E402

FLEET = [int(n) for n in os.environ.get("SCALE_FLEET", "1000,10000,30000,100000").split(",")]
RATE = float(os.environ.get("SCALE_RATE", "500"))
PUSH_DEVICES = int(os.environ.get("SCALE_PUSH_DEVICES", "10000"))
MAX_RATE = float(os.environ.get("SCALE_MAX_RATE", "8000"))
WORKERS = [int(n) for n in os.environ.get("SCALE_WORKERS", "1,2,4").split(",")]
BUDGET_S = float(os.environ.get("SCALE_BUDGET_S", "1200"))
WARMUP_S = 10.0
"""From the simulator pods Running to the window's start: connected, first slots out."""
MEASURE_S = float(os.environ.get("SCALE_MEASURE_S", "45"))
MAX_INTERVAL_S = 60.0
PER_SHARD_RATE = 2000.0
"""msg/s one simulator process is given; more go to a second pod (at most MAX_SHARDS)."""
MAX_SHARDS = 2
LEDGER_S = 15.0
"""The ledger publishes (kit.LEDGER_RATE new identities a second) for this much of each window."""
OVERHEAD_S = 45.0
"""A step's time besides the simulator's run: pods starting, the ledger's check, the Job deleted."""
PROBE_RPS = float(os.environ.get("SCALE_PROBE_RPS", "30"))
SITE = "WY-ALPHA"
"""A fleet site (tier0_simulators.fleet.SITES[0]): every step's devices publish to it."""
ENDPOINTS = ["/api/devices/active", "/api/devices/alerts", f"/api/devices/metrics/site/{SITE}"]
REDIS_STATE = (
    "import json\n"
    f"stats = {{k.decode(): int(v) for k, v in r.hgetall({keys.INGEST_STATS!r}).items()}}\n"
    f"print(json.dumps({{'stats': stats, 'used_memory': r.info('memory')['used_memory'], "
    f"'ids': r.zcard({keys.DEVICES_LAST_SEEN!r})}}))\n"
)
"""After kit.REDIS_APP: the ingest counters, used_memory and the number of device identities."""


def estimate(step: plan.Step) -> float:
    """What one step takes, for the budget: the simulator's run and everything around it."""
    return plan.step_seconds(WARMUP_S, MEASURE_S, step.interval) + OVERHEAD_S


class Bench:
    def __init__(self, c: kit.Cluster) -> None:
        self.c = c
        self.start = time.monotonic()
        self.node = c.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").strip()
        self.active = c.healthy()
        self.chart_job = self._chart_job()
        self.baseline = self.redis_state()

    def _chart_job(self) -> dict[str, Any]:
        jobs = self.c.json("-n", self.c.ns, "get", "jobs", "-l", "app.kubernetes.io/component=device-simulator")
        found = jobs["items"]
        assert isinstance(found, list)
        items = [j for j in found if "bench" not in j["metadata"].get("labels", {})]
        assert items, "the chart's device simulator Job is missing (simulators.devices.enabled)"
        return dict(items[0])

    def suspend_chart_simulator(self, suspend: bool) -> None:
        """The chart's own simulator paused during the bench (its load would mix into each step)."""
        patch = json.dumps({"spec": {"suspend": suspend}})
        name = self.chart_job["metadata"]["name"]
        self.c.kubectl("-n", self.c.ns, "patch", "job", name, "--type", "merge", "-p", patch)
        if suspend:
            self.wait_pods(name, lambda phases: not phases, "its pods gone")

    def wait_pods(self, job: str, done: Callable[[list[str]], bool], what: str, timeout: float = 120) -> None:
        """Poll the phases of a Job's pods until `done` holds (`kubectl wait` fails while none exist)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.c.kubectl(
                "-n", self.c.ns, "get", "pods", "-l", f"job-name={job}", "-o", "jsonpath={.items[*].status.phase}"
            )
            if done(out.split()):
                return
            time.sleep(1)
        raise AssertionError(f"Job {job}: never {what}")

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def redis_state(self) -> dict[str, Any]:
        out = self.c.redis_script(self.active, self.c.redis_host(self.active), REDIS_STATE)
        return dict(json.loads(out.strip().splitlines()[-1]))

    def usage(self) -> dict[str, plan.Usage]:
        """Each pod's (and the node's) usage now, from the kubelet; empty when it cannot say."""
        try:
            raw = self.c.kubectl("get", "--raw", f"/api/v1/nodes/{self.node}/proxy/stats/summary")
        except AssertionError as exc:  # the step's other figures still count: its CPU cells show `-`
            print(f"no kubelet stats: {exc}", flush=True)
            return {}
        return plan.usage_by_pod(json.loads(raw))

    def components(self) -> dict[str, str]:
        """Pod name -> component, for the release's namespace."""
        pods = self.c.json("-n", self.c.ns, "get", "pods")["items"]
        assert isinstance(pods, list)
        names = {}
        for pod in pods:
            name = pod["metadata"]["name"]
            # kit's client pods (ledger, reader, prober) are the bench's, not the product's.
            bench = name.startswith("e2e-")
            names[name] = "bench clients" if bench else plan.component_of(pod["metadata"].get("labels", {}))
        return names

    def ingest_set(self) -> str:
        out = self.c.kubectl(
            "-n", self.c.ns, "get", "statefulsets", "-l",
            f"app.kubernetes.io/component=ingest,tier0.dev/region={self.active}",
            "-o", "jsonpath={.items[0].metadata.name}",
        )  # fmt: skip
        return out.strip()

    def scale_ingest(self, replicas: int) -> None:
        name = self.ingest_set()
        self.c.kubectl("-n", self.c.ns, "scale", "statefulset", name, f"--replicas={replicas}")
        self.c.kubectl("-n", self.c.ns, "rollout", "status", f"statefulset/{name}", "--timeout=180s", timeout=200)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # scaling down: rollout status does not wait for it
            sts = self.c.json("-n", self.c.ns, "get", "statefulset", name)["status"]
            assert isinstance(sts, dict)
            if sts.get("replicas") == replicas and sts.get("readyReplicas", 0) == replicas:
                return
            time.sleep(1)
        raise AssertionError(f"{name} never had {replicas} Ready replicas")

    def delete_jobs(self) -> None:
        self.c.kubectl(
            "-n", self.c.ns, "delete", "jobs", "-l", "bench=scale", "--ignore-not-found", "--wait=true",
            "--cascade=foreground", timeout=180,
        )  # fmt: skip

    @contextmanager
    def latency(self, duration: float) -> Iterator[list[plan.Latency]]:
        """A prober pod GETting the device endpoints in turn for `duration` s; fills on exit."""
        name = f"e2e-latency-{uuid.uuid4().hex[:6]}"
        urls = [self.c.url(p) for p in ENDPOINTS]
        self.c._prober_pod(name, ["latency", str(1 / PROBE_RPS), str(duration), *urls])
        self.c.wait_pod_log(name, "ready")
        samples: list[plan.Latency] = []
        yield samples
        samples.extend(plan.parse_latency(self.c.wait_pod_done(name, timeout=duration + 60), ENDPOINTS))

    def run(self, step: plan.Step) -> plan.Result:
        c = self.c
        duration = plan.step_seconds(WARMUP_S, MEASURE_S, step.interval) + 30  # + the client pods' start
        window = max(MEASURE_S, step.interval)
        name = f"bench-scale-{uuid.uuid4().hex[:6]}"
        manifest = plan.simulator_job(self.chart_job, name, step, duration)
        c.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        try:
            running = f"{step.shards} pods Running"
            self.wait_pods(name, lambda phases: phases.count("Running") == step.shards, running)
            time.sleep(WARMUP_S)
            with ExitStack() as stack:
                ledger = stack.enter_context(c.ledger(duration=min(LEDGER_S, window)))
                readings = stack.enter_context(c.fresh(window, site=SITE))
                probes = stack.enter_context(self.latency(window))
                before, used_before, t0 = self.redis_state(), self.usage(), time.monotonic()
                time.sleep(max(0.0, window - 2))
                after, used_after, t1 = self.redis_state(), self.usage(), time.monotonic()
                pods = self.components()
                logs = c.kubectl("-n", c.ns, "logs", "-l", f"job-name={name}", "--tail=-1", "--prefix")
                simulated = self._simulated(logs, step.shards)
                # Stop offering before the clients are collected: a backlog drains for the ledger's check.
                self.delete_jobs()
            lost = c.missing(ledger, timeout=120)
        finally:
            self.delete_jobs()
        fresh = plan.freshness((r.t, r.telemetry) for r in readings)
        return plan.Result(
            step=step,
            seconds=t1 - t0,
            delivered=plan.delivered(before["stats"], after["stats"]),
            simulated=simulated,
            fresh=fresh,
            acked=len(ledger.acked),
            lost=len(lost),
            used=plan.cores(used_before, used_after, t1 - t0, pods),
            memory=plan.memory(used_after, pods),
            identities=int(after["ids"]),
            redis_memory=int(after["used_memory"]),
            bytes_per_device=plan.bytes_per_device(
                int(self.baseline["used_memory"]),
                int(after["used_memory"]),
                int(self.baseline["ids"]),
                int(after["ids"]),
            ),  # fmt: skip
            endpoints={e: plan.latency_p99(probes, e) for e in ENDPOINTS},
        )

    @staticmethod
    def _simulated(logs: str, shards: int) -> float | None:
        """The simulator pods' last reported rates summed (None unless every shard reported)."""
        by_pod: dict[str, list[str]] = {}
        for line in logs.splitlines():
            prefix, _, rest = line.partition(" ")
            by_pod.setdefault(prefix, []).append(rest)
        rates = [plan.simulator_rate("\n".join(lines)) for lines in by_pod.values()]
        known = [r for r in rates if r is not None]
        return sum(known) if len(known) == shards else None

    def step(self, step: plan.Step, results: list[plan.Result], reserve: float = 0.0) -> plan.Result | None:
        """Run `step` unless it would overrun the budget (less `reserve` s kept for later steps)."""
        if not plan.fits(self.elapsed(), estimate(step), BUDGET_S - reserve):
            print(f"skipped (time budget {BUDGET_S:.0f} s): {step.label}", flush=True)
            return None
        r = self.run(step)
        results.append(r)
        fresh = "-" if r.fresh_p99 is None else f"{r.fresh_p99:.2f} s"
        print(
            f"{self.elapsed():.0f} s: {step.label}: delivered {r.delivered_rate:,.0f} msg/s, fresh p99 {fresh}, "
            f"lost {r.lost} of {r.acked}, busiest {plan.busiest(r.used)}; {r.saturated or 'kept up'}",
            flush=True,
        )
        return r


def print_tables(ramp: list[plan.Result], push: list[plan.Result], scale: list[plan.Result]) -> None:
    steps = Table(
        f"Device identities and rate on the node (window >= {MEASURE_S:.0f} s per step; saturated = delivered < "
        f"{1 - plan.LOSS_TOLERANCE:.0%} of offered or freshness p99 > {plan.FRESH_LIMIT_S:.0f} s); "
        "target: 100,000 identities, 0 acked lost",
        plan.STEP_COLUMNS,
    )
    for r in [*ramp, *push]:
        steps.add(*plan.step_row(r))
    steps.print()
    saturated = plan.first_saturated(push) or plan.first_saturated(ramp)
    if saturated:
        top = plan.busiest(saturated.used)
        print(
            f"saturation point: {saturated.step.label} ({saturated.saturated}); nearest its limit: {top} "
            f"at {saturated.used.get(top, 0.0):.2f} cores of the node's {saturated.used.get(plan.NODE, 0.0):.2f}",
            flush=True,
        )
    else:
        print(f"no step saturated up to {max((r.step.rate for r in push), default=RATE):,.0f} msg/s", flush=True)
    everything = [*ramp, *push, *scale]
    names = plan.components(everything)
    costs = Table("CPU cores / working set MiB per component in each step (kubelet /stats/summary)", ["step", *names])
    for r in everything:
        costs.add(*plan.cost_row(r, names))
    costs.print()
    endpoints = Table(
        f"Device endpoints through the global Service during each step (~{PROBE_RPS:.0f} req/s in turn, "
        "kept-alive), p99 ms; reference: the same endpoints at 1,000 identities; target (BENCH=api) < 25 ms",
        ["step", "identities", *ENDPOINTS],
    )
    for r in everything:
        endpoints.add(*plan.endpoint_row(r, ENDPOINTS))
    endpoints.print()
    if scale:
        one = next((r for r in scale if r.step.workers == 1), None)
        workers = Table(
            f"Ingest workers in the active region's share group, same step ({scale[0].step.label.split(',')[0]}); "
            "target: throughput grows with workers",
            [
                "ingest workers",
                "offered msg/s",
                "delivered msg/s",
                "msg/s per worker",
                "vs 1 worker",
                "ingest cores",
                "fresh p99 s",
                "acked lost",
                "verdict",
            ],
        )
        for r in scale:
            workers.add(*plan.workers_row(r, one))
        workers.print()


def main() -> int:
    print(f"load average before: {os.getloadavg()}", flush=True)
    kubeconfig, started = kit.started_kubeconfig()
    ramp: list[plan.Result] = []
    push: list[plan.Result] = []
    scale: list[plan.Result] = []
    try:
        c = kit.Cluster(kubeconfig)
        deploy.install(c.rel)
        bench = Bench(c)
        replicas = int(
            c.kubectl("-n", c.ns, "get", "statefulset", bench.ingest_set(), "-o", "jsonpath={.spec.replicas}")
        )
        try:
            bench.suspend_chart_simulator(True)
            for step in plan.ramp(FLEET, RATE, MAX_INTERVAL_S, PER_SHARD_RATE, MAX_SHARDS):
                bench.step(step, ramp)
            pushed = plan.push(PUSH_DEVICES, 2 * RATE, 2.0, MAX_RATE, PER_SHARD_RATE, MAX_SHARDS)
            # Time kept for item 2: its steps (at the push's interval or shorter) and each scaling.
            reserve = sum(estimate(s) + 30 for s in plan.scale_out(pushed[0], WORKERS)) if pushed else 0.0
            for step in pushed:
                r = bench.step(step, push, reserve)
                if r is not None and r.saturated:
                    break
            # Item 2 at the load that saturated (the last pushed one when none did): where workers matter.
            loaded = plan.first_saturated(push) or (push[-1] if push else None)
            if loaded is not None:
                for step in plan.scale_out(loaded.step, WORKERS):
                    bench.scale_ingest(step.workers or replicas)
                    bench.step(step, scale)
        finally:
            try:  # the release given back whatever happened: no bench Job, its replicas, its simulator
                bench.delete_jobs()
                bench.scale_ingest(replicas)
                bench.suspend_chart_simulator(False)
            finally:
                print_tables(ramp, push, scale)  # what was measured, also when a step failed
        print(f"load average after: {os.getloadavg()}; bench {bench.elapsed():.0f} s", flush=True)
        lost = sum(r.lost for r in [*ramp, *push, *scale])
        return 1 if lost else 0  # an acknowledged message lost is a failed check, not a figure
    finally:
        if started:
            cluster.down(Layout.default())


if __name__ == "__main__":
    sys.exit(main())
