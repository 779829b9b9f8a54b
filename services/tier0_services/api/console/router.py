"""The console page, its static files and the endpoints it polls (`/api/console/*`)."""

import functools
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from tier0_services.ai import sample_images
from tier0_services.api import errors
from tier0_services.api.console import overview
from tier0_services.api.console.models import Overview, TrafficRequest, TrafficRun
from tier0_services.api.console.traffic import TrafficGenerator
from tier0_services.api.deps import Authorized, RedisDep, SettingsDep
from tier0_services.api.schemas import SITE_ID_PATTERN

STATIC = Path(__file__).parent / "static"

router = APIRouter(tags=["console"])


@router.get("/console", include_in_schema=False)
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/api/console/overview", responses=errors.responses(503))
async def console_overview(request: Request, redis: RedisDep, settings: SettingsDep) -> Overview:
    """Both regions side by side (role, status, version, counts, lag), the RegionPair's phase and
    last transition, and the telemetry counters the console charts; `answered_by` names the region
    whose API answered (through the global Service: the active one)."""
    return await overview.read_overview(request, redis, settings)


def _traffic(request: Request) -> TrafficGenerator:
    generator: TrafficGenerator = request.app.state.traffic
    return generator


@router.post(
    "/api/console/traffic",
    status_code=202,
    dependencies=[Authorized],
    responses=errors.responses(401, 403, 409),
)
async def start_traffic(request: Request, settings: SettingsDep, body: TrafficRequest | None = None) -> TrafficRun:
    """Simulate High Traffic: start a bounded burst of real requests against this API (at most
    `TIER0_TRAFFIC_MAX_REQUESTS` requests, stopped after `TIER0_TRAFFIC_MAX_SECONDS`). Needs the
    bearer token; 409 while a burst runs. Its progress: `GET /api/console/traffic`."""
    body = body or TrafficRequest()
    burst = _traffic(request).start(
        body.requests, body.concurrency, settings.traffic_max_requests, settings.traffic_max_seconds
    )
    return burst.view()


@router.get("/api/console/traffic")
async def traffic_status(request: Request, settings: SettingsDep) -> TrafficRun:
    """The latest burst of this process (`idle` before the first one)."""
    return _traffic(request).idle_view(settings.traffic_max_requests, settings.traffic_max_seconds)


@functools.cache
def _sample_pictures() -> dict[str, sample_images.SampleImage]:
    return {s.image_id: s for s in sample_images.load_catalog()}


@functools.lru_cache(maxsize=64)
def _render(image_id: str) -> bytes:
    return sample_images.render(_sample_pictures()[image_id])


@router.get(
    "/api/console/images/{image_id}",
    responses={200: {"content": {"image/png": {}}, "description": "The picture"}, **errors.responses(404)},
    response_class=Response,
)
async def sample_picture(
    image_id: Annotated[str, PathParam(min_length=1, max_length=128, pattern=SITE_ID_PATTERN)],
) -> Response:
    """The picture of a sample-catalog image, for the search result cards (uploaded images are
    stored as embeddings only: 404)."""
    if image_id not in _sample_pictures():
        raise errors.NotFoundError(f"no picture is kept for image {image_id!r} (only the sample catalog's)")
    return Response(_render(image_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def install(app: FastAPI) -> None:
    app.state.traffic = TrafficGenerator(app)
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
