"""The switchover / failover state machine. Pure: the next step follows from the Redis roles.

A transition is recorded in status (type, from, to, epoch) before its first step. Its steps are
not remembered one by one: each next step is derived from what both Redis servers report now, so
an operator killed at any point resumes by probing and asking `next_step()` again, and every
step is safe to repeat. The order mirrors Redis's own FAILOVER command: the old primary stops
taking writes (CLIENT PAUSE WRITE), the target catches up to its offset, the old primary is
demoted *before* the target is promoted (never two writable primaries), then the Service
selector moves and the paused clients are released (their writes now fail with READONLY and are
retried by clients against the new primary, so no acknowledged write is lost).
"""

from dataclasses import dataclass
from typing import Literal

from tier0_operator.model import Probe, RedisEndpoint, Transition

StepKind = Literal[
    "pause",  # CLIENT PAUSE WRITE on the old primary
    "wait",  # the target is catching up (or a region is briefly unreachable)
    "demote",  # REPLICAOF target on the old primary (also fences a returning one)
    "promote",  # REPLICAOF NO ONE on the target
    "restore",  # REPLICAOF NO ONE on the old primary: the target vanished after the demotion
    "route",  # Redis is done: patch the Service selector(s), unpause, record success
    "rollback",  # give up cleanly: unpause the old primary, which stays active
    "fail",  # nothing safe can be done: record failure, the old region stays active
]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    why: str = ""


def next_step(
    t: Transition,
    from_ep: RedisEndpoint,
    to_ep: RedisEndpoint,
    pf: Probe,
    pt: Probe,
    paused: bool,
    timed_out: bool,
) -> Step:
    """The next step of transition `t` given fresh probes of its old (pf) and new (pt) primary."""
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
        # The old primary vanished mid-switchover: after the timeout finish it as a failover.
        if timed_out:
            return Step("promote", f"{t.from_region} is unreachable; promoting {t.to_region}")
        return Step("wait", f"{t.from_region} is unreachable")
    # Target unreachable.
    if pf.reachable and pf.role == "primary":
        return Step("rollback", f"switchover target {t.to_region} is unreachable")
    if pf.reachable and pf.role == "replica":
        return Step("restore", f"{t.to_region} vanished after {t.from_region} was demoted")
    if timed_out:
        return Step("fail", "both regions are unreachable")
    return Step("wait", "both regions are unreachable")
