"""Values for the `kubectl tier0` unit tests: whole RegionPair objects (metadata, spec, status) parsed
with the contract's model, a healthy pair by default, any status field overridden."""

from datetime import timedelta
from typing import Any

from tier0_contract import regionpair as rp
from tier0_testing.operator import pair_manifest
from tier0_testing.pairs import T0

NOW = T0 + timedelta(minutes=10)


def region(name: str, role: str, **extra: Any) -> dict[str, Any]:
    """status.regions[] of a region probed at NOW, healthy, serving, and (a replica) linked."""
    base = {"name": name, "role": role, "healthy": True, "linkUp": role == "replica", "lastProbeTime": NOW.isoformat()}
    base.update({"redisEndpoints": "serving", "apiEndpoints": "serving"})
    return {**base, **extra}


def pair(
    *, status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None, **spec: Any
) -> rp.RegionPair:
    """tier0/pair, Healthy on region1 at epoch 3, with `status` fields replaced and `spec` as
    `pair_manifest` takes it."""
    manifest = pair_manifest("pair", {"region1": 7001, "region2": 7002}, **spec)
    manifest["metadata"].update(namespace="tier0", uid="u-1", annotations=annotations or {})
    healthy = {
        "activeRegion": "region1",
        "requestedRegion": "region1",
        "phase": "Healthy",
        "epoch": 3,
        "regions": [region("region1", "primary"), region("region2", "replica")],
    }
    return rp.RegionPair.from_object({**manifest, "status": {**healthy, **(status or {})}})
