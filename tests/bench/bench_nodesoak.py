"""`make bench BENCH=nodesoak`: no false failovers on the built-in node (issue 20, item 2; the
process stack's soak is `BENCH=soak`).

Deploys both charts as `BENCH=cluster` does (the RegionPair at the chart's defaults) and, with the
pair Healthy, measures two runs one after the other (`soakfaults` says how each fault is made and
always taken back):

1. the reference: BENCH_NODESOAK_QUIET seconds (default 30) with no fault;
2. the soak: BENCH_NODESOAK_SECONDS (default 180) with latency and jitter (250 +- 250 ms, where the
   kernel has sch_netem) and 5 % loss each way on the link between the operator's pods and the
   active Redis pod throughout, and in rotating windows of BENCH_NODESOAK_WINDOW seconds (default
   20): a restart of the standby Redis pod, load on the active region's API (the console's Simulate
   High Traffic burst inside the API process and wrk from the node) while /health is timed, a
   restart of the active region's MQTT broker pod, then of its RabbitMQ pod.

What the operator did is read from every status it wrote (failed probes of the active region, the
longest streak, transitions), its log (fast paths) and the pods (restarts). Exits 1 on any
transition during the soak: the target is 0 failovers (and no switchover was asked for).
"""

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

import kit  # noqa: E402
import soakfaults  # noqa: E402
from table import Table  # noqa: E402

from tier0_contract import regionpair as rp  # noqa: E402
from tier0_dev.node import cluster, deploy  # noqa: E402
from tier0_dev.node.layout import Layout  # noqa: E402
from tier0_services.api.console import models as console  # noqa: E402

SECONDS = float(os.environ.get("BENCH_NODESOAK_SECONDS", "180"))
QUIET = float(os.environ.get("BENCH_NODESOAK_QUIET", "30"))
WINDOW = float(os.environ.get("BENCH_NODESOAK_WINDOW", "20"))
STANDBY, LOAD, MQTT, AMQP = "standby Redis", "API load", "MQTT broker", "RabbitMQ"
ROTATION = (STANDBY, LOAD, MQTT, AMQP)


@dataclass
class Run:
    """One run as the operator lived it, and what was injected."""

    name: str
    seconds: float
    tally: soakfaults.Tally
    fast_paths: int
    health: soakfaults.HealthStats
    epochs: int  # status.epoch after - before (every transition adds one)
    link: soakfaults.Link | None = None
    restarts: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in (STANDBY, MQTT, AMQP)})
    in_sync: list[float] = field(default_factory=list)  # standby restarts: deleted -> in sync again
    loads: list[soakfaults.Load] = field(default_factory=list)
    bursts: list[console.TrafficRun] = field(default_factory=list)
    load_health: soakfaults.HealthStats | None = None
    logged_failures: int = 0  # Redis probe failures in the operator's log (the cross-check)
    unsettled: str = ""  # why the pair was not Healthy again after the soak
    aborted: str = ""  # why the soak stopped before its time (a fault that could not be made)


def epoch(c: kit.Cluster) -> int:
    return rp.RegionPairStatus.model_validate(c.status()).epoch


def quiet(c: kit.Cluster, watch: soakfaults.StatusWatch, health: soakfaults.HealthTimer, active: str) -> Run:
    since, before = datetime.now(UTC), epoch(c)
    health.label = "quiet"
    with watch.counting(soakfaults.Tally(active, since)) as tally:
        start = time.monotonic()
        time.sleep(QUIET)
        seconds = time.monotonic() - start
    run = Run("quiet (reference)", seconds, tally, 0, soakfaults.health_stats(health.samples, "quiet"), 0)
    read_log(c, run, since)
    run.epochs = epoch(c) - before
    return run


def read_log(c: kit.Cluster, run: Run, since: datetime) -> None:
    log = soakfaults.operator_log(c, since)
    run.fast_paths = soakfaults.fast_paths(log)
    run.logged_failures = soakfaults.failed_redis_probes(log, run.tally.region)


