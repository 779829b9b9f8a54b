"""Pipeline health: the heartbeat every worker writes and the one rule that reads it.

A region can look healthy (Redis answers, the API answers) while nothing is being stored: a killed
ingest worker, a worker stuck on a full in-flight window. So each worker (ingest, activity) writes a
heartbeat into the Redis it writes to, about once a second, and the region API (`/ready`,
`/api/status`) and the operator's probe both judge those heartbeats with `assess()` — the same rule
in both places, so `kubectl get rp` and the API never disagree.

Clocks: every time in a heartbeat is the *Redis server's* clock (the writer takes it from
`redis.call('TIME')` inside its script, or from `TIME`), and readers compare it with `TIME` of the
same Redis. No worker's, API's or operator's wall clock is ever compared with another's.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

Component = Literal["ingest", "activity"]
State = Literal["ok", "idle", "stalled", "dead", "absent"]

DEFAULT_STALL_AFTER_SECONDS = 10.0
"""A worker holding messages that has stored nothing for this long, or whose heartbeat is this old,
is stalled / dead (configurable where it is read: `TIER0_PIPELINE_STALL_SECONDS`, the RegionPair's
`spec.pipeline.stallAfterSeconds`)."""


class Heartbeat(BaseModel):
    """JSON value of one field of `keys.PIPELINE_HEARTBEATS` (field name: `heartbeat_field()`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    component: Component
    worker: str
    """Stable worker id (MQTT client id, pod name)."""
    region: str
    """The region the worker runs in (not necessarily the region whose Redis it writes to)."""
    at: float
    """Redis server time (epoch s) of this heartbeat."""
    last_stored_at: float | None = None
    """Redis server time of the last batch the worker stored (None: never since start)."""
    received: int = 0
    """Messages received since the worker started."""
    stored: int = 0
    """Messages handled since start: stored, stale, duplicate or dead-lettered."""
    pending: int = 0
    """Messages received and not yet acknowledged right now."""
    connected: bool = True
    """Connected to its broker (an ingest worker: and subscribed, so the broker has someone to give
    devices' messages to; `not_feeding` reads it before devices are routed to its region)."""


def heartbeat_field(component: Component, worker: str) -> str:
    return f"{component}/{worker}"


@dataclass(frozen=True)
class Health:
    """Verdict for one (component, region): `ok`/`idle` are healthy, the rest are not."""

    component: Component
    region: str
    state: State
    reason: str
    workers: int = 0

    @property
    def healthy(self) -> bool:
        return self.state in ("ok", "idle")


def parse(raw: Mapping[bytes | str, bytes | str]) -> list[Heartbeat]:
    """Heartbeats of an `HGETALL keys.PIPELINE_HEARTBEATS`; unreadable entries are skipped."""
    out = []
    for value in raw.values():
        try:
            out.append(Heartbeat.model_validate_json(value))
        except ValidationError:
            continue
    return out


def assess_worker(hb: Heartbeat, now: float, stall_after: float) -> tuple[State, str]:
    age = now - hb.at
    if age > stall_after:
        return "dead", f"{hb.component} worker {hb.worker}: no heartbeat for {age:.0f} s"
    if not hb.connected:
        return "stalled", f"{hb.component} worker {hb.worker}: not connected to its broker"
    if hb.pending > 0:
        since = now - (hb.last_stored_at if hb.last_stored_at is not None else hb.at)
        if hb.last_stored_at is None or since > stall_after:
            return (
                "stalled",
                f"{hb.component} worker {hb.worker}: {hb.pending} messages held, nothing stored for {since:.0f} s",
            )
    if hb.last_stored_at is None or now - hb.last_stored_at > stall_after:
        return "idle", f"{hb.component} worker {hb.worker}: alive, no traffic"
    return "ok", f"{hb.component} worker {hb.worker}: storing"


def assess(
    heartbeats: Iterable[Heartbeat],
    component: Component,
    region: str,
    now: float,
    stall_after: float = DEFAULT_STALL_AFTER_SECONDS,
) -> Health:
    """The health of `component` in `region`: healthy while at least one of its workers is alive and
    storing (or alive with nothing to store); otherwise the worst reason of its workers.

    Heartbeats of workers gone for more than 10 × stall_after are forgotten (a scaled-down worker),
    so a region with no recent worker at all is `absent`."""
    mine = [h for h in heartbeats if h.component == component and h.region == region and now - h.at <= 10 * stall_after]
    if not mine:
        return Health(component, region, "absent", f"no {component} worker of {region} has reported")
    verdicts = [assess_worker(h, now, stall_after) for h in mine]
    for wanted in ("ok", "idle"):
        for state, reason in verdicts:
            if state == wanted:
                return Health(component, region, state, reason, len(mine))
    order: dict[State, int] = {"stalled": 0, "dead": 1}
    state, reason = min(verdicts, key=lambda v: order.get(v[0], 2))
    return Health(component, region, state, reason, len(mine))


def not_feeding(
    heartbeats: Iterable[Heartbeat], component: Component, region: str, now: float, stall_after: float
) -> str | None:
    """Why what clients send for `component` must not go to `region` now, or None when it may: no
    worker of that component in that region has said, in a heartbeat younger than `stall_after`,
    that it is connected to its broker (an ingest worker: and subscribed). A pair with no worker of
    `component` anywhere (the operator run without tier0's workers) is never held."""
    mine = [h for h in heartbeats if h.component == component]
    if not mine:
        return None
    ours = [h for h in mine if h.region == region]
    if any(h.connected and now - h.at <= stall_after for h in ours):
        return None
    if not ours:
        return f"no {component} worker of {region} has reported"
    newest = max(ours, key=lambda h: h.at)
    said = f"no heartbeat for over {stall_after:g} s" if newest.connected else "its newest heartbeat says so"
    return f"no {component} worker of {region} is connected to its broker ({said})"
