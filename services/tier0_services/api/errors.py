"""Domain errors and their HTTP mapping: service code raises these, never HTTPException.

Every error answer is JSON `{"detail": "<reason>"}`. A dependency that is down is a 503 that names
it (Redis, the Kubernetes API, the RegionPair); a write that reaches the standby region is a 503
that says so; a bug is a logged 500 that shows no traceback.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tier0_kube import errors as kube_errors
from tier0_services import rediserrors
from tier0_services.api import bodyguard

log = logging.getLogger(__name__)


class BadRequestError(Exception):
    """Input that is well-formed but unusable, beyond what request validation (422) catches (400)."""


class NotFoundError(Exception):
    """A named thing (site, region) does not exist."""


class UnauthorizedError(Exception):
    """No bearer token was presented (401)."""


class ForbiddenError(Exception):
    """A token was presented but is not the right one, or none is configured (403)."""


class ConflictError(Exception):
    """The request contradicts the current state, e.g. a switchover while another is running (409)."""


class UnavailableError(Exception):
    """A dependency is not configured or not reachable (503)."""


class UpstreamFailedError(Exception):
    """The operator reported that the requested transition failed or was rolled back (502)."""


class UpstreamTimeoutError(Exception):
    """The operator did not report the requested state in time (504)."""


class NotImplementedYetError(Exception):
    """An endpoint of the seeds' tables whose feature is not built yet (501)."""


class PayloadTooLargeError(Exception):
    """The request body is larger than the endpoint accepts (413)."""


class UnsupportedMediaTypeError(Exception):
    """The request body is not of the media type the endpoint reads (415)."""


class Problem(BaseModel):
    """Body of every error answer (FastAPI's own 422 has a list of validation errors instead)."""

    detail: str


def responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` entries for the error codes an endpoint can answer."""
    text = {
        400: "Unusable input: a body that is not UTF-8 or not JSON, or a value the endpoint cannot use",
        401: "No bearer token",
        403: "Wrong bearer token, or none configured",
        404: "Unknown name",
        409: "Conflicts with the current state (the RegionPair's, a run already under way, or a full catalog)",
        413: "The request body is larger than this endpoint accepts",
        415: "The request body is not of the media type this endpoint reads",
        429: "Too many requests from this client, or in flight here: retry after `Retry-After` seconds",
        501: "Not implemented yet",
        502: "The operator reported the transition failed",
        503: "Redis or the Kubernetes API is unavailable, or (writes) this region is the standby",
        504: "The operator did not report the new state in time",
    }
    return {code: {"model": Problem, "description": text[code]} for code in codes}


_STATUS: dict[type[Exception], int] = {
    BadRequestError: 400,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    NotFoundError: 404,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    ConflictError: 409,
    UnavailableError: 503,
    UpstreamFailedError: 502,
    UpstreamTimeoutError: 504,
    NotImplementedYetError: 501,
    kube_errors.KubeUnavailableError: 503,
    kube_errors.KubeConfigError: 503,
    kube_errors.KubeNotFoundError: 503,
    kube_errors.KubeConflictError: 409,
    kube_errors.KubeRequestError: 502,
    kube_errors.KubeObjectError: 502,
}


def install(app: FastAPI) -> None:
    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        status = next(code for cls, code in _STATUS.items() if isinstance(exc, cls))
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(status_code=status, content={"detail": str(exc)}, headers=headers)

    for cls in _STATUS:
        app.add_exception_handler(cls, domain_error)

    @app.exception_handler(RedisError)
    async def redis_down(request: Request, exc: RedisError) -> JSONResponse:
        request.app.state.metrics.redis_errors.labels(error=type(exc).__name__).inc()
        if isinstance(exc, ReadOnlyError):
            return JSONResponse(status_code=503, content={"detail": standby_detail(request.app.state.settings.region)})
        what = "unavailable" if isinstance(exc, RedisConnectionError | RedisTimeoutError) else "error"
        return JSONResponse(status_code=503, content={"detail": f"redis {what}: {rediserrors.reason(exc)}"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path only; a path served
            # by several routes (GET and POST on /api/diagnostics/documents) allows all of theirs.
            headers["Allow"] = allowed_methods(request, headers.get("Allow"))
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        else:
            detail = str(exc.detail)
        return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=headers or None)

    @app.exception_handler(Exception)
    async def last_resort(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this answer (the server logs the traceback); the client only
        # learns that it was our fault.
        log.error("unhandled %s on %s %s: %r", type(exc).__name__, request.method, request.url.path, exc)
        return JSONResponse(status_code=500, content={"detail": "internal server error"})


def standby_detail(region: str) -> str:
    return (
        f"{region} is the standby region: its Redis is a read-only replica, so it takes no writes; "
        "send writes to the active region (the global Service follows it)"
    )


def allowed_methods(request: Request, fallback: str | None) -> str:
    """Every method the app documents on this path (HEAD with GET); for undocumented paths (the
    console's files) Starlette's own list."""
    methods = set(bodyguard.operation_index(request.app).operations(request.url.path))
    if not methods:
        return fallback or ""
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
