"""Kubernetes request bodies built from plain values: Service selector patches, status, Events.

Pure functions (`build_*`), so what the operator writes is unit-tested without a cluster and
the I/O code in reconciler.py only sends what these return.
"""

from datetime import datetime
from typing import Any

from tier0_operator.model import (
    GROUP,
    KIND,
    VERSION,
    Condition,
    Outcome,
    PairSpec,
    PairStatus,
    Phase,
    Probe,
    Transition,
    iso,
)


def build_service_patch(spec: PairSpec, active: str) -> dict[str, Any]:
    """Merge patch moving a Service selector to `active`: its labels set, the other's removed."""
    want = spec.region(active).selector
    other = spec.other(active).selector
    selector: dict[str, str | None] = {k: None for k in other if k not in want}
    selector.update(want)
    return {"spec": {"selector": selector}}


def selector_region(spec: PairSpec, selector: dict[str, str] | None) -> str | None:
    """Which region a Service selector routes to (None: neither or both)."""
    selector = selector or {}
    hits = [r.name for r in spec.regions if all(selector.get(k) == v for k, v in r.selector.items())]
    return hits[0] if len(hits) == 1 else None


def build_region_status(probe: Probe, failures: int, lag: int) -> dict[str, Any]:
    return {
        "name": probe.region,
        "role": probe.role,
        "healthy": probe.healthy,
        "replicationOffset": probe.offset,
        "lagBytes": lag,
        "linkUp": probe.link_up,
        "consecutiveFailures": failures,
        "lastProbeTime": iso(probe.at),
        "message": probe.error,
    }


def merge_conditions(
    previous: list[dict[str, Any]], current: list[Condition], at: datetime, generation: int
) -> list[dict[str, Any]]:
    """Kubernetes conditions; lastTransitionTime only moves when a condition's status changes."""
    before = {c.get("type"): c for c in previous}
    out = []
    for c in current:
        old = before.get(c.type)
        changed = old is None or old.get("status") != c.status
        since = iso(at) if old is None or changed else old.get("lastTransitionTime", iso(at))
        out.append(
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return out


def build_status(
    spec: PairSpec,
    status: PairStatus,
    probes: dict[str, Probe],
    phase: Phase,
    conditions: list[dict[str, Any]],
    generation: int,
) -> dict[str, Any]:
    """The whole status stanza (sent as a merge patch on the status subresource)."""
    regions = []
    for r in spec.regions:
        lag = status.lag_bytes if r.name != status.active_region else 0
        regions.append(build_region_status(probes[r.name], status.failures.get(r.name, 0), lag))
    return {
        "activeRegion": status.active_region,
        "requestedRegion": status.requested_region,
        "phase": phase,
        "epoch": status.epoch,
        "lagBytes": status.lag_bytes,
        "observedGeneration": generation,
        "regions": regions,
        "transition": status.transition.to_dict() if status.transition else None,
        "lastTransition": status.last_transition,
        "conditions": conditions,
    }


def build_transition_start(old_epoch: int, transition: Transition, phase: Phase) -> list[dict[str, Any]]:
    """JSON patch that starts a transition only if status.epoch is still `old_epoch`.

    The `test` op makes this a compare-and-set in the apiserver: a stale operator replica, or
    one that lost its Lease a moment ago, cannot start a second transition from the same epoch.
    """
    return [
        {"op": "test", "path": "/status/epoch", "value": old_epoch},
        {"op": "replace", "path": "/status/epoch", "value": transition.epoch},
        {"op": "replace", "path": "/status/phase", "value": phase},
        {"op": "add", "path": "/status/transition", "value": transition.to_dict()},
    ]


def build_last_transition(t: Transition, outcome: Outcome, completed: datetime, why: str = "") -> dict[str, Any]:
    duration = max(0.0, (completed - t.started_at).total_seconds())
    verb = {"Succeeded": "", "RolledBack": " rolled back", "Failed": " failed"}[outcome]
    return {
        "type": t.type,
        "from": t.from_region,
        "to": t.to_region,
        "reason": why or t.reason,
        "outcome": outcome,
        "epoch": t.epoch,
        "startedAt": iso(t.started_at),
        "completedAt": iso(completed),
        "durationSeconds": round(duration, 4),
        "lostBytes": t.lost_bytes,
        "summary": f"{t.type} {t.from_region}->{t.to_region}{verb} ({duration:.2f}s)",
    }


def build_event(
    namespace: str,
    name: str,
    uid: str,
    reason: str,
    message: str,
    at: datetime,
    warning: bool = False,
) -> dict[str, Any]:
    """A core/v1 Event about the RegionPair (what `kubectl describe rp` shows)."""
    return {
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": "tier0-operator"},
        "reportingComponent": "tier0.dev/operator",
        "reportingInstance": "tier0-operator",
        "firstTimestamp": iso(at).split(".")[0] + "Z",
        "lastTimestamp": iso(at).split(".")[0] + "Z",
        "count": 1,
    }
