"""One region-loss scenario under load, measured: what the e2e tier (test_region.py) and
`make bench BENCH=region` share.

While a fault of `regionfaults` takes the active region away and gives it back, pods inside the
cluster play every client the issue names: one calls the global API Service every 10 ms
(`kit.Cluster.client`), one publishes device messages through the MQTT Service and one user
activity through the AMQP Service, each recording what its broker acknowledged (`ledger`,
`activity_ledger`), and one reads telemetry and activity back through the global API Service every
20 ms (`fresh`). A loop in each region's API pod samples its Redis's role and `pair:epoch` every
0.1 s (started through the kubelet, so a partitioned region is seen too).

What is measured, and how:
- outage: the longest time the API client went without an answer (`kit.summarize`);
- the flip: `status.lastTransition.completedAt` of a transition that began after the fault (the
  operator moves the Service selector as its last step); without one, the fault's start;
- devices publishing again: from the flip to the first PUBACK at or after it;
- freshness: from the flip until the reader first sees a device message (of the ledger's site) and
  a user-activity message stamped at or after the flip;
- lost: acknowledged device messages missing from the active Redis's `devices:last_seen`, and
  confirmed activity messages whose `users:activity:seen:<id>` it lacks, counted after the region
  returned, rejoined and its workers drained (`kit.Cluster.missing` waits);
- writes accepted by two primaries: read from the old primary's own data just before its region
  returns (from the region's own API pod, while it is still cut off): device messages and activity it stored that were
  stamped after the failover began. Any such write was accepted while the pair was moving to the
  other primary. Where the old primary is not running then (killed, drained) it can have accepted
  nothing, and that is said instead of a number. Beside it, from the role samples: the longest time
  both Redis said `role:master` with the same `pair:epoch` (writers hold then; a promotion sets the
  epoch one round trip after REPLICAOF NO ONE, so a sample may catch that instant, a split brain
  lasts);
- rejoin: from the region's return until the pair is Healthy with the old region a replicating
  replica again.
"""

import json
import math
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import kit
import regionfaults

from tier0_contract import keys, regionpair
from tier0_dev.procs import find_program

ROLE_LOOP = (
    "import time\n"
    "r.connection_pool.connection_kwargs.update(socket_timeout=0.5, socket_connect_timeout=0.5)\n"
    "end = time.time() + float(sys.argv[3])\n"
    "while time.time() < end:\n"
    "    try:\n"
    "        role, epoch = r.execute_command('ROLE')[0].decode(), int(r.get(sys.argv[4]) or 0)\n"
    "        print(f'{time.time():.3f} {role} {epoch}', flush=True)\n"
    "    except (redis.RedisError, OSError, ValueError):\n"
    "        pass\n"
    "    time.sleep(0.1)\n"
)
"""Run in a region API pod after `kit.REDIS_APP` (argv: host, `tier0-role-watch=<token>`, seconds,
epoch key). A killed `kubectl exec` leaves its process running in the container, so the loop is
bounded and carries a token in its command line that ROLE_STOP finds it by."""
ROLE_STOP = (
    "import os, signal, sys\n"
    "needle = ('tier0-role-' + 'watch=' + sys.argv[1]).encode()\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        if needle in open(f'/proc/{pid}/cmdline', 'rb').read():\n"
    "            os.kill(int(pid), signal.SIGTERM)\n"
    "    except OSError:\n"
    "        pass\n"
)
"""Ends the loops of one RoleWatch (its own command line spells the needle apart, so it lives on)."""


SAME_EPOCH_BOUND_S = 1.0
"""A promotion sets the new primary's epoch one round trip after REPLICAOF NO ONE, so the role
samples (0.1 s apart) may catch both Redis at the old epoch for a sample or two; a split brain lasts."""


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Callable[[kit.Cluster, str], AbstractContextManager[regionfaults.Fault]]
    transition: bool
    """Whether losing the region should move the pair (failover or switchover) before it returns."""
    duration: float
    """Seconds the client, ledger and reader pods run (the fault starts about 1 s in)."""
    hold: float
    """Seconds the region stays lost after the flip (or after the fault, without a transition)."""
    target: str


TARGET_LOSS = "outage <= detection + 1 s; devices <= 2 s, fresh p99 < 1 s after flip; 0 lost; 0 dual"