def soak(c: kit.Cluster, watch: soakfaults.StatusWatch, health: soakfaults.HealthTimer, active: str) -> Run:
    standby = c.other(active)
    ip, port = deploy.address(c.rel, f"{c.rel.name}-region-api-{active}")
    api, token = f"http://{ip}:{port}", soakfaults.api_token(c)
    since, before = datetime.now(UTC), epoch(c)
    tally = soakfaults.Tally(active, since)
    run = Run("soak", 0.0, tally, 0, soakfaults.health_stats([], "soak"), 0)

    def back_in_sync(st: rp.RegionPairStatus) -> bool:
        r = st.region(standby)
        return r is not None and r.healthy and r.role == "replica" and r.link_up

    with watch.counting(tally), soakfaults.link_fault(c, active) as link:
        run.link = link
        ends = f"operator pods {', '.join(link.operators)} <-> {link.redis_pod} {link.redis_ip}"
        print(f"  link: {ends} (veth {link.veth or '?'}); latency: {link.latency}: {link.latency_note}", flush=True)
        start = time.monotonic()
        health.label = "soak"
        n = 0
        while time.monotonic() + WINDOW <= start + SECONDS + 0.01:
            kind, began = ROTATION[n % len(ROTATION)], time.monotonic()
            try:
                if kind == STANDBY:
                    run.restarts[STANDBY].append(soakfaults.restart_pod(c, soakfaults.redis_selector(standby)))
                    watch.wait_for(f"{standby} in sync again", back_in_sync, timeout=180)
                    run.in_sync.append(time.monotonic() - began)
                elif kind == LOAD:
                    health.label = "load"
                    try:
                        soakfaults.start_burst(api, token)  # before wrk, which spends the client's rate limit
                        run.loads.append(soakfaults.api_load(f"{api}/api/status", WINDOW - 5))
                        run.bursts.append(soakfaults.burst_result(api))
                    finally:
                        health.label = "soak"
                else:
                    selector = soakfaults.broker_selector("emqx" if kind == MQTT else "rabbitmq", active)
                    run.restarts[kind].append(soakfaults.restart_pod(c, selector))
            except Exception as e:  # noqa: BLE001 - what ran until then is still reported, and the run fails
                run.aborted = f"the {kind} window at {began - start:.0f} s: {type(e).__name__}: {e}"
                print(f"  soak stopped: {run.aborted}", flush=True)
                break
            now = time.monotonic()
            print(f"  {now - start:5.0f} s: {kind} window done in {now - began:.1f} s", flush=True)
            n += 1
            time.sleep(max(0.0, min(start + n * WINDOW, start + SECONDS) - time.monotonic()))
        run.seconds = time.monotonic() - start
        health.label = "after"
    # The faults are gone: the pair settles where it was (or, after a failover, acknowledged there).
    try:
        c.healthy()
    except AssertionError as e:
        run.unsettled = str(e)
    read_log(c, run, since)
    run.health = soakfaults.health_stats(health.samples, "soak", "load")
    run.load_health = soakfaults.health_stats(health.samples, "load")
    run.epochs = epoch(c) - before
    return run


def health_cell(h: soakfaults.HealthStats | None) -> str:
    if h is None or not h.samples:
        return "-"
    return f"{h.p50:.3f} / {h.p99:.3f} / {h.max:.3f}"


def loss_cell(link: soakfaults.Link | None) -> str:
    if link is None:
        return "-"
    share = link.dropped / link.packets if link.packets else 0.0
    return f"{link.dropped} of {link.packets} pkts ({share:.1%})"


def spread(values: list[float]) -> str:
    """`p50 / max` of the values, in seconds."""
    return f"{kit.percentile(values, 50):.1f} / {max(values):.1f}" if values else "-"


