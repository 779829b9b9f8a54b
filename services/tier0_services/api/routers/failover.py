"""Failover endpoints: they act through the RegionPair resource, the operator does the moving.

`simulate` asks for the other region (a planned switchover), `restore` for a named region or the
pair's home region; both wait until the operator reports the target active and Healthy and answer
with the latency they measured. Both need the bearer token; `status` does not.
"""

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Body

from tier0_contract import regionpair as rp
from tier0_kube import client as kube
from tier0_services.api import errors, switchover
from tier0_services.api.deps import Authorized, KubeDep, MetricsDep, RegionPairDep, SettingsDep
from tier0_services.api.metrics import ApiMetrics
from tier0_services.api.schemas import FailoverResult, FailoverStatus, RestoreRequest, Transition

router = APIRouter(prefix="/api/failover", tags=["failover"])

MUTATING = errors.responses(401, 403, 404, 409, 502, 503, 504)


@router.get("/status", responses=errors.responses(503))
async def failover_status(client: KubeDep, ref: RegionPairDep) -> FailoverStatus:
    """The RegionPair as the operator reports it: active region, phase, epoch, last transition."""
    view = switchover.PairView.of(await client.get_pair(ref.namespace, ref.name))
    return FailoverStatus(
        name=view.name,
        namespace=view.namespace,
        active_region=view.active,
        desired_region=view.desired,
        regions=list(view.regions),
        phase=view.phase,
        epoch=view.epoch,
        lag_bytes=view.lag_bytes,
        in_transition=view.in_transition,
        paused=view.paused,
        last_transition=_transition(view.last_transition),
        region_status=[r.to_json() for r in view.region_status],
        timestamp=datetime.now(UTC),
    )


@router.post("/simulate", dependencies=[Authorized], responses=MUTATING)
async def simulate(client: KubeDep, ref: RegionPairDep, settings: SettingsDep, metrics: MetricsDep) -> FailoverResult:
    """Planned switchover to the region that is not active; waits until the operator reports it
    active and Healthy (at most `TIER0_FAILOVER_TIMEOUT_SECONDS`, then 504)."""
    return await _switch(client, ref, switchover.other_region, settings.failover_timeout_seconds, metrics)


@router.post("/restore", dependencies=[Authorized], responses=MUTATING)
async def restore(
    client: KubeDep,
    ref: RegionPairDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    request: RestoreRequest | None = Body(None),
) -> FailoverResult:
    """Make a region active again: the one named in the body, else the pair's first (home) region.
    Also acknowledges an automatic failover when asked for the region that is already active."""
    named = request.region if request else None

    def target(view: switchover.PairView) -> str:
        return named or view.home

    return await _switch(client, ref, target, settings.failover_timeout_seconds, metrics)


async def _switch(
    client: kube.Client,
    ref: kube.PairRef,
    target: Callable[[switchover.PairView], str],
    timeout: float,
    metrics: ApiMetrics,
) -> FailoverResult:
    try:
        outcome = await switchover.switch_to(client, ref, target, timeout)
    except errors.UpstreamTimeoutError:
        metrics.failover_duration.labels(outcome="timeout").observe(timeout)
        raise
    if outcome.moved:
        metrics.failover_duration.labels(outcome="success").observe(outcome.latency_seconds)
        message = f"Failover completed from {outcome.source} to {outcome.target}"
    else:
        message = f"{outcome.target} is already active"
    last = outcome.transition
    return FailoverResult(
        status="success" if outcome.moved else "unchanged",
        source_region=outcome.source,
        target_region=outcome.target,
        failover_latency_seconds=round(outcome.latency_seconds, 6),
        message=message,
        timestamp=datetime.now(UTC),
        phase=outcome.view.phase,
        epoch=outcome.view.epoch,
        operator_duration_seconds=last.duration_seconds if last else None,
        lost_bytes=last.lost_bytes if last else None,
    )


def _transition(last: rp.LastTransition | None) -> Transition | None:
    return Transition.model_validate(last.to_json()) if last else None
