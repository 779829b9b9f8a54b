""" "Simulate High Traffic": a bounded burst of real requests against this region API.

The burst runs in the API process as a background task and sends its requests through the whole
app (middleware, metrics, the routes, their Redis reads) over an in-process ASGI transport, so it
loads the same event loop and Redis that answer the console's polls: the console's latency chart
shows it. It is bounded server-side twice: at most `TIER0_TRAFFIC_MAX_REQUESTS` requests, and it
stops sending after `TIER0_TRAFFIC_MAX_SECONDS`. One burst at a time per process (409 otherwise).
"""

import asyncio
import itertools
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from tier0_services import aio
from tier0_services.api import admission, errors
from tier0_services.api.console.models import TrafficRun

TARGETS = ("/api/status", "/api/devices/active", "/api/users/active?limit=10", "/api/devices/alerts?limit=10")
"""The console's own reads: what a crowd of dashboards would ask."""


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in ms of latencies in seconds (nearest rank); empty when no samples."""
    if not samples:
        return {}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {
        name: round(value * 1000, 3)
        for name, value in (
            ("p50", rank(50)),
            ("p95", rank(95)),
            ("p99", rank(99)),
            ("max", ordered[-1]),
        )
    }


@dataclass
class Burst:
    requests: int
    concurrency: int
    max_seconds: float
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)
    finished_at: datetime | None = None
    elapsed: float = 0.0
    sent: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    stopped_by: str | None = None

    def view(self) -> TrafficRun:
        running = self.finished_at is None
        return TrafficRun(
            state="running" if running else "finished",
            requests=self.requests,
            concurrency=self.concurrency,
            max_seconds=self.max_seconds,
            sent=self.sent,
            by_status=dict(self.by_status),
            started_at=self.started_at,
            finished_at=self.finished_at,
            elapsed_seconds=round(time.perf_counter() - self.started if running else self.elapsed, 3),
            stopped_by=None if running else ("time limit" if self.stopped_by == "time limit" else "done"),
            latency_ms=percentiles(self.latencies),
            targets=list(TARGETS),
        )


def _internal(app: ASGIApp) -> ASGIApp:
    """The app as the burst calls it: marked internal, so admission neither counts nor refuses
    the burst (it is bounded on its own), and the console's own polls keep their share."""

    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, admission.INTERNAL: True}, receive, send)

    return call


class TrafficGenerator:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.burst: Burst | None = None
        self._task: asyncio.Task[None] | None = None

    def idle_view(self, max_requests: int, max_seconds: float) -> TrafficRun:
        if self.burst is not None:
            return self.burst.view()
        return TrafficRun(
            state="idle",
            requests=0,
            concurrency=0,
            max_seconds=max_seconds,
            sent=0,
            by_status={},
            started_at=None,
            finished_at=None,
            elapsed_seconds=0.0,
            stopped_by=None,
            latency_ms={},
            targets=list(TARGETS),
        )

    def start(self, requests: int, concurrency: int, max_requests: int, max_seconds: float) -> Burst:
        if self._task is not None and not self._task.done():
            raise errors.ConflictError("a traffic burst is already running; wait for it to finish")
        burst = Burst(requests=min(requests, max_requests), concurrency=concurrency, max_seconds=max_seconds)
        self.burst = burst
        self._task = asyncio.create_task(self._run(burst))
        return burst

    async def _run(self, burst: Burst) -> None:
        deadline = burst.started + burst.max_seconds
        paths = itertools.cycle(TARGETS)
        transport = httpx.ASGITransport(app=_internal(self.app))
        async with httpx.AsyncClient(transport=transport, base_url="http://traffic.local") as client:

            async def worker() -> None:
                while burst.sent < burst.requests:
                    if time.perf_counter() >= deadline:
                        burst.stopped_by = "time limit"
                        return
                    burst.sent += 1
                    began = time.perf_counter()
                    try:
                        answer = await client.get(next(paths))
                        burst.by_status[str(answer.status_code)] += 1
                    except Exception:  # a failure of one request is counted, not fatal to the burst
                        burst.by_status["error"] += 1
                    burst.latencies.append(time.perf_counter() - began)

            try:
                await asyncio.gather(*(worker() for _ in range(burst.concurrency)))
            finally:
                burst.elapsed = time.perf_counter() - burst.started
                burst.finished_at = datetime.now(UTC)

    async def stop(self) -> None:
        if self._task is not None:
            await aio.cancel_and_wait(self._task)
