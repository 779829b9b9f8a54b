"""The switchover / failover state machine. Pure: the next step follows from the Redis roles.

A transition is recorded in status (type, from, to, epoch) before its first step (`begin`). Its
steps are not remembered one by one: each next step is derived from what both Redis servers report
now, so an operator killed at any point resumes by probing and asking `next_step()` again, and every
step is safe to repeat. The order mirrors Redis's own FAILOVER command: the old primary stops taking
writes (CLIENT PAUSE WRITE), the target catches up to its offset, the old primary is demoted
*before* the target is promoted (never two writable primaries), the new primary gets the pair's
epoch (`keys.PAIR_EPOCH`) and its write guard, then the Service selector moves and the paused
clients are released (their writes now fail with READONLY and are retried by clients against the
new primary, so no acknowledged write is lost).

Step table: old = the `from` region's Redis, new = the `to` region's, as probed now. "gone" is
unreachable; "replica*" a replica of the new primary. `timed out`: past switchoverTimeoutSeconds;
past the hard deadline (3 × timeout + 10 s) any `wait` becomes `fail`.

    type        old                 new        next step
    ----------  ------------------  ---------  ---------------------------------------------
    any         primary / replica   primary    demote   (old must follow new before traffic moves)
    any         replica* / gone     primary    route    (epoch, guard, selector, unpause, done)
    Failover    any                 gone       fail
    Failover    primary             replica    demote   (fence the old one first)
    Failover    replica / gone      replica    promote
    Switchover  replica             replica    promote  (old is demoted already)
    Switchover  primary             replica    timed out: rollback; not paused: pause;
                                               new caught up (link up, offset >= old): demote;
                                               else wait
    Switchover  gone                replica    timed out, or trigger Disruption: promote,
                                               lostBytes := last lag (finishes as a failover
                                               would); else wait
    Switchover  primary             gone       rollback
    Switchover  replica             gone       restore  (REPLICAOF NO ONE on old again)
    Switchover  gone                gone       timed out: fail; else wait

The outcome decides the active region (`finished`): Succeeded → `to`, RolledBack / Failed → `from`.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from tier0_contract import regionpair as rp
from tier0_operator.model import Probe

StepKind = Literal[
    "pause",  # CLIENT PAUSE WRITE on the old primary
    "wait",  # the target is catching up (or a region is briefly unreachable)
    "demote",  # REPLICAOF target on the old primary (also fences a returning one)
    "promote",  # REPLICAOF NO ONE on the target
    "restore",  # REPLICAOF NO ONE on the old primary: the target vanished after the demotion
    "route",  # Redis is done: epoch + write guard, patch the Service selector(s), unpause, succeed
    "rollback",  # give up cleanly: unpause the old primary, which stays active
    "fail",  # nothing safe can be done: record failure, the old region stays active
]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    why: str = ""
    lost_bytes: int | None = None  # set: the transition's lostBytes becomes this (see the table)


@dataclass(frozen=True)
class Deadlines:
    soft: datetime  # switchoverTimeoutSeconds after the start: roll back / finish as a failover
    hard: datetime  # give up waiting altogether
    pause_ms: int  # CLIENT PAUSE length: outlives the soft deadline, so a crash cannot leak writes


def deadlines(spec: rp.RegionPairSpec, t: rp.TransitionStatus) -> Deadlines:
    timeout = spec.failover.switchover_timeout_seconds
    return Deadlines(
        soft=t.started_at + timedelta(seconds=timeout),
        hard=t.started_at + timedelta(seconds=timeout * 3 + 10),
        pause_ms=int((timeout + 2.0) * 1000),
    )


def begin(
    spec: rp.RegionPairSpec,
    status: rp.RegionPairStatus,
    kind: rp.TransitionType,
    to: str,
    reason: str,
    lost_bytes: int,
    at: datetime,
    attempt: int = 1,
    trigger: rp.Trigger | None = None,
    witnesses: tuple[rp.Witness, ...] = (),
    detection_seconds: float | None = None,
) -> rp.RegionPairStatus:
    """The status that starts a transition (written with a compare-and-set on the old epoch). A
    requested switchover acts on spec.activeRegion; a failover or a switchover away from a disrupted
    region does not (status.requestedRegion stays: the user's wish is unchanged). A failover
    records who saw the region fail and how long that took (`decide.detect`)."""
    trigger = trigger or ("Requested" if kind == "Switchover" else "Failure")
    assert status.active_region is not None
    t = rp.TransitionStatus(
        type=kind,
        from_region=status.active_region,
        to_region=to,
        reason=reason,
        epoch=status.epoch + 1,
        started_at=at,
        lost_bytes=lost_bytes,
        attempt=attempt,
        trigger=trigger,
        witnesses=witnesses,
        detection_seconds=detection_seconds,
    )
    return status.model_copy(
        update={
            "epoch": t.epoch,
            "transition": t,
            "phase": "SwitchingOver" if kind == "Switchover" else "FailingOver",
            "requested_region": spec.active_region if trigger == "Requested" else status.requested_region,
        }
    )


def next_step(
    t: rp.TransitionStatus,
    from_ep: rp.RedisEndpoint,
    to_ep: rp.RedisEndpoint,
    pf: Probe,
    pt: Probe,
    paused: bool,
    at: datetime,
    limits: Deadlines,
    lag_bytes: int,
) -> Step:
    """The next step of transition `t` given fresh probes of its old (pf) and new (pt) primary."""
    step = _step(t, from_ep, to_ep, pf, pt, paused, at > limits.soft, lag_bytes)
    if step.kind == "wait" and at > limits.hard:
        return Step("fail", f"gave up: {step.why}")
    return step


def _step(
    t: rp.TransitionStatus,
    from_ep: rp.RedisEndpoint,
    to_ep: rp.RedisEndpoint,
    pf: Probe,
    pt: Probe,
    paused: bool,
    timed_out: bool,
    lag_bytes: int,
) -> Step:
    if pt.reachable and pt.role == "primary":
        if pf.reachable and not pf.replicates_from(to_ep):
            return Step("demote", f"{t.from_region} must replicate from {t.to_region} before traffic moves")
        return Step("route", f"{t.to_region} is the primary")

    if t.type == "Failover":
        if not pt.reachable:
            return Step("fail", f"failover target {t.to_region} is unreachable: {pt.error}")
        if pf.reachable and pf.role == "primary":
            return Step("demote", f"fence {t.from_region} before promoting {t.to_region}")
        return Step("promote", f"promote {t.to_region}")

    # Switchover.
    if pt.reachable and pt.role == "replica":
        if pf.reachable and pf.role == "replica":
            return Step("promote", f"{t.from_region} is demoted; promote {t.to_region}")
        if pf.reachable and pf.role == "primary":
            if timed_out:
                return Step("rollback", f"{t.to_region} did not catch up in time")
            if not paused:
                return Step("pause", f"stop writes on {t.from_region}")
            if pt.replicates_from(from_ep) and pt.link_up and pt.offset >= pf.offset:
                return Step("demote", f"{t.to_region} reached offset {pf.offset}")
            return Step("wait", f"{t.to_region} at {pt.offset} of {pf.offset}")
        # The old primary vanished mid-switchover: after the timeout finish it as a failover; at once
        # when the switchover was away from a region being taken down (it will not come back).
        if timed_out or t.trigger == "Disruption":
            return Step("promote", f"{t.from_region} is unreachable; promoting {t.to_region}", lost_bytes=lag_bytes)
        return Step("wait", f"{t.from_region} is unreachable")
    # Target unreachable.
    if pf.reachable and pf.role == "primary":
        return Step("rollback", f"switchover target {t.to_region} is unreachable")
    if pf.reachable and pf.role == "replica":
        return Step("restore", f"{t.to_region} vanished after {t.from_region} was demoted")
    if timed_out:
        return Step("fail", "both regions are unreachable")
    return Step("wait", "both regions are unreachable")


def finished(
    status: rp.RegionPairStatus,
    t: rp.TransitionStatus,
    outcome: rp.Outcome,
    at: datetime,
    why: str = "",
    min_replicas_to_write: int | None = None,
) -> rp.RegionPairStatus:
    """The status after a transition: the active region by outcome, the record in lastTransition,
    the new active region's failure count reset, and on success the write guard the new primary got
    (`decide.promotion_min_replicas`; 0: it writes alone, at risk, from now). The phase is not
    decided here: the round that writes this status probes afresh and `rounds.settled()` says what
    the pair is now."""
    active = t.to_region if outcome == "Succeeded" else t.from_region
    replication = status.replication
    if outcome == "Succeeded" and min_replicas_to_write is not None:
        alone = min_replicas_to_write == 0
        replication = rp.ReplicationStatus(
            min_replicas_to_write=min_replicas_to_write,
            at_risk=alone,
            at_risk_since=at if alone else None,
            standby_out_of_sync_since=at if alone else None,
        )
    regions = tuple(
        r.model_copy(update={"consecutive_failures": 0, "failing_since": None}) if r.name == active else r
        for r in status.regions
    )
    return status.model_copy(
        update={
            "active_region": active,
            "transition": None,
            "last_transition": last_transition(t, outcome, at, why),
            "regions": regions,
            "lag_bytes": 0 if outcome == "Succeeded" else status.lag_bytes,
            "replication": replication,
        }
    )


def last_transition(
    t: rp.TransitionStatus, outcome: rp.Outcome, completed: datetime, why: str = ""
) -> rp.LastTransition:
    duration = max(0.0, (completed - t.started_at).total_seconds())
    verb = {"Succeeded": "", "RolledBack": " rolled back", "Failed": " failed"}[outcome]
    return rp.LastTransition(
        type=t.type,
        from_region=t.from_region,
        to_region=t.to_region,
        reason=why or t.reason,
        outcome=outcome,
        epoch=t.epoch,
        started_at=t.started_at,
        completed_at=completed,
        duration_seconds=round(duration, 4),
        lost_bytes=t.lost_bytes,
        attempt=t.attempt,
        trigger=t.trigger,
        witnesses=t.witnesses,
        detection_seconds=t.detection_seconds,
        summary=f"{t.type} {t.from_region}->{t.to_region}{verb} ({duration:.2f}s)"
        + (f", attempt {t.attempt}" if t.attempt > 1 else ""),
    )


def event_of_finish(t: rp.TransitionStatus, last: rp.LastTransition) -> tuple[str, str, bool]:
    """(reason, message, warning) of the Event that closes a transition."""
    done = last.outcome == "Succeeded"
    reason = f"{t.type}{'Completed' if done else last.outcome}"
    message = f"{last.summary}, epoch {t.epoch}, lost {t.lost_bytes} bytes" + ("" if done else f": {last.reason}")
    if t.witnesses:
        seconds = f"; detected in {t.detection_seconds:.2f} s" if t.detection_seconds is not None else ""
        message += f" (witnesses: {', '.join(t.witnesses)}{seconds})"
    return reason, message, not done or t.type == "Failover"
