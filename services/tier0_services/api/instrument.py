"""Per-request instrumentation: latency metrics and the request observers (access-log hook).

A pure ASGI middleware (no BaseHTTPMiddleware: it would copy every body through a task) times each
request from when the server hands it over to when the last byte of the answer is sent, labels it
with the matched route's path template, and then hands a `RequestRecord` to each observer in
`app.state.request_observers`.

Observers are plain synchronous callables run on the event loop after the answer is sent, so they
must be cheap and must not block: an observer that writes to Redis (the diagnostics access log)
should append to an in-memory buffer or `asyncio.Queue.put_nowait` and flush in batches from a
task its lifespan owns. An observer that raises is counted and logged, never fails the request.
With no observers registered the hot path pays nothing for the hook.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tier0_services.api.metrics import ApiMetrics

log = logging.getLogger(__name__)

UNMATCHED_ROUTE = "<unmatched>"
"""Route label of requests no route matched (404s for random paths): one series, not one per path."""

REGION_HEADER = b"x-tier0-region"

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods labelled as themselves; anything else a client sends is `OTHER` (bounded labels)."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered request, as the access log wants it."""

    started_at: float
    """Unix epoch seconds when the request arrived."""
    client_ip: str | None
    method: str
    path: str
    """The raw path as requested (no query string)."""
    route: str
    """The matched path template, or UNMATCHED_ROUTE."""
    status: int
    duration_seconds: float


RequestObserver = Callable[[RequestRecord], None]


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class InstrumentMiddleware:
    def __init__(
        self, app: ASGIApp, metrics: ApiMetrics, observers: list[RequestObserver], region: str | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.observers = observers
        # Every answer names the region that gave it (`X-Tier0-Region`): behind the global Service
        # a client (the console) can tell which region answered, also across a failover.
        self._region_header = (REGION_HEADER, region.encode()) if region else None
        # Labelled children cached: `.labels()` costs a lock and a dict lookup per call.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # unless the app starts an answer, it failed

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self._region_header is not None:
                    message = {**message, "headers": [*message.get("headers", ()), self._region_header]}
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.in_progress.dec()
            duration = time.perf_counter() - start
            self._record(scope, status, duration)

    def _record(self, scope: Scope, status: int, duration: float) -> None:
        method: str = scope["method"] if scope["method"] in METHODS else "OTHER"
        route = route_template(scope)
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            labels = {"method": method, "route": route, "status": str(status)}
            series = (self.metrics.request_duration.labels(**labels), self.metrics.requests.labels(**labels))
            self._series[key] = series
        series[0].observe(duration)
        series[1].inc()
        if self.observers:
            client = scope.get("client")
            record = RequestRecord(
                started_at=time.time() - duration,
                client_ip=client[0] if client else None,
                method=method,
                path=scope["path"],
                route=route,
                status=status,
                duration_seconds=duration,
            )
            for observer in self.observers:
                try:
                    observer(record)
                except Exception:
                    self.metrics.observer_errors.inc()
                    log.exception("request observer %r failed", observer)
