"""What to do about a pair, decided from its spec, its status and the latest probes. Pure.

The daemon (reconciler.py) probes, calls `decide()` and executes the returned action; keeping the
decision here means every rule (failover threshold, fencing, switchover requests, acknowledging a
failover) is unit-tested without Redis or an apiserver.
"""

from dataclasses import dataclass

from tier0_operator.model import Condition, PairSpec, PairStatus, Phase, Probe


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


@dataclass(frozen=True)
class StartFailover:
    to: str
    lost_bytes: int


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


def decide(spec: PairSpec, status: PairStatus, probes: dict[str, Probe]) -> Action:
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

    if status.failures.get(active.name, 0) >= policy.failure_threshold:
        if policy.mode == "Manual":
            return Blocked("ManualFailover", f"{active.name} is down and failover.mode is Manual")
        if not ps.healthy:
            return Blocked("StandbyUnavailable", f"{active.name} is down and {standby.name} is not healthy")
        return StartFailover(standby.name, lost_bytes=status.lag_bytes)

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

    if spec.active_region != status.requested_region:
        if spec.active_region == active.name:
            return Acknowledge(active.name)
        if not pa.reachable:
            return Blocked("ActiveUnavailable", f"switchover needs {active.name} reachable to pause its writes")
        if not ps.healthy:
            return Blocked("TargetUnavailable", f"switchover target {standby.name} is not healthy")
        if not ps.link_up:
            return Blocked("StandbyNotReplicating", f"{standby.name} has no replication link up yet")
        return StartSwitchover(standby.name)
    return Nothing()


def _bootstrap(spec: PairSpec, probes: dict[str, Probe]) -> Action:
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


def count_failures(previous: dict[str, int], probes: dict[str, Probe]) -> dict[str, int]:
    """Consecutive failed probes per region (a healthy probe resets the count)."""
    return {name: 0 if p.healthy else previous.get(name, 0) + 1 for name, p in probes.items()}


def lag_bytes(spec: PairSpec, active: str | None, probes: dict[str, Probe], last: int) -> int:
    """Bytes the standby is behind the active primary; the last known value when unmeasurable."""
    if active is None:
        return 0
    pa, ps = probes[active], probes[spec.other(active).name]
    if pa.reachable and pa.role == "primary" and ps.reachable and ps.replicates_from(spec.region(active).redis):
        return max(0, pa.offset - ps.offset)
    return last


def phase_of(spec: PairSpec, status: PairStatus, probes: dict[str, Probe]) -> Phase:
    if status.transition is not None:
        return "SwitchingOver" if status.transition.type == "Switchover" else "FailingOver"
    if status.active_region is None:
        return "Pending"
    active = spec.region(status.active_region)
    pa, ps = probes[active.name], probes[spec.other(active.name).name]
    if not pa.healthy or pa.role != "primary":
        down_long = status.failures.get(active.name, 0) >= spec.failover.failure_threshold
        if down_long and (spec.failover.mode == "Manual" or not ps.healthy or spec.paused):
            return "Failed"
        return "Degraded"
    if not ps.healthy or not ps.link_up or not ps.replicates_from(active.redis):
        return "Degraded"
    return "Healthy"


def conditions_of(spec: PairSpec, status: PairStatus, probes: dict[str, Probe], action: Action) -> list[Condition]:
    phase = phase_of(spec, status, probes)
    out = [
        Condition("Ready", "True" if phase == "Healthy" else "False", phase, _ready_message(spec, status, probes)),
        Condition(
            "Paused",
            "True" if spec.paused else "False",
            "Maintenance" if spec.paused else "Active",
            "spec.paused is true: the operator probes and reports but changes nothing" if spec.paused else "",
        ),
    ]
    if status.active_region is not None:
        standby = spec.other(status.active_region)
        ps = probes[standby.name]
        replicating = ps.replicates_from(spec.region(status.active_region).redis) and ps.link_up
        out.append(
            Condition(
                "Replicating",
                "True" if replicating else "False",
                "LinkUp" if replicating else "LinkDown",
                f"{standby.name} replicates from {status.active_region}"
                if replicating
                else f"{standby.name} is not replicating from {status.active_region}",
            )
        )
        matches = spec.active_region == status.active_region
        reason, message = "AsRequested", ""
        if not matches:
            last = status.last_transition or {}
            if isinstance(action, Blocked):
                reason, message = action.reason, action.message
            elif last.get("type") == "Failover" and last.get("to") == status.active_region:
                reason = "FailedOver"
                message = (
                    f"failed over to {status.active_region}; set spec.activeRegion: {status.active_region}"
                    " to acknowledge"
                )
            elif last.get("outcome") == "RolledBack":
                reason, message = "SwitchoverRolledBack", str(last.get("reason", ""))
            else:
                reason, message = "SwitchoverPending", f"switching to {spec.active_region}"
        out.append(Condition("ActiveRegionMatchesSpec", "True" if matches else "False", reason, message))
    return out


def _ready_message(spec: PairSpec, status: PairStatus, probes: dict[str, Probe]) -> str:
    bad = [f"{p.region}: {p.error or 'unhealthy'}" for p in probes.values() if not p.healthy]
    return "; ".join(bad)
