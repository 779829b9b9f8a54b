"""What to do about a pair, decided from its spec, its status and the latest probes. Pure.

The rules of a round, in the order `rounds.plan()` applies them (the one entry point the
reconciler calls; only the checks of step 0 come before the probes):

0. `read_spec()` and `unknown_regions()`: can this round act at all? A spec the model rejects, or a
   status naming a region the spec no longer has (a rename), is a `Problem`: reported as
   `Ready=False` with its reason (`problem_status()`) and an Event, and nothing is done;
1. `observe()`: fold the probes into the status (per-region health, failures, lag, pipeline);
2. `detect()`: who sees the active region failing (its probes, the standby's replication link,
   Kubernetes); `decide()`: the one action of this round (bootstrap, fence, promote, start a
   transition, ...);
3. `guard()`: what the active primary's Redis must hold besides its role (the pair's epoch,
   `min-replicas-to-write` by `spec.replication`);
4. `report()`: phase, conditions and the replication status, from all of the above;
5. `events()`: the Events a change between two written statuses deserves (asked by the reconciler
   at each write: only it knows what it wrote last).

Keeping every rule here (failover threshold and the fast path's witnesses, fencing, switchover
requests, acknowledging a failover, the write guard, pipeline health) means each is unit-tested
without Redis or an apiserver.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from tier0_contract import pipeline
from tier0_contract import regionpair as rp
from tier0_operator.model import NOTHING_SEEN, Probe, RegionSeen

SWITCHOVER_RETRY_MIN_SECONDS = 5.0
SWITCHOVER_RETRY_MAX_SECONDS = 300.0
REPL_PING_PERIOD = 1
"""repl-ping-replica-period of the active primary (Redis's default is 10): its replica hears from it
every second even when nothing is written, so `master_last_io_seconds_ago` can tell a silent primary
within `failover.linkSilenceSeconds`."""


@dataclass(frozen=True)
class Nothing:
    reason: str = ""


@dataclass(frozen=True)
class Bootstrap:
    """First sight of the pair: record which region is active."""

    active: str


@dataclass(frozen=True)
class MakeReplica:
    """REPLICAOF `of` on `region`: keeps the standby replicating, or fences a returning primary."""

    region: str
    of: str
    fencing: bool


@dataclass(frozen=True)
class Promote:
    """The active region's Redis is a replica with no primary anywhere: make it the primary."""

    region: str


@dataclass(frozen=True)
class StartSwitchover:
    to: str
    attempt: int = 1
    reason: str = ""
    """Empty for one spec.activeRegion asked for (the reconciler says so)."""
    trigger: rp.Trigger = "Requested"


@dataclass(frozen=True)
class StartFailover:
    to: str
    lost_bytes: int
    reason: str
    trigger: rp.Trigger = "Failure"
    witnesses: tuple[rp.Witness, ...] = ()
    detection_seconds: float | None = None


@dataclass(frozen=True)
class Acknowledge:
    """spec.activeRegion now names the region that is already active (e.g. after a failover)."""

    region: str


@dataclass(frozen=True)
class Blocked:
    """Something should happen but cannot now; reported in conditions, retried next probe."""

    reason: str
    message: str


@dataclass(frozen=True)
class Resume:
    """A transition is recorded in status: continue it (transition.py decides the step)."""


Action = Nothing | Bootstrap | MakeReplica | Promote | StartSwitchover | StartFailover | Acknowledge | Blocked | Resume


@dataclass(frozen=True)
class Guard:
    """Settings the active primary's Redis must hold: SET keys.PAIR_EPOCH, CONFIG SET min-replicas-*
    and repl-ping-replica-period (`REPL_PING_PERIOD`: the standby's witness needs it)."""

    region: str
    epoch: int | None  # None: already written
    min_replicas_to_write: int | None  # None: already as wanted
    min_replicas_max_lag: int
    ping_period: int | None = None  # repl-ping-replica-period to set (None: already as wanted)


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Problem:
    """Why a round cannot act: reported (condition Ready=False with this reason, an Event), never raised."""

    reason: str  # InvalidSpec | RegionsChanged | RoundFailed
    message: str


UNHEALTHY_PIPELINE: frozenset[rp.PipelineState] = frozenset({"stalled", "dead"})
CHANGING_REGIONS = 'see operator/README.md, "Changing a pair\'s regions"'


# --- 0. check --------------------------------------------------------------------------------------


def read_spec(raw: Any) -> rp.RegionPairSpec | Problem:
    """The spec as the model reads it, or why it cannot (the CRD admits what an older or newer
    operator's model may not: reported, so the daemon neither crashes nor guesses)."""
    try:
        return rp.RegionPairSpec.model_validate(dict(raw or {}))
    except ValidationError as e:
        errors = e.errors(include_url=False)
        parts = [
            f"spec.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" if err["loc"] else f"spec: {err['msg']}"
            for err in errors[:3]
        ]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return Problem("InvalidSpec", "the operator cannot read spec: " + "; ".join(parts) + more)


def unknown_regions(spec: rp.RegionPairSpec, status: rp.RegionPairStatus) -> Problem | None:
    """A region the status acts on (the active one, a transition's ends) that spec.regions lacks, e.g.
    after a rename under a CRD without the immutability rules, or a status edited by hand. Acting on
    it would guess which Redis is which, so the pair is left as it is and this is reported."""
    names = spec.region_names
    t = status.transition
    named = {
        "status.activeRegion": status.active_region,
        "status.transition.from": t.from_region if t else None,
        "status.transition.to": t.to_region if t else None,
    }
    bad = [f"{where} {value!r}" for where, value in named.items() if value is not None and value not in names]
    if not bad:
        return None
    return Problem(
        "RegionsChanged",
        f"{', '.join(bad)} not in spec.regions ({', '.join(names)}): the operator changes nothing until "
        f"they agree; region names are immutable, to rename {CHANGING_REGIONS}",
    )


def problem_status(status: rp.RegionPairStatus, problem: Problem, generation: int, at: datetime) -> rp.RegionPairStatus:
    """The status reporting `problem`: Ready=False with its reason and message; the rest as it was
    (the last measurements stay, the operator has not acted since)."""
    ready = rp.Condition(type=rp.READY, status="False", reason=problem.reason, message=problem.message)
    (ready,) = merge_conditions(status.conditions, [ready], at, generation)
    others = tuple(c for c in status.conditions if c.type != rp.READY)
    return status.model_copy(update={"observed_generation": generation, "conditions": (ready, *others)})


# --- 1. observe ------------------------------------------------------------------------------------


def failures(status: rp.RegionPairStatus, region: str) -> int:
    r = status.region(region)
    return r.consecutive_failures if r is not None else 0


def failing_since(status: rp.RegionPairStatus, region: str, at: datetime) -> datetime:
    """When the region's current streak of failed probes began (`at`: this probe's time, the first)."""
    r = status.region(region)
    if r is None or r.consecutive_failures == 0 or r.failing_since is None:
        return at
    return r.failing_since


def observe(
    spec: rp.RegionPairSpec,
    status: rp.RegionPairStatus,
    probes: dict[str, Probe],
    seen: Mapping[str, RegionSeen] | None = None,
) -> rp.RegionPairStatus:
    """The status with this round's probes (and what Kubernetes sees of each region) folded in:
    failures count consecutively, a healthy probe resets them; lag is measured when both ends
    answer and kept otherwise."""
    seen = seen or {}
    lag = lag_bytes(spec, status.active_region, probes, status.lag_bytes)
    verdicts = pipelines(spec, status, probes)
    regions = tuple(
        rp.RegionStatus(
            name=r.name,
            role=probes[r.name].role,
            healthy=probes[r.name].healthy,
            replication_offset=probes[r.name].offset,
            lag_bytes=lag if r.name != status.active_region else 0,
            link_up=probes[r.name].link_up,
            consecutive_failures=0 if probes[r.name].healthy else failures(status, r.name) + 1,
            failing_since=None if probes[r.name].healthy else failing_since(status, r.name, probes[r.name].at),
            last_probe_time=probes[r.name].at,
            message=probes[r.name].error,
            pipeline=verdicts.get(r.name),
            redis_endpoints=seen.get(r.name, NOTHING_SEEN).redis,
            api_endpoints=seen.get(r.name, NOTHING_SEEN).api,
        )
        for r in spec.regions
    )
    return status.model_copy(update={"regions": regions, "lag_bytes": lag})


def lag_bytes(spec: rp.RegionPairSpec, active: str | None, probes: dict[str, Probe], last: int) -> int:
    """Bytes the standby is behind the active primary; the last known value when unmeasurable."""
    if active is None:
        return 0
    pa, ps = probes[active], probes[spec.other(active).name]
    if pa.reachable and pa.role == "primary" and ps.reachable and ps.replicates_from(spec.region(active).redis):
        return max(0, pa.offset - ps.offset)
    return last


def pipelines(
    spec: rp.RegionPairSpec, status: rp.RegionPairStatus, probes: dict[str, Probe]
) -> dict[str, rp.PipelineStatus]:
    """Each region's pipeline, judged by `pipeline.assess()` on the heartbeats of the active primary
    (every worker writes its heartbeat into the Redis it writes to, i.e. the primary) against that
    Redis's own clock. Ingest and activity are combined into the worse of the two."""
    if status.active_region is None:
        return {}
    source = probes[status.active_region]
    if not source.reachable or source.role != "primary" or source.server_time is None:
        why = f"heartbeats unreadable: {status.active_region}'s Redis is not an answering primary"
        return {r.name: rp.PipelineStatus(state="unknown", reason=why) for r in spec.regions}
    stall = spec.pipeline.stall_after_seconds
    out = {}
    for r in spec.regions:
        verdicts = [
            pipeline.assess(source.heartbeats, component, r.name, source.server_time, stall)
            for component in ("ingest", "activity")
        ]
        worst = min(verdicts, key=lambda h: _PIPELINE_RANK[h.state])
        out[r.name] = rp.PipelineStatus(state=worst.state, reason="; ".join(h.reason for h in verdicts))
    return out


def held_routes(
    spec: rp.RegionPairSpec, region: str, heartbeats: tuple[pipeline.Heartbeat, ...], server_time: float | None
) -> dict[str, str]:
    """The Services of spec.services that must not move to `region` yet, with why: those that feed a
    pipeline component (`ServiceRoute.feeds`) no worker of which in `region` is connected to its
    broker, judged on the heartbeats of the Redis being made or already the primary (the workers
    write them into the primary) against that Redis's own clock (`server_time`). Unreadable
    heartbeats (None) hold nothing: routing waits for evidence that a region would drop messages,
    not for the lack of it."""
    if server_time is None:
        return {}
    out = {}
    for route in spec.routes:
        if route.feeds is None:
            continue
        why = pipeline.not_feeding(heartbeats, route.feeds, region, server_time, spec.pipeline.stall_after_seconds)
        if why is not None:
            out[route.name] = why
    return out


_PIPELINE_RANK: dict[pipeline.State, int] = {"dead": 0, "stalled": 1, "absent": 2, "idle": 3, "ok": 4}


def pipeline_unhealthy(status: rp.RegionPairStatus, region: str) -> rp.PipelineStatus | None:
    """The region's pipeline verdict when it is dead or stalled (an absent pipeline is not: a pair
    may run without tier0's workers), else None."""
    r = status.region(region)
    if r is not None and r.pipeline is not None and r.pipeline.state in UNHEALTHY_PIPELINE:
        return r.pipeline
    return None


# --- 2. detect -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    """Who sees the active region failing this round. Empty when its last probe answered; else
    "Probes" (the operator's own, failing for `failing_for` seconds) and each independent witness
    that agrees, with what it said."""

    witnesses: tuple[rp.Witness, ...] = ()
    said: tuple[str, ...] = ()
    failing_for: float | None = None  # seconds since the streak's first failed probe (None: unknown)

    @property
    def corroborated(self) -> bool:
        """The probes and at least one witness independent of them agree: the fast path."""
        return len(self.witnesses) > 1


def standby_saw(spec: rp.RegionPairSpec, active: str, ps: Probe) -> str | None:
    """What the standby's Redis says of the active primary when it has lost it (None: nothing): its
    link to it dropped (a link that was up: a replica that never connected, or is starting a sync
    it asked for, has lost nothing), or the primary has sent nothing for `linkSilenceSeconds` while
    it pings every second. Only while the standby replicates from the active region."""
    if not ps.reachable or not ps.replicates_from(spec.region(active).redis):
        return None
    standby = ps.region
    if not ps.link_up and not ps.syncing and ps.link_down_seconds is not None:
        return f"{standby}'s replication link to {active} is down ({ps.link_down_seconds} s)"
    silence = spec.failover.link_silence_seconds
    if ps.link_up and ps.last_io_seconds is not None and ps.last_io_seconds >= silence:
        return f"{standby} has heard nothing from {active} for {ps.last_io_seconds} s"
    return None


def detect(
    spec: rp.RegionPairSpec,
    status: rp.RegionPairStatus,
    probes: dict[str, Probe],
    at: datetime | None,
    seen: Mapping[str, RegionSeen] | None = None,
) -> Detection:
    """The witnesses of the active region's failure this round (after `observe()`). The standby's
    Redis and Kubernetes see the active Redis by other paths than the operator's probes, so a network
    blip between the operator and the active region does not fool them; a crash is loud to both."""
    if status.active_region is None or status.transition is not None:
        return Detection()
    active = status.active_region
    mine = status.region(active)
    if probes[active].healthy or mine is None or mine.consecutive_failures == 0:
        return Detection()
    since = mine.failing_since
    failing_for = max(0.0, (at - since).total_seconds()) if at is not None and since is not None else None
    witnesses: list[rp.Witness] = ["Probes"]
    said = [f"{active} failed {mine.consecutive_failures} consecutive probes"]
    if failing_for is not None:
        said[0] += f" in {failing_for:.2f} s"
    link = standby_saw(spec, active, probes[spec.other(active).name])
    if link is not None:
        witnesses.append("StandbyLink")
        said.append(link)
    kube = (seen or {}).get(active, NOTHING_SEEN).redis_down
    if kube is not None:
        witnesses.append("Kubernetes")
        said.append(f"{kube} ({active})")
    return Detection(tuple(witnesses), tuple(said), failing_for)


def fast_failover_due(spec: rp.RegionPairSpec, detection: Detection, fails: int) -> bool:
    """The fast path is confirmed: a witness agrees now and the probes have kept failing (at least
    twice) for `fastConfirmSeconds`."""
    return (
        detection.corroborated
        and fails >= 2
        and detection.failing_for is not None
        and detection.failing_for >= spec.failover.fast_confirm_seconds
    )


def slow_failover_due(spec: rp.RegionPairSpec, detection: Detection, fails: int) -> bool:
    """Today's budget: `failureThreshold` consecutive failed probes, spanning `failureThreshold - 1`
    probe intervals (less a tenth of one, the cadence's slack): while the fast path probes every
    `fastProbeIntervalSeconds` the count alone would come sooner. Without a clock, the count."""
    policy = spec.failover
    if fails < policy.failure_threshold:
        return False
    span = (policy.failure_threshold - 1 - 0.1) * policy.probe_interval_seconds
    return detection.failing_for is None or detection.failing_for >= span


def confirmation_left(
    spec: rp.RegionPairSpec, status: rp.RegionPairStatus, detection: Detection, at: datetime
) -> float | None:
    """Seconds until the fast path's confirmation is due (None: not on the fast path). The active
    region's probe is bounded by it: with a witness agreeing, an answer later than that is a
    failure too, and waiting for it only delays the failover the witnesses support."""
    if not detection.corroborated or status.active_region is None:
        return None
    mine = status.region(status.active_region)
    if mine is None or mine.failing_since is None:
        return None
    return spec.failover.fast_confirm_seconds - (at - mine.failing_since).total_seconds()


def next_interval(spec: rp.RegionPairSpec, detection: Detection) -> float:
    """Seconds to the next round: `fastProbeIntervalSeconds` while a witness agrees with failing
    probes (the fast path confirming), the probe interval otherwise."""
    if detection.corroborated:
        return min(spec.failover.fast_probe_interval_seconds, spec.failover.probe_interval_seconds)
    return spec.failover.probe_interval_seconds


def witnessed(witnesses: tuple[rp.Witness, ...], seconds: float | None) -> str:
    """`witnesses: Probes, StandbyLink; detected in 0.62 s` for messages and Events."""
    text = f"witnesses: {', '.join(witnesses)}"
    return text + (f"; detected in {seconds:.2f} s" if seconds is not None else "")


# --- 2. decide -------------------------------------------------------------------------------------


def switchover_retry_at(spec: rp.RegionPairSpec, status: rp.RegionPairStatus) -> datetime | None:
    """When a rolled-back switchover to spec.activeRegion is tried again (None: nothing to retry).
    spec.activeRegion still asks for it, so the operator converges, but with a backoff that doubles
    per attempt (2 x switchoverTimeoutSeconds, at least 5 s, at most 5 min): each attempt pauses
    writes, and a standby that cannot catch up must not turn that into a pause every few seconds."""
    last = status.last_transition
    if (
        last is None
        or last.type != "Switchover"
        or last.outcome != "RolledBack"
        or last.to_region != spec.active_region
        or status.requested_region != spec.active_region
        or status.active_region == spec.active_region
    ):
        return None
    base = max(SWITCHOVER_RETRY_MIN_SECONDS, 2 * spec.failover.switchover_timeout_seconds)
    backoff = min(SWITCHOVER_RETRY_MAX_SECONDS, base * 2 ** (last.attempt - 1))
    return last.completed_at + timedelta(seconds=backoff)


def decide(
    spec: rp.RegionPairSpec,
    status: rp.RegionPairStatus,
    probes: dict[str, Probe],
    at: datetime | None = None,
    seen: Mapping[str, RegionSeen] | None = None,
) -> Action:
    """The next action of the pair. `at` (now) times the retry of a rolled-back switchover; without
    it none is retried. `seen`: the regions as Kubernetes shows them (a drained active region is
    switched away from before it goes)."""
    if status.transition is not None:
        return Resume()  # an in-flight transition finishes even if the pair was paused meanwhile
    if spec.paused:
        return Nothing("paused")
    if status.active_region is None:
        return _bootstrap(spec, probes)

    active = spec.region(status.active_region)
    standby = spec.other(active.name)
    pa, ps = probes[active.name], probes[standby.name]
    policy = spec.failover

    fails = failures(status, active.name)
    stalled = pipeline_unhealthy(status, active.name)
    detection = detect(spec, status, probes, at, seen)
    slow = slow_failover_due(spec, detection, fails)
    failed = slow or fast_failover_due(spec, detection, fails)
    if failed or (stalled is not None and spec.pipeline.on_stall == "Failover"):
        if failed:
            why = "; ".join(detection.said) or f"{active.name} failed {fails} consecutive probes"
            if detection.corroborated and not slow:
                why += f" (fast path: {witnessed(detection.witnesses, None)})"
        else:
            why = f"{active.name}'s pipeline is {stalled.state if stalled else ''}: {stalled.reason if stalled else ''}"
        if policy.mode == "Manual":
            return Blocked("ManualFailover", f"{why}, and failover.mode is Manual")
        if not ps.healthy:
            return Blocked("StandbyUnavailable", f"{why}, and {standby.name} is not healthy")
        if not failed and pipeline_unhealthy(status, standby.name) is not None:
            return Blocked("StandbyPipelineUnhealthy", f"{why}, and {standby.name}'s pipeline is no better")
        if not failed:
            return StartFailover(standby.name, lost_bytes=status.lag_bytes, reason=why, trigger="PipelineStall")
        return StartFailover(
            standby.name,
            lost_bytes=status.lag_bytes,
            reason=why,
            trigger="Failure",
            witnesses=detection.witnesses or ("Probes",),
            detection_seconds=round(detection.failing_for, 3) if detection.failing_for is not None else None,
        )

    if pa.reachable and pa.role == "replica":
        if ps.reachable and ps.role == "primary":
            # Traffic goes to the active region: make the other one read-only before promoting.
            return MakeReplica(standby.name, of=active.name, fencing=True)
        return Promote(active.name)

    if ps.reachable and ps.role == "primary":
        # Before the first promotion (epoch 1) a primary standby is just not set up yet.
        return MakeReplica(standby.name, of=active.name, fencing=status.epoch > 1)
    if ps.reachable and not ps.replicates_from(active.redis):
        return MakeReplica(standby.name, of=active.name, fencing=False)

    disrupted = (seen or {}).get(active.name, NOTHING_SEEN).disruption
    # A region that no longer answers is the failure detector's (its confirmation may be running).
    if disrupted is not None and pa.reachable and spec.failover.on_disruption == "Switchover":
        why = f"{active.name} is being taken down: {disrupted}"
        if (seen or {}).get(standby.name, NOTHING_SEEN).disruption is not None:
            # Both going (a whole node drained with both regions on it): moving would only ping-pong.
            return Blocked("DisruptionEverywhere", f"{why}; so is {standby.name}: no switchover")
        blocked = _switchover_blocked(active.name, standby.name, pa, ps)
        if blocked is not None:
            return Blocked("DisruptionNoStandby", f"{why}; no switchover: {blocked.message}")
        return StartSwitchover(standby.name, reason=why, trigger="Disruption")

    retry_at = switchover_retry_at(spec, status)
    retry = retry_at is not None and at is not None and at >= retry_at
    if spec.active_region != status.requested_region or retry:
        if spec.active_region == active.name:
            return Acknowledge(active.name)
        blocked = _switchover_blocked(active.name, standby.name, pa, ps)
        if blocked is not None:
            return blocked
        last = status.last_transition
        return StartSwitchover(standby.name, attempt=last.attempt + 1 if retry and last is not None else 1)
    return Nothing()


def _switchover_blocked(active: str, standby: str, pa: Probe, ps: Probe) -> Blocked | None:
    """Why a switchover from `active` to `standby` cannot start now (None: it can)."""
    if not pa.reachable:
        return Blocked("ActiveUnavailable", f"switchover needs {active} reachable to pause its writes")
    if not ps.healthy:
        return Blocked("TargetUnavailable", f"switchover target {standby} is not healthy")
    if not ps.link_up:
        return Blocked("StandbyNotReplicating", f"{standby} has no replication link up yet")
    return None


def _bootstrap(spec: rp.RegionPairSpec, probes: dict[str, Probe]) -> Action:
    want = spec.region(spec.active_region)
    other = spec.other(want.name)
    pw, po = probes[want.name], probes[other.name]
    if pw.reachable and pw.role == "primary":
        return Bootstrap(want.name)
    if po.reachable and po.role == "primary" and (not pw.reachable or pw.replicates_from(other.redis)):
        # Adopt the existing topology; a switchover to spec.activeRegion follows.
        return Bootstrap(other.name)
    if pw.reachable:
        return Bootstrap(want.name)  # no primary anywhere: the wanted one gets promoted next
    return Nothing(f"waiting for {want.name} to answer")


def bootstrapped(spec: rp.RegionPairSpec, status: rp.RegionPairStatus, active: str) -> rp.RegionPairStatus:
    """The status after Bootstrap: `active` recorded; spec.activeRegion counts as acted on only if it
    names that region (otherwise the adopted topology is switched over next)."""
    return status.model_copy(
        update={
            "active_region": active,
            "requested_region": spec.active_region if spec.active_region == active else None,
            "epoch": max(1, status.epoch),
        }
    )


# --- 3. guard --------------------------------------------------------------------------------------


def in_sync(spec: rp.RegionPairSpec, active: str, probes: dict[str, Probe]) -> bool:
    ps = probes[spec.other(active).name]
    return ps.reachable and ps.link_up and ps.replicates_from(spec.region(active).redis)


def wanted_min_replicas(
    spec: rp.RegionPairSpec, status: rp.RegionPairStatus, probes: dict[str, Probe], at: datetime
) -> int | None:
    """`min-replicas-to-write` the active primary should run with (None: no active region yet).

    1 while the standby replicates (a primary cut from it stops acknowledging after
    `minReplicasMaxLagSeconds`); 0 under `whenStandbyDown: Accept` once the standby has been out of
    sync for `failureThreshold` probe intervals (writes go on, at risk) and until it is in sync
    again; `Hold` never lowers it. In between, the last decision stands."""
    if status.active_region is None:
        return None
    if in_sync(spec, status.active_region, probes):
        return 1
    repl = status.replication or rp.ReplicationStatus()
    budget = timedelta(seconds=spec.failover.probe_interval_seconds * spec.failover.failure_threshold)
    since = repl.standby_out_of_sync_since
    if spec.replication.when_standby_down == "Accept" and since is not None and at - since >= budget:
        return 0
    return repl.min_replicas_to_write if repl.min_replicas_to_write is not None else 1


def guard(spec: rp.RegionPairSpec, status: rp.RegionPairStatus, probes: dict[str, Probe], at: datetime) -> Guard | None:
    """What to write into the active primary this round (None: it holds what it should)."""
    if spec.paused or status.transition is not None or status.active_region is None:
        return None
    pa = probes[status.active_region]
    if not pa.reachable or pa.role != "primary":
        return None
    want = wanted_min_replicas(spec, status, probes, at)
    lag = spec.replication.min_replicas_max_lag_seconds
    set_min = (
        want if want is not None and (want != pa.min_replicas_to_write or lag != pa.min_replicas_max_lag) else None
    )
    set_epoch = status.epoch if pa.epoch != status.epoch else None
    set_ping = REPL_PING_PERIOD if pa.ping_period is not None and pa.ping_period != REPL_PING_PERIOD else None
    if set_min is None and set_epoch is None and set_ping is None:
        return None
    return Guard(status.active_region, set_epoch, set_min, lag, set_ping)


def promotion_min_replicas(spec: rp.RegionPairSpec, standby_reachable: bool) -> int:
    """min-replicas-to-write of a just promoted primary: 1 when its standby (the old primary) is there
    to replicate, else 0 under Accept (a failover to a lone region keeps writing, at risk) and 1 under
    Hold (writes wait for the old region)."""
    if standby_reachable or spec.replication.when_standby_down == "Hold":
        return 1
    return 0


# --- 4. report -------------------------------------------------------------------------------------


def replication_of(
    spec: rp.RegionPairSpec, status: rp.RegionPairStatus, probes: dict[str, Probe], at: datetime
) -> rp.ReplicationStatus | None:
    """The write guard as decided this round (what `guard()` makes the primary hold)."""
    if status.active_region is None:
        return None
    before = status.replication or rp.ReplicationStatus()
    synced = in_sync(spec, status.active_region, probes)
    out_of_sync_since = None if synced else (before.standby_out_of_sync_since or at)
    status = status.model_copy(
        update={"replication": before.model_copy(update={"standby_out_of_sync_since": out_of_sync_since})}
    )
    wanted = wanted_min_replicas(spec, status, probes, at)
    at_risk = not synced and wanted == 0
    return rp.ReplicationStatus(
        min_replicas_to_write=wanted,
        at_risk=at_risk,
        at_risk_since=(before.at_risk_since or at) if at_risk else None,
        standby_out_of_sync_since=out_of_sync_since,
    )


def phase_of(spec: rp.RegionPairSpec, status: rp.RegionPairStatus, probes: dict[str, Probe]) -> rp.Phase:
    if status.transition is not None:
        return "SwitchingOver" if status.transition.type == "Switchover" else "FailingOver"
    if status.active_region is None:
        return "Pending"
    active = spec.region(status.active_region)
    pa, ps = probes[active.name], probes[spec.other(active.name).name]
    if not pa.healthy or pa.role != "primary":
        down_long = failures(status, active.name) >= spec.failover.failure_threshold
        if down_long and (spec.failover.mode == "Manual" or not ps.healthy or spec.paused):
            return "Failed"
        return "Degraded"
    if not ps.healthy or not ps.link_up or not ps.replicates_from(active.redis):
        return "Degraded"
    if pipeline_unhealthy(status, active.name) is not None:
        return "Degraded"
    return "Healthy"


def report(
    spec: rp.RegionPairSpec,
    status: rp.RegionPairStatus,
    probes: dict[str, Probe],
    action: Action,
    generation: int,
    at: datetime,
) -> rp.RegionPairStatus:
    """The status to write after this round: phase, conditions (times move only on a change) and
    the replication status, on top of what `observe()` and the executed action produced."""
    status = status.model_copy(update={"replication": replication_of(spec, status, probes, at)})
    phase = phase_of(spec, status, probes)
    status = status.model_copy(update={"phase": phase, "observed_generation": generation})
    current = conditions_of(spec, status, probes, action)
    return status.model_copy(update={"conditions": merge_conditions(status.conditions, current, at, generation)})


def conditions_of(
    spec: rp.RegionPairSpec, status: rp.RegionPairStatus, probes: dict[str, Probe], action: Action
) -> list[rp.Condition]:
    def cond(type_: str, ok: bool, reason: str, message: str = "") -> rp.Condition:
        return rp.Condition(type=type_, status="True" if ok else "False", reason=reason, message=message)

    phase = status.phase
    out = [
        cond(rp.READY, phase == "Healthy", phase, _ready_message(status, probes)),
        cond(
            rp.PAUSED,
            spec.paused,
            "Maintenance" if spec.paused else "Active",
            "spec.paused is true: the operator probes and reports but changes nothing" if spec.paused else "",
        ),
    ]
    if status.active_region is None:
        return out
    active = status.active_region
    standby = spec.other(active)
    replicating = in_sync(spec, active, probes)
    out.append(
        cond(
            rp.REPLICATING,
            replicating,
            "LinkUp" if replicating else "LinkDown",
            f"{standby.name} {'replicates' if replicating else 'is not replicating'} from {active}",
        )
    )
    matches = spec.active_region == active
    reason, message = "AsRequested", ""
    if not matches:
        last = status.last_transition
        if isinstance(action, Blocked):
            reason, message = action.reason, action.message
        elif last is not None and last.type == "Failover" and last.to_region == active:
            reason = "FailedOver"
            message = f"failed over to {active}; set spec.activeRegion: {active} to acknowledge"
            if last.witnesses:
                message = f"failed over to {active} ({witnessed(last.witnesses, last.detection_seconds)}); "
                message += f"set spec.activeRegion: {active} to acknowledge"
        elif last is not None and last.trigger == "Disruption" and last.to_region == active:
            reason = "SwitchedOverForDisruption"
            message = f"{last.reason}; switched over to {active}: set spec.activeRegion: {active} to acknowledge"
        elif last is not None and last.outcome == "RolledBack":
            reason, message = "SwitchoverRolledBack", last.reason
            retry_at = switchover_retry_at(spec, status)
            if retry_at is not None:
                message += f"; retrying at {retry_at.isoformat(timespec='seconds')} (attempt {last.attempt + 1})"
        else:
            reason, message = "SwitchoverPending", f"switching to {spec.active_region}"
    out.append(cond(rp.ACTIVE_REGION_MATCHES_SPEC, matches, reason, message))

    repl = status.replication or rp.ReplicationStatus()
    if repl.at_risk:
        out.append(
            cond(
                rp.WRITES_AT_RISK,
                True,
                "StandbyDown",
                f"{standby.name} is not replicating; {active} acknowledges writes alone (whenStandbyDown: Accept)",
            )
        )
    elif not replicating and repl.min_replicas_to_write:
        lag = spec.replication.min_replicas_max_lag_seconds
        out.append(
            cond(
                rp.WRITES_AT_RISK,
                False,
                "WritesHeld",
                f"{standby.name} is not replicating; {active} refuses writes after {lag} s without it",
            )
        )
    else:
        out.append(cond(rp.WRITES_AT_RISK, False, "Replicated", ""))

    bad = pipeline_unhealthy(status, active)
    mine = status.region(active)
    verdict = mine.pipeline if mine is not None else None
    if bad is not None:
        out.append(cond(rp.PIPELINE_HEALTHY, False, f"Pipeline{bad.state.title()}", bad.reason))
    elif verdict is None or verdict.state == "unknown":
        unknown = verdict.reason if verdict else ""
        out.append(rp.Condition(type=rp.PIPELINE_HEALTHY, status="Unknown", reason="Unknown", message=unknown))
    else:
        out.append(cond(rp.PIPELINE_HEALTHY, True, f"Pipeline{verdict.state.title()}", verdict.reason))
    return out


def _ready_message(status: rp.RegionPairStatus, probes: dict[str, Probe]) -> str:
    bad = [f"{p.region}: {p.error or 'unhealthy'}" for p in probes.values() if not p.healthy]
    if status.active_region is not None and (stalled := pipeline_unhealthy(status, status.active_region)):
        bad.append(f"{status.active_region} pipeline {stalled.state}: {stalled.reason}")
    return "; ".join(bad)


def merge_conditions(
    previous: tuple[rp.Condition, ...], current: list[rp.Condition], at: datetime, generation: int
) -> tuple[rp.Condition, ...]:
    """Kubernetes conditions; lastTransitionTime only moves when a condition's status changes."""
    before = {c.type: c for c in previous}
    out = []
    for c in current:
        old = before.get(c.type)
        since = (
            at
            if old is None or old.status != c.status or old.last_transition_time is None
            else old.last_transition_time
        )
        out.append(c.model_copy(update={"last_transition_time": since, "observed_generation": generation}))
    return tuple(out)


# --- 5. events -------------------------------------------------------------------------------------


def events(before: rp.RegionPairStatus, after: rp.RegionPairStatus) -> list[Event]:
    """Events for conditions that changed between two written statuses (transitions, fencing and
    the like post their own Events when they happen). A first, good reading is not news."""
    out = []
    for type_, bad_when, bad_reason, good_reason in (
        (rp.WRITES_AT_RISK, "True", "WritesAtRisk", "WritesProtected"),
        (rp.PIPELINE_HEALTHY, "False", "PipelineUnhealthy", "PipelineRecovered"),
    ):
        old, new = before.condition(type_), after.condition(type_)
        if new is None or new.status == "Unknown" or (old is not None and old.status == new.status):
            continue
        if old is not None and old.status == "Unknown":
            old = None  # first real reading
        bad = new.status == bad_when
        if old is None and not bad:
            continue
        out.append(Event(bad_reason if bad else good_reason, new.message or new.reason, bad))
    return out