SCENARIOS = {
    "region kill": Scenario(
        "region kill",
        regionfaults.region_kill,
        True,
        35,
        4,
        TARGET_LOSS,
    ),
    "region partition": Scenario(
        "region partition",
        regionfaults.region_partition,
        True,
        35,
        4,
        TARGET_LOSS,
    ),
    "node drain": Scenario(
        "node drain",
        regionfaults.node_drain,
        True,
        45,
        4,
        "a switchover, no failover; 0 errors after retry",
    ),
    "rolling restart": Scenario(
        "rolling restart",
        regionfaults.api_rolling_restart,
        False,
        30,
        0,
        "0 errors after retry",
    ),
}


@dataclass(frozen=True)
class RoleSample:
    t: float
    region: str
    role: str
    epoch: int


@dataclass
class RegionRun:
    """Everything one scenario measured."""

    scenario: str
    old: str
    active_after: str
    outcome: kit.Outcome
    answers_again: bool
    """The API client's last call (after a retry) was answered."""
    errors_by_kind: dict[str, int]
    """The API client's failures after a retry, by what failed (`http-503`, `ConnectionRefusedError`)."""
    transition: str
    """`Failover region1->region2`, or `none`."""
    flip_s: float | None
    """From the fault's start to the flip (None: no transition)."""
    devices_after_flip_s: float | None
    fresh_telemetry_s: float | None
    fresh_activity_s: float | None
    device_acked: int
    device_lost: list[str]
    activity_acked: int
    activity_lost: list[str]
    dual_writes: int | None
    """Writes the old primary accepted after the failover began; None: it was not running."""
    same_epoch_s: float
    """The longest time both Redis said role:master at the same epoch (`same_epoch_masters`)."""
    rejoin_s: float | None
    fault: regionfaults.Fault
    notes: list[str] = field(default_factory=list)


# -- pure parts --------------------------------------------------------------------------------------


def parse_roles(region: str, log: str) -> list[RoleSample]:
    out = []
    for line in log.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] in {"master", "slave"} and words[0].replace(".", "", 1).isdigit():
            epoch = int(words[2]) if len(words) > 2 and words[2].isdigit() else 0
            out.append(RoleSample(float(words[0]), region, words[1], epoch))
    return out


def same_epoch_masters(samples: list[RoleSample], stale: float = 0.5) -> float:
    """The longest stretch (s) during which each region's latest sample (at most `stale` s old)
    said role:master and both gave the same epoch: two primaries a writer could not tell apart
    (writers hold then). 0.0 when it never happened."""
    latest: dict[str, RoleSample] = {}
    longest, since = 0.0, None
    for s in sorted(samples, key=lambda x: x.t):
        latest[s.region] = s
        masters = [x for x in latest.values() if s.t - x.t <= stale and x.role == "master"]
        dual = len(masters) >= 2 and len({x.epoch for x in masters}) == 1
        if dual and since is None:
            since = s.t
        elif not dual and since is not None:
            longest, since = max(longest, s.t - since), None
    if since is not None:
        longest = max(longest, max(x.t for x in samples) - since)
    return longest


