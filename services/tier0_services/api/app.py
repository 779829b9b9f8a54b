"""`create_app()`: the region API with a lifespan that owns its clients.

Clients (Redis, Kubernetes) live on `app.state` for the app's lifetime; metrics and the request
observers are created with the app, so middleware and error handlers can reach them before the
first request. A Kubernetes API that is not configured does not stop the region API from serving
reads: only the failover endpoints answer 503 then, with the reason.
"""

import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from tier0_kube import client as kube
from tier0_kube import errors as kube_errors
from tier0_services import failfast
from tier0_services.ai import runtime as ai_runtime
from tier0_services.ai.settings import get_ai_settings
from tier0_services.api import admission, bodyguard, docs, errors, snapshot
from tier0_services.api.bodyguard import BodyGuardMiddleware
from tier0_services.api.console import router as console
from tier0_services.api.instrument import InstrumentMiddleware, RequestObserver
from tier0_services.api.metrics import ApiMetrics
from tier0_services.api.metrics import router as metrics_router
from tier0_services.api.routers import core, devices, diagnostics, failover, images, users
from tier0_services.api.schemas import ActiveDevices, Status
from tier0_services.api.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
The region API of tier0: the seeds' endpoints over this region's Redis (a replica region reads its
replica). Failover endpoints act through the `RegionPair` resource; the operator moves the regions.
Errors are JSON `{"detail": "..."}`: 400 a body that is not UTF-8/JSON, 404 unknown name,
413 body too large, 415 wrong media type, 422 invalid values, 429 too many requests from this client
or in flight (with `Retry-After` and a `reason`), 503 a dependency is down or (writes) this region
is the standby. The web console is at `/console`.
"""

UPLOAD_PATHS = ("/api/images/ingest", "/api/diagnostics/logs/import", "/api/diagnostics/documents")
"""Endpoints whose bodies may be up to `TIER0_MAX_UPLOAD_BYTES` (others: `TIER0_MAX_BODY_BYTES`)."""


def create_app(settings: Settings | None = None, observers: Sequence[RequestObserver] = ()) -> FastAPI:
    """The region API. `observers` see every answered request (see `instrument`); more can be
    appended to `app.state.request_observers` before the app starts serving."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.started_at = datetime.now(UTC)
        # One quick retry of a broken connection (stale after a Redis restart), none of a timeout,
        # and no connection attempt for a while after one timed out: then 503 at once.
        app.state.redis = failfast.client(
            settings.redis_url,
            settings.redis_timeout_seconds,
            settings.redis_timeout_seconds,
            **settings.redis_auth().kwargs(settings.redis_url),
        )
        app.state.kube, app.state.kube_error = None, None
        try:
            # ambient=False: TIER0_KUBECONFIG or the service account, never a developer's kubeconfig.
            app.state.kube = await kube.connect(
                settings.kubeconfig, ambient=False, timeout=settings.kube_timeout_seconds
            )
        except kube_errors.KubeConfigError as exc:
            app.state.kube_error = str(exc) if settings.kubeconfig else f"{exc} (set TIER0_KUBECONFIG)"
            log.warning("failover endpoints disabled: %s", app.state.kube_error)
        # AI features (images, diagnostics): providers chosen once; tests may preset
        # `app.state.ai_settings` / `app.state.ai_providers` before start-up.
        app.state.ai = await ai_runtime.start(
            app.state.redis,
            getattr(app.state, "ai_settings", None) or get_ai_settings(),
            getattr(app.state, "ai_providers", None),
        )
        if app.state.ai.recorder is not None:
            app.state.request_observers.append(app.state.ai.recorder)
        app.state.peer_http = (
            httpx.AsyncClient(timeout=settings.peer_timeout_seconds) if settings.peer_api_url else None
        )
        # The OpenAPI document (the body checks' operation index is built from it) costs ~0.4 s:
        # built now, not on the first request.
        bodyguard.operation_index(app)
        # What start-up built (modules, the app, the AI providers: over 130,000 objects) lives as
        # long as the process. Frozen, it is no longer walked by every full collection, which took
        # 0.1-0.2 s on this machine's shared cores: a pause of the event loop, every request waits.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await app.state.traffic.stop()
            if app.state.peer_http is not None:
                await app.state.peer_http.aclose()
            if app.state.ai.recorder in app.state.request_observers:
                app.state.request_observers.remove(app.state.ai.recorder)
            await app.state.ai.stop()
            await app.state.redis.aclose()
            if app.state.kube is not None:
                await app.state.kube.close()

    app = FastAPI(
        title=f"tier0 region API ({settings.region})",
        version=settings.version,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Swagger UI and ReDoc from files the app serves itself (`docs`): they work offline.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = ApiMetrics(settings.region, settings.version)
    # The hot read endpoints share one read of Redis per `read_max_age_seconds` (see `snapshot`).
    app.state.status_snapshot = snapshot.Snapshot[Status](settings.read_max_age_seconds)
    app.state.active_snapshot = snapshot.Snapshot[ActiveDevices](settings.read_max_age_seconds)
    app.state.request_observers = list(observers)
    # Inside CORS, so that its 400/413/415 answers carry the CORS headers too.
    app.add_middleware(BodyGuardMiddleware, settings=settings, upload_paths=UPLOAD_PATHS)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Tier0-Region"],
        )
    # Outside CORS: it times everything, CORS preflights included.
    app.add_middleware(
        InstrumentMiddleware,
        metrics=app.state.metrics,
        observers=app.state.request_observers,
        region=settings.region,
    )
    # Added last, so outermost: a refused request costs nothing further (no metrics series, no
    # access-log entry, no route).
    app.add_middleware(
        admission.AdmissionMiddleware,
        policy=settings.admission_policy(),
        metrics=app.state.metrics,
        region=settings.region,
    )
    errors.install(app)
    for router in (core.router, devices.router, users.router, failover.router, images.router, diagnostics.router):
        app.include_router(router)
    app.include_router(metrics_router)
    console.install(app)
    docs.install(app)
    document_body_errors(app)
    return app


def document_body_errors(app: FastAPI) -> None:
    """Every operation that reads a body documents what `BodyGuardMiddleware` refuses (400, 413,
    415) beside FastAPI's 422, and every operation admission may refuse its 429, added to the
    schema FastAPI generates (and caches)."""
    generate = app.openapi
    problem = {"$ref": "#/components/schemas/Problem"}
    exempt = set(app.state.settings.admission_exempt_paths)
    too_many = {
        "description": errors.responses(429)[429]["description"],
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": problem}},
    }

    def openapi() -> dict[str, Any]:
        schema = generate()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path not in exempt:
                    operation["responses"].setdefault("429", too_many)
                if "requestBody" in operation:
                    for code, spec in errors.responses(400, 413, 415).items():
                        operation["responses"].setdefault(
                            str(code),
                            {"description": spec["description"], "content": {"application/json": {"schema": problem}}},
                        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
