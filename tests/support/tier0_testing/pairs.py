"""Values for the operator's unit tests: a pair on two local ports, probe and status builders."""

from datetime import UTC, datetime
from typing import Any

from tier0_contract import pipeline
from tier0_contract import regionpair as rp
from tier0_operator.model import Probe
from tier0_testing.operator import pair_manifest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spec(**kwargs: Any) -> rp.RegionPairSpec:
    return rp.RegionPairSpec.model_validate(pair_manifest("p", {"region1": 7001, "region2": 7002}, **kwargs)["spec"])


SPEC = spec(threshold=3)
R1, R2 = SPEC.region("region1").redis, SPEC.region("region2").redis


def primary(region: str, offset: int = 100, **extra: Any) -> Probe:
    return Probe(region, T0, reachable=True, role="primary", offset=offset, **extra)


def replica(region: str, of: int, offset: int = 100, link: bool = True) -> Probe:
    return Probe(region, T0, True, None, "replica", offset, "127.0.0.1", of, link)


def down(region: str) -> Probe:
    return Probe(region, T0, reachable=False, error="redis: connection refused")


def probes(*ps: Probe) -> dict[str, Probe]:
    return {p.region: p for p in ps}


HEALTHY = probes(primary("region1"), replica("region2", 7001))


def status(
    active: str | None = "region1",
    requested: str | None = "region1",
    epoch: int = 1,
    failures: dict[str, int] | None = None,
    **extra: Any,
) -> rp.RegionPairStatus:
    regions = tuple(
        rp.RegionStatus(name=r, consecutive_failures=(failures or {}).get(r, 0)) for r in ("region1", "region2")
    )
    return rp.RegionPairStatus(active_region=active, requested_region=requested, epoch=epoch, regions=regions, **extra)


STEADY = status()


def heartbeat(
    component: pipeline.Component,
    region: str,
    at: float,
    stored_at: float | None,
    pending: int = 0,
    connected: bool = True,
) -> pipeline.Heartbeat:
    return pipeline.Heartbeat(
        component=component,
        worker=f"{component}-{region}",
        region=region,
        at=at,
        last_stored_at=stored_at,
        pending=pending,
        connected=connected,
    )


def transition(kind: rp.TransitionType = "Switchover") -> rp.TransitionStatus:
    return rp.TransitionStatus(
        type=kind, from_region="region1", to_region="region2", reason="test", epoch=2, started_at=T0
    )
