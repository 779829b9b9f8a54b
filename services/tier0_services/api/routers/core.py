"""Core endpoints: `/`, `/health`, `/ready`, `/api/status`, `/fastapi/{region}/getappversion`."""

import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request

from tier0_contract import keys, pipeline
from tier0_services.api import errors
from tier0_services.api.deps import RedisDep, SettingsDep
from tier0_services.api.schemas import AppVersion, Health, PipelineHealth, Root, Status

router = APIRouter(tags=["core"])

REDIS_DOWN = errors.responses(503)
COMPONENTS: tuple[pipeline.Component, ...] = ("ingest", "activity")


def role_of(replication: dict[str, Any]) -> Literal["primary", "replica"]:
    """Redis `INFO replication` says master/slave; tier0 says primary/replica."""
    return "primary" if replication.get("role") == "master" else "replica"


@router.get("/")
async def root(settings: SettingsDep) -> Root:
    """What this is and where to look next (no Redis call)."""
    return Root(
        service="tier0 region API",
        region=settings.region,
        version=settings.version,
        docs="/docs",
        status="/api/status",
        timestamp=datetime.now(UTC),
    )


@router.get("/health")
async def health(settings: SettingsDep) -> Health:
    """Liveness: the process serves HTTP. Redis is checked by /ready."""
    return Health(status="healthy", region=settings.region)


@router.get("/ready", responses=REDIS_DOWN)
async def ready(redis: RedisDep, settings: SettingsDep) -> Health:
    """Readiness: this region's Redis answers (primary or replica)."""
    await redis.ping()
    return Health(status="ready", region=settings.region)


@router.get("/api/status", responses=REDIS_DOWN)
async def status(request: Request, redis: RedisDep, settings: SettingsDep) -> Status:
    """Region, its Redis role (primary or replica), version and counts, read from this region's Redis."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.region_status(settings.region))
        pipe.zcount(keys.DEVICES_LAST_SEEN, time.time() - settings.active_window_seconds, "+inf")
        pipe.get(keys.ACTIVE_USERS)
        pipe.info("replication")
        pipe.hgetall(keys.PIPELINE_HEARTBEATS)
        pipe.time()
        region_status, devices, users, replication, beats, (secs, micros) = await pipe.execute()
    role = role_of(replication)
    # Judged against this Redis's own clock, the clock the heartbeats were written with.
    heartbeats, now = pipeline.parse(beats), secs + micros / 1e6
    health = {
        c: pipeline.assess(heartbeats, c, settings.region, now, settings.pipeline_stall_seconds) for c in COMPONENTS
    }
    for component, h in health.items():
        request.app.state.metrics.pipeline_healthy.labels(component).set(1 if h.healthy else 0)
    return Status(
        region=settings.region,
        status=region_status.decode() if region_status else ("active" if role == "primary" else "standby"),
        role=role,
        version=settings.version,
        startup_time=request.app.state.started_at,
        active_devices=int(devices or 0),
        active_users=int(users or 0),
        timestamp=datetime.now(UTC),
        pipeline={c: PipelineHealth(state=h.state, reason=h.reason, workers=h.workers) for c, h in health.items()},
    )


@router.get("/fastapi/{region}/getappversion", responses=errors.responses(404, 503))
async def app_version(region: str, redis: RedisDep, settings: SettingsDep) -> AppVersion:
    """Deployment version of a region of the pair (404 for a region that is not one of them)."""
    if region not in settings.regions and region != settings.region:
        raise errors.NotFoundError(f"unknown region {region!r}; regions: {', '.join(settings.regions)}")
    recorded = await redis.get(keys.region_version(region))
    version = recorded.decode() if recorded else (settings.version if region == settings.region else None)
    return AppVersion(region=region, version=version, timestamp=datetime.now(UTC))