def report(active: str, policy: rp.FailoverPolicy, reference: Run, run: Run, operator_restarts: int) -> int:
    """Print both tables; 1 when the soak saw a transition (the target is none), else 0."""
    link = run.link
    assert link is not None
    threshold = policy.failure_threshold
    t = Table(
        f"Soak on the built-in node, active {active} (probe {policy.probe_interval_seconds:g} s x {threshold}, "
        f"fast confirm {policy.fast_confirm_seconds:g} s every {policy.fast_probe_interval_seconds:g} s, "
        f"window {WINDOW:g} s)",
        [
            "run",
            "duration s",
            "latency operator -> active Redis",
            "loss each way",
            "standby restarts",
            "MQTT / AMQP restarts",
            "API load windows",
            "/health p50 / p99 / max s",
            "failed probes",
            "longest streak",
            "fast paths",
            "failovers",
            "target",
        ],
    )
    for r in (reference, run):
        faulted = r is run
        t.add(
            r.name,
            r.seconds,
            link.latency if faulted else "-",
            loss_cell(link) if faulted else "-",
            len(r.restarts[STANDBY]),
            f"{len(r.restarts[MQTT])} / {len(r.restarts[AMQP])}",
            len(r.loads),
            health_cell(r.health),
            r.tally.failed_probes,
            f"{r.tally.longest_streak} of {threshold}",
            r.fast_paths,
            r.tally.failovers,
            "0 failovers" if faulted else "reference: no fault",
        )
    t.print()

    ft = Table("Faults injected in the soak", ["fault", "times", "back p50 / max s", "what it did"])
    ft.add("latency and jitter, operator -> active Redis", "throughout", "-", f"{link.latency}: {link.latency_note}")
    loss = f"{link.loss:.0%} loss each way, operator <-> active Redis"
    ft.add(loss, "throughout", "-", f"iptables statistic DROP: {loss_cell(link)}")
    faults = {
        STANDBY: "pod deleted, replacement Ready",
        MQTT: "active region's EMQX pod deleted, replacement Ready",
        AMQP: "active region's RabbitMQ pod deleted, replacement Ready",
    }
    for kind, what in faults.items():
        times = run.restarts[kind]
        if kind == STANDBY and run.in_sync:
            what += f"; back in sync (healthy replica, link up) p50 / max {spread(run.in_sync)} s"
        ft.add(f"{kind} restart", len(times), spread(times), what)
    requests = sum(x.requests for x in run.loads)
    secs = sum(x.seconds for x in run.loads)
    h = run.load_health
    over = f"{h.over} over {soakfaults.PROBE_TIMEOUT} s, {h.failed} failed" if h else "-"
    ft.add(
        "API load: the console's burst + wrk",
        len(run.loads),
        "-",
        f"burst (in the API process, {soakfaults.BURST_CONCURRENCY} at once): {soakfaults.burst_cell(run.bursts)}; "
        f"wrk ({soakfaults.LOAD_CONNECTIONS} connections, /api/status): {requests} requests "
        f"({requests / secs if secs else 0:.0f}/s), {sum(x.non_2xx for x in run.loads)} non-2xx (429: the "
        f"per-client rate limit), {sum(x.socket_errors for x in run.loads)} socket errors; "
        f"/health p50 / p99 / max {health_cell(h)} s, {over}",
    )
    ft.print()
    for line in link.counted:
        print(f"  {line}")
    print(
        f"status writes seen: {reference.tally.writes} (reference), {run.tally.writes} (soak); Redis probe "
        f"failures in the operator's log: {reference.logged_failures}, {run.logged_failures}; epochs moved in the "
        f"soak: {run.epochs}; phases written: {', '.join(sorted(reference.tally.phases))} (reference), "
        f"{', '.join(sorted(run.tally.phases))} (soak); operator container restarts: {operator_restarts}",
        flush=True,
    )
    if run.epochs or run.tally.transitions:
        print(f"CHECK FAILED: transitions in the soak: {run.tally.transitions}", file=sys.stderr)
        return 1
    if run.aborted:
        print(f"CHECK FAILED: the soak stopped early, in {run.aborted}", file=sys.stderr)
        return 1
    if run.unsettled:
        print(f"CHECK FAILED: the pair did not settle after the soak: {run.unsettled}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so every fault's `finally` takes it back.
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    if os.environ.get("TIER0_E2E_KUBECONFIG"):
        print(
            "BENCH=nodesoak runs on the built-in node (its bridge, containerd and iptables): unset TIER0_E2E_KUBECONFIG"
        )
        return 1
    print(f"load average before: {os.getloadavg()}", flush=True)
    kubeconfig, started = kit.started_kubeconfig()
    try:
        c = kit.Cluster(kubeconfig)
        deploy.install(c.rel)
        active = c.healthy()
        policy = rp.RegionPairSpec.model_validate(c.pair()["spec"]).failover
        restarts_before = soakfaults.operator_restarts(c)
        ip, port = deploy.address(c.rel, f"{c.rel.name}-region-api-{active}")
        with soakfaults.StatusWatch(c) as watch, soakfaults.HealthTimer(f"http://{ip}:{port}/health") as health:
            runs = [quiet(c, watch, health, active), soak(c, watch, health, active)]
        operator_restarts = soakfaults.operator_restarts(c) - restarts_before
    finally:
        if started:
            cluster.down(Layout.default())

    rc = report(active, policy, runs[0], runs[1], operator_restarts)
    print(f"load average after: {os.getloadavg()}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
