"""One round of a pair decided in one call: `plan()` takes what the reconciler measured and returns
a `Round`, everything the reconciler must do and write. Pure.

The rules live in decide.py (and transition.py), each unit-tested on its own; their order within a
round lives here, once: fold the probes into the status, detect, decide the action, what carrying
it out changes in the status and which Events it earns, the write guard, the report. The reconciler
(reconciler.py) then only does I/O: probe, `plan()`, carry out, write status, post Events, count.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tier0_contract import regionpair as rp
from tier0_operator import decide, transition
from tier0_operator.model import Probe, RegionSeen


@dataclass(frozen=True)
class Round:
    """What one round decided. The reconciler keeps `observed` (every replica) and, as the Lease
    holder, carries out `action`: a transition starts by writing `started` (a compare-and-set on the
    epoch) and then writes status itself; any other action, once carried out, makes the status
    `done` and earns `events`. When nothing was carried out, `guard` goes into the active primary.
    Unless a transition ran, `report` is written last."""

    observed: rp.RegionPairStatus  # the status with this round's probes folded in
    detection: decide.Detection  # who sees the active region failing (the fast path's witnesses)
    interval: float  # seconds to the next round
    action: decide.Action
    done: rp.RegionPairStatus  # `observed` once `action` is carried out (Bootstrap, Acknowledge change it)
    started: rp.RegionPairStatus | None  # the status that starts the transition `action` asks for
    events: tuple[decide.Event, ...]  # the action's own Events, posted once it is carried out
    guard: decide.Guard | None  # epoch and min-replicas-to-write the active primary lacks
    report: rp.RegionPairStatus  # `done` with phase, conditions and the replication status

    @property
    def runs_transition(self) -> bool:
        """The action starts or resumes a transition, which runs and writes status on its own."""
        return isinstance(self.action, decide.StartSwitchover | decide.StartFailover | decide.Resume)


def plan(
    spec: rp.RegionPairSpec,
    status: rp.RegionPairStatus,
    probes: dict[str, Probe],
    seen: Mapping[str, RegionSeen],
    at: datetime,
    generation: int,
) -> Round:
    """The round for these probes (and what Kubernetes shows of each region, `seen`) at `at`, on a
    status whose regions are all in spec (`decide.unknown_regions()` is None)."""
    observed = decide.observe(spec, status, probes, seen)
    detection = decide.detect(spec, observed, probes, at, seen)
    action = decide.decide(spec, observed, probes, at, seen)
    done, started, events = carried_out(spec, observed, action, at)
    return Round(
        observed=observed,
        detection=detection,
        interval=decide.next_interval(spec, detection),
        action=action,
        done=done,
        started=started,
        events=events,
        guard=decide.guard(spec, observed, probes, at),
        # Also what is written when the action could not be carried out: `done` is `observed` then,
        # since only Bootstrap and Acknowledge, which need no Redis, change the status on paper.
        report=decide.report(spec, done, probes, action, generation, at),
    )


Outcome = tuple[rp.RegionPairStatus, rp.RegionPairStatus | None, tuple[decide.Event, ...]]


def carried_out(spec: rp.RegionPairSpec, status: rp.RegionPairStatus, action: decide.Action, at: datetime) -> Outcome:
    """(done, started, events) of `action`: the status once it is carried out, the status that starts
    the transition it asks for, and the Events that say it happened."""
    match action:
        case decide.Bootstrap(active=active):
            return (
                decide.bootstrapped(spec, status, active),
                None,
                (decide.Event("Bootstrapped", f"{active} is the active region"),),
            )
        case decide.MakeReplica(region=region, of=of, fencing=True):
            return (
                status,
                None,
                (decide.Event("Fenced", f"{region} was a writable primary; made it a replica of {of}", True),),
            )
        case decide.MakeReplica(region=region, of=of):
            return status, None, (decide.Event("ReplicationConfigured", f"{region} replicates from {of}"),)
        case decide.Promote(region=region):
            return (
                status,
                None,
                (decide.Event("Promoted", f"{region} (active, was a replica with no primary) promoted"),),
            )
        case decide.Acknowledge(region=region):
            return status.model_copy(update={"requested_region": region}), None, ()
        case decide.StartSwitchover(to=to, attempt=attempt, reason=reason, trigger=trigger):
            why = reason or f"spec.activeRegion set to {to}" + (f" (attempt {attempt})" if attempt > 1 else "")
            return _start(status, transition.begin(spec, status, "Switchover", to, why, 0, at, attempt, trigger))
        case decide.StartFailover(to=to, lost_bytes=lost, reason=reason, trigger=trigger):
            begun = transition.begin(
                spec,
                status,
                "Failover",
                to,
                reason,
                lost,
                at,
                trigger=trigger,
                witnesses=action.witnesses,
                detection_seconds=action.detection_seconds,
            )
            return _start(status, begun)
    return status, None, ()


def _start(status: rp.RegionPairStatus, started: rp.RegionPairStatus) -> Outcome:
    """A transition's start and its `<Type>Started` Event (a failover's names its witnesses)."""
    t = started.transition
    assert t is not None
    message = f"{t.type} {t.from_region} -> {t.to_region} (epoch {t.epoch}): {t.reason}"
    if t.witnesses:
        message += f" ({decide.witnessed(t.witnesses, t.detection_seconds)})"
    return status, started, (decide.Event(f"{t.type}Started", message, t.type == "Failover"),)


def settled(
    spec: rp.RegionPairSpec,
    status: rp.RegionPairStatus,
    probes: dict[str, Probe],
    seen: Mapping[str, RegionSeen],
    at: datetime,
    generation: int,
) -> rp.RegionPairStatus:
    """The status to write once a transition finished (`transition.finished`): what fresh probes
    say of the pair, like any round's report, with nothing acted on."""
    return decide.report(spec, decide.observe(spec, status, probes, seen), probes, decide.Nothing(), generation, at)