def errors_by_kind(samples: list[kit.Sample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        if s.region is None:
            out[s.error] = out.get(s.error, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def dual_cell(runs: list["RegionRun"]) -> str:
    """Writes accepted by two primaries over `runs`, as the table and the report say it."""
    measured = [r.dual_writes for r in runs if r.dual_writes is not None]
    if measured:
        writes = str(sum(measured))
    elif all(r.transition == "none" for r in runs):
        writes = "no transition"
    else:
        writes = "old primary down"
    return f"{writes}; same-epoch masters {max(r.same_epoch_s for r in runs):.2f} s"


def freshness(readings: list[kit.Reading], mark: float) -> tuple[float | None, float | None]:
    """Seconds from `mark` until the reader saw telemetry, and user activity, stamped at or after it."""
    tel = next((r.t - mark for r in readings if r.t >= mark and r.telemetry is not None and r.telemetry >= mark), None)
    act = next((r.t - mark for r in readings if r.t >= mark and r.activity is not None and r.activity >= mark), None)
    return tel, act


def epoch_s(value: Any) -> float:
    return regionpair.LastTransition.model_validate(value).completed_at.timestamp()


def new_transition(status: dict[str, Any], since: float) -> dict[str, Any] | None:
    """status.lastTransition when it began at or after `since` (epoch s) and has completed."""
    last = status.get("lastTransition")
    if not isinstance(last, dict) or status.get("transition"):
        return None
    parsed = regionpair.LastTransition.model_validate(last)
    return last if parsed.started_at.timestamp() >= since else None


def rejoined(status: dict[str, Any], region: str) -> bool:
    """The pair is Healthy and `region` is active or a healthy replica whose link is up."""
    if status.get("phase") != "Healthy":
        return False
    if status.get("activeRegion") == region:
        return True
    view: dict[str, Any] = next((r for r in status.get("regions") or [] if r.get("name") == region), {})
    return bool(view.get("role") == "replica" and view.get("linkUp") and view.get("healthy"))


def stamped_after(stamps: list[str], since: float) -> int:
    """How many of `stamps` (ISO 8601 `timestamp_utc`s of activity history entries) are after `since`;
    unreadable ones are not counted."""
    count = 0
    for stamp in stamps:
        try:
            count += datetime.fromisoformat(stamp).timestamp() > since
        except (ValueError, TypeError):
            continue
    return count


def p99(values: list[float | None]) -> float | str:
    """The 99th percentile of what was measured; `never` when a run never got there."""
    if any(v is None for v in values):
        return "never"
    return kit.percentile([v for v in values if v is not None], 99)


def row(name: str, runs: list[RegionRun]) -> list[object]:
    """The benchmark table's cells for one scenario's runs."""
    outage = [r.outcome.outage_s for r in runs]
    transitions = sorted({r.transition for r in runs})
    return [
        name,
        kit.percentile(outage, 50),
        kit.percentile(outage, 99),
        sum(r.outcome.errors for r in runs),
        ", ".join(transitions),
        p99([r.devices_after_flip_s for r in runs]),
        p99([r.fresh_telemetry_s for r in runs]),
        p99([r.fresh_activity_s for r in runs]),
        f"{sum(len(r.device_lost) for r in runs)} of {sum(r.device_acked for r in runs)}",
        f"{sum(len(r.activity_lost) for r in runs)} of {sum(r.activity_acked for r in runs)}",
        dual_cell(runs),
        p99([r.rejoin_s for r in runs]),
    ]


def misses(name: str, runs: list[RegionRun], detection_s: float) -> list[str]:
    """The issue's targets that these runs of `name` missed (empty: all met)."""
    out = []
    lost = sum(len(r.device_lost) + len(r.activity_lost) for r in runs)
    if lost:
        out.append(f"{lost} acknowledged messages lost")
    if any(r.dual_writes for r in runs):
        out.append("writes accepted by two primaries")
    if any(r.same_epoch_s >= SAME_EPOCH_BOUND_S for r in runs):
        out.append(f"two Redis role:master at one epoch for {max(r.same_epoch_s for r in runs):.2f} s")
    if name in {"region kill", "region partition"}:
        worst = max(r.outcome.outage_s for r in runs)
        if worst > detection_s + 1:
            out.append(f"outage {worst:.2f} s > detection {detection_s:.0f} s + 1 s")
        devices = [r.devices_after_flip_s for r in runs]
        if any(d is None or d > 2 for d in devices):
            out.append("devices not publishing within 2 s of the flip")
        for what, values in (
            ("telemetry", [r.fresh_telemetry_s for r in runs]),
            ("activity", [r.fresh_activity_s for r in runs]),
        ):
            worst_fresh = p99(list(values))
            if isinstance(worst_fresh, str):
                out.append(f"fresh {what} p99 {worst_fresh}")
            elif worst_fresh >= 1:
                out.append(f"fresh {what} p99 {worst_fresh:.2f} s not < 1 s")
    if name == "node drain" and any(not r.transition.startswith("Switchover") for r in runs):
        out.append(f"not a switchover: {', '.join(sorted({r.transition for r in runs}))}")
    if name in {"node drain", "rolling restart"} and any(r.outcome.errors for r in runs):
        out.append(f"{sum(r.outcome.errors for r in runs)} errors after one retry")
    return out


# -- I/O ---------------------------------------------------------------------------------------------


class RoleWatch:
    """Each region's Redis role and epoch every 0.1 s, read by a loop in that region's own API pod
    (started by `kubectl exec`, so a partitioned region is seen too; restarted when the pod is
    replaced), for as long as the block lasts."""

    def __init__(self, c: kit.Cluster, bound: float) -> None:
        self.c, self.bound, self.token = c, bound, uuid.uuid4().hex[:12]
        self.samples: list[RoleSample] = []
        self.stop = threading.Event()
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(r,), daemon=True) for r in ("region1", "region2")]

    def __enter__(self) -> "RoleWatch":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with self.lock:
            for proc in self.procs.values():
                proc.terminate()
        for t in self.threads:
            t.join(timeout=10)
        for region in ("region1", "region2"):
            # Best effort: a pod that is gone took its loop with it, and the loop is bounded anyway.
            stop = self._exec(region, ["python", "-c", ROLE_STOP, self.token])
            try:
                subprocess.run(stop, capture_output=True, timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def _exec(self, region: str, command: list[str]) -> list[str]:
        pod = f"deploy/{self.c.rel.name}-region-api-{region}"
        return [
            find_program("kubectl"),
            "--kubeconfig",
            str(self.c.rel.kubeconfig),
            "-n",
            self.c.ns,
            "exec",
            pod,
            "--",
            *command,
        ]

    def _loop(self, region: str) -> None:
        host = self.c.redis_host(region)
        script = kit.REDIS_APP + ROLE_LOOP
        argv = self._exec(region, ["python", "-c", script, host, f"tier0-role-watch={self.token}", str(self.bound)])
        argv.append(keys.PAIR_EPOCH)
        while not self.stop.is_set():
            with self.lock:
                if self.stop.is_set():
                    return
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                self.procs[region] = proc
            assert proc.stdout is not None
            for line in proc.stdout:
                self.samples.extend(parse_roles(region, line))
            proc.wait()
            self.stop.wait(0.5)


class RejoinWatch(threading.Thread):
    """When the pair is Healthy again with `region` back (active or a replicating replica)."""

    def __init__(self, c: kit.Cluster, region: str, timeout: float = 180) -> None:
        super().__init__(daemon=True)
        self.c, self.region, self.timeout = c, region, timeout
        self.at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if rejoined(self.c.status(), self.region):
                    self.at = time.time()
                    return
            except AssertionError:  # kubectl failed once: ask again
                pass
            time.sleep(0.5)


def wait_flip(c: kit.Cluster, since: float, timeout: float) -> dict[str, Any] | None:
    """The completed transition that began after `since`, waited for up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            last = new_transition(c.status(), since)
        except AssertionError:
            last = None
        if last is not None:
            return last
        time.sleep(0.1)
    return None


OLD_PRIMARY = (
    "import json\n"
    "since = float(sys.argv[2])\n"
    "role = r.execute_command('ROLE')[0].decode()\n"
    "devices = r.zcount(sys.argv[3], f'({since}', '+inf')\n"
    "history = [json.loads(e).get('timestamp_utc', '') for e in r.lrange(sys.argv[4], 0, 199)]\n"
    "print(json.dumps({'role': role, 'devices': devices, 'history': history}))\n"
)
"""Run in the old region's API pod after `kit.REDIS_APP`: its Redis's role, the device messages it
stored stamped after `since`, and the stamps of its newest activity entries."""


def old_primary_writes(c: kit.Cluster, region: str, since: float) -> tuple[int | None, str]:
    """Writes `region`'s Redis holds that were stamped after `since`, read from the region's own API
    pod (through a partition, which lets a region's pods reach each other): device messages in
    `devices:last_seen` and activity in its history. None when it cannot be read (the region is
    down); 0 when it replicates (its data is then the new primary's)."""
    try:
        host = c.redis_host(region)
        args = [f"{since:.3f}", keys.DEVICES_LAST_SEEN, keys.USERS_ACTIVITY_HISTORY]
        seen = json.loads(c.redis_script(region, host, OLD_PRIMARY, *args))
    except (AssertionError, ValueError):
        return None, f"{region}'s Redis not readable (down)"
    if seen["role"] != "master":
        return 0, f"{region}'s Redis is {seen['role']}"
    activity = stamped_after(seen["history"], since)
    devices = int(seen["devices"])
    return devices + activity, f"{region}'s Redis is master: {devices} device and {activity} activity writes"


def detection_s(c: kit.Cluster) -> float:
    """The operator's detection budget: failureThreshold probes, probeIntervalSeconds apart."""
    spec = regionpair.RegionPairSpec.model_validate(c.pair()["spec"])
    return spec.failover.failure_threshold * spec.failover.probe_interval_seconds


def run(c: kit.Cluster, scenario: Scenario) -> RegionRun:
    """One run of `scenario` against the pair's active region, everything put back afterwards."""
    old = c.healthy()
    notes: list[str] = []
    with ExitStack() as stack:
        devices = stack.enter_context(c.ledger(scenario.duration))
        activity = stack.enter_context(c.activity_ledger(scenario.duration))
        readings = stack.enter_context(c.fresh(scenario.duration))
        samples = stack.enter_context(c.client(scenario.duration))
        roles = stack.enter_context(RoleWatch(c, bound=scenario.duration + 30))
        t0 = time.time()
        dual: int | None = None
        last: dict[str, Any] | None = None
        with scenario.fault(c, old) as fault:
            if scenario.transition:
                last = wait_flip(c, t0 - 0.5, timeout=scenario.duration - 10)
            mark = epoch_s(last) if last is not None else fault.applied
            time.sleep(max(0.0, mark + scenario.hold - time.time()))
            if last is not None:
                started = regionpair.LastTransition.model_validate(last).started_at.timestamp()
                dual, note = old_primary_writes(c, old, started)
                notes.append(note)
        rejoin = RejoinWatch(c, old)
        rejoin.start()
    rejoin.join()
    returned = fault.returned or time.time()
    t0 = fault.started  # the fault's own moment (a kill first orphans the region's workloads)
    notes += fault.notes
    after = c.healthy()  # acknowledges a failover (spec follows status) for the next run
    flip = epoch_s(last) if last is not None else None
    mark = flip if flip is not None else fault.applied
    tel, act = freshness(readings, mark)
    outcome = kit.summarize(samples, t0, c.other(old) if last is not None else old)
    transition = "none"
    if last is not None:
        transition = f"{last['type']} {last['from']}->{last['to']}, {last.get('trigger') or 'untold'}"
        notes.append(f"why: {last.get('reason') or 'untold'}")
    return RegionRun(
        scenario=scenario.name,
        old=old,
        active_after=after,
        outcome=outcome,
        answers_again=bool(samples) and samples[-1].region is not None,
        errors_by_kind=errors_by_kind(samples),
        transition=transition,
        flip_s=None if flip is None else flip - t0,
        devices_after_flip_s=devices.first_ack_after(mark),
        fresh_telemetry_s=tel,
        fresh_activity_s=act,
        device_acked=len(devices.acked),
        device_lost=c.missing(devices),
        activity_acked=len(activity.acked),
        activity_lost=c.missing_activity(activity),
        dual_writes=dual,
        same_epoch_s=same_epoch_masters(roles.samples),
        rejoin_s=None if rejoin.at is None else max(0.0, rejoin.at - returned),
        fault=fault,
        notes=notes,
    )


def describe(r: RegionRun) -> str:
    """One line for the e2e report."""

    def s(v: float | None) -> str:
        return "never" if v is None or math.isnan(v) else f"{v:.2f} s"

    o = r.outcome
    kinds = ", ".join(f"{n} {k}" for k, n in r.errors_by_kind.items())
    moved = f"flip after {s(r.flip_s)}; from it:" if r.transition != "none" else "no transition; from the fault:"
    return (
        f"{r.scenario} of {r.old} ({r.transition}, active after: {r.active_after}): {o.requests} requests, "
        f"{o.first_try_errors} failed first try, {o.errors} after a retry{f' ({kinds})' if kinds else ''}, "
        f"longest gap {o.outage_s:.2f} s; {moved} devices acked again {s(r.devices_after_flip_s)}, fresh telemetry "
        f"{s(r.fresh_telemetry_s)}, activity {s(r.fresh_activity_s)}; lost {len(r.device_lost)} of "
        f"{r.device_acked} device and {len(r.activity_lost)} of {r.activity_acked} activity messages; dual-primary "
        f"writes {dual_cell([r])}; rejoined {s(r.rejoin_s)} after the region returned"
        + (f" [{'; '.join(r.notes)}]" if r.notes else "")
    )
