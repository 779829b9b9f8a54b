"""Kubernetes request bodies built from plain values: Service selector patches, status, Events.

Pure functions (`build_*`), so what the operator writes is unit-tested without a cluster and
the I/O code in reconciler.py only sends what these return.
"""

from datetime import datetime
from typing import Any

from tier0_contract import regionpair as rp


def wanted_selector(spec: rp.RegionPairSpec, region: str, route: rp.ServiceRoute) -> dict[str, str]:
    """The selector of `route`'s Service while `region` is active: the region's labels, with the
    route's own (its component, say) winning on a shared key."""
    return {**spec.region(region).selector, **route.selector}


def build_service_patch(spec: rp.RegionPairSpec, active: str, route: rp.ServiceRoute) -> dict[str, Any]:
    """Merge patch moving a Service selector to `active`: its labels set, the other's removed."""
    want = wanted_selector(spec, active, route)
    other = wanted_selector(spec, spec.other(active).name, route)
    selector: dict[str, str | None] = {k: None for k in other if k not in want}
    selector.update(want)
    return {"spec": {"selector": selector}}


def selector_region(spec: rp.RegionPairSpec, selector: dict[str, str] | None, route: rp.ServiceRoute) -> str | None:
    """Which region a Service selector routes to (None: neither or both)."""
    selector = selector or {}
    hits = [
        r.name
        for r in spec.regions
        if all(selector.get(k) == v for k, v in wanted_selector(spec, r.name, route).items())
    ]
    return hits[0] if len(hits) == 1 else None


def build_status_patch(status: rp.RegionPairStatus) -> dict[str, Any]:
    """Merge patch of the whole status (absent fields are sent as null, which deletes them)."""
    return {"status": status.to_json()}


def build_status_cas(old_epoch: int, status: rp.RegionPairStatus) -> list[dict[str, Any]]:
    """JSON patch that starts a transition only if status.epoch is still `old_epoch`: it writes the
    fields a transition start changes (epoch, phase, transition, requestedRegion) of `status`.

    The `test` op makes this a compare-and-set in the apiserver: a stale operator replica, or
    one that lost its Lease a moment ago, cannot start a second transition from the same epoch.
    Kept small on purpose: it is on the switchover's critical path.
    """
    body = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/status/epoch", "value": old_epoch}]
    for field in ("epoch", "phase", "transition", "requestedRegion"):
        if field in body:
            ops.append({"op": "add", "path": f"/status/{field}", "value": body[field]})
    return ops


def without_probe_times(status: rp.RegionPairStatus) -> dict[str, Any]:
    """The status without what changes every probe: equal values need no write (but a refresh)."""
    body = status.to_json()
    body["regions"] = [
        {k: v for k, v in r.items() if k not in ("lastProbeTime", "replicationOffset")} for r in body["regions"]
    ]
    return body


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
            "apiVersion": rp.API_VERSION,
            "kind": rp.KIND,
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
        "firstTimestamp": _seconds(at),
        "lastTimestamp": _seconds(at),
        "count": 1,
    }


def _seconds(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
