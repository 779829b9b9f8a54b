"""Core endpoints: `/` (JSON, or a redirect to the console for a browser), `/health`, `/ready`,
`/api/status`, `/fastapi/{region}/getappversion`."""

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import RedirectResponse
from redis.asyncio import Redis

from tier0_contract import keys, pipeline
from tier0_services.api import errors, snapshot
from tier0_services.api.deps import RedisDep, SettingsDep
from tier0_services.api.schemas import AppVersion, Health, PipelineHealth, Root, Status
from tier0_services.api.settings import Settings

router = APIRouter(tags=["core"])

REDIS_DOWN = errors.responses(503)
COMPONENTS: tuple[pipeline.Component, ...] = ("ingest", "activity")


def role_of(replication: dict[str, Any]) -> Literal["primary", "replica"]:
    """Redis `INFO replication` says master/slave; tier0 says primary/replica."""
    return "primary" if replication.get("role") == "master" else "replica"


CONSOLE_PATH = "/console"


def wants_html(accept: str | None) -> bool:
    """A browser navigating to `/` (its Accept names text/html before JSON); API clients, curl and
    `Accept: */*` get the JSON answer."""
    if not accept:
        return False
    types = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    if "text/html" not in types:
        return False
    return "application/json" not in types or types.index("text/html") < types.index("application/json")


@router.get(
    "/",
    responses={307: {"description": "A browser (Accept: text/html) is sent to the console", "content": {}}},
    response_model=Root,
)
async def root(settings: SettingsDep, accept: Annotated[str | None, Header()] = None) -> Response | Root:
    """What this is and where to look next (no Redis call). A browser is redirected to the console."""
    if wants_html(accept):
        return RedirectResponse(CONSOLE_PATH, status_code=307)
    return Root(
        service="tier0 region API",
        region=settings.region,
        version=settings.version,
        docs="/docs",
        console=CONSOLE_PATH,
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
    """Region, its Redis role (primary or replica), version and counts, read from this region's Redis
    at most `TIER0_READ_MAX_AGE_SECONDS` (0.25 s) before the answer; `timestamp` is when."""
    state = request.app.state
    snap: snapshot.Snapshot[Status] = state.status_snapshot
    return await snap.get(lambda: read_status(redis, settings, state))


async def read_status(redis: Redis, settings: Settings, state: Any) -> Status:
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
        state.metrics.pipeline_healthy.labels(component).set(1 if h.healthy else 0)
    return Status(
        region=settings.region,
        status=region_status.decode() if region_status else ("active" if role == "primary" else "standby"),
        role=role,
        version=settings.version,
        startup_time=state.started_at,
        active_devices=int(devices or 0),
        active_users=int(users or 0),
        timestamp=datetime.now(UTC),
        pipeline={c: PipelineHealth(state=h.state, reason=h.reason, workers=h.workers) for c, h in health.items()},
    )


@router.get("/fastapi/{region}/getappversion", responses=errors.responses(404, 503))
async def app_version(request: Request, region: str, redis: RedisDep, settings: SettingsDep) -> AppVersion:
    """Deployment version of a region of the pair: recorded in this region's Redis, else this API's
    own for its region, else asked of the other region's API (`TIER0_PEER_API_URL`). 404 for a
    region that is not one of the pair, and for one whose version nobody here can tell."""
    if region not in settings.regions and region != settings.region:
        raise errors.NotFoundError(f"unknown region {region!r}; regions: {', '.join(settings.regions)}")
    recorded = await redis.get(keys.region_version(region))
    if recorded:
        version = recorded.decode("utf-8", "replace")
    elif region == settings.region:
        version = settings.version
    else:
        version = await _peer_version(request, settings, region)
    return AppVersion(region=region, version=version, timestamp=datetime.now(UTC))


async def _peer_version(request: Request, settings: Settings, region: str) -> str:
    unknown = f"{settings.region} does not know {region}'s version: no {keys.region_version(region)} in its Redis"
    http: httpx.AsyncClient | None = getattr(request.app.state, "peer_http", None)
    if http is None or not settings.peer_api_url or len(settings.regions) != 2:
        raise errors.NotFoundError(f"{unknown}, and no TIER0_PEER_API_URL; ask {region}'s own API")
    url = f"{settings.peer_api_url.rstrip('/')}/fastapi/{region}/getappversion"
    try:
        answer = await http.get(url)
        answer.raise_for_status()
        version = answer.json()["version"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise errors.NotFoundError(f"{unknown}, and {url} did not tell: {exc or type(exc).__name__}") from exc
    if not isinstance(version, str) or not version:
        raise errors.NotFoundError(f"{unknown}, and {url} answered no version")
    return version
