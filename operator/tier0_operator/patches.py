"""Kubernetes request bodies built from plain values: Service selector patches (with their ownership
check), status, Events.

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


def build_service_patch(
    spec: rp.RegionPairSpec, active: str, route: rp.ServiceRoute, pair: str
) -> list[dict[str, Any]]:
    """JSON patch setting `route`'s Service selector to what `active` wants, applied only if the
    Service is annotated as owned by `pair` (`rp.SELECTOR_OWNER_ANNOTATION`). The `test` op makes
    the ownership check part of the one request, so it costs the selector flip nothing; the
    apiserver answers 422 when the Service is not this pair's."""
    owner = "/metadata/annotations/" + _pointer(rp.SELECTOR_OWNER_ANNOTATION)
    return [
        {"op": "test", "path": owner, "value": pair},
        {"op": "add", "path": "/spec/selector", "value": wanted_selector(spec, active, route)},
    ]


def owned_by(annotations: dict[str, str] | None, pair: str) -> bool:
    """The Service's annotations name `pair` as its selector's owner."""
    return (annotations or {}).get(rp.SELECTOR_OWNER_ANNOTATION) == pair


def _pointer(key: str) -> str:
    """A JSON pointer token (RFC 6901): `~` and `/` escaped."""
    return key.replace("~", "~0").replace("/", "~1")


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
