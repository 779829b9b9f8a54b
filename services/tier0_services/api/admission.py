"""Admission at the edge of the region API: per-client rate limits and concurrency caps, answered
`429` with `Retry-After` before any route, Redis call or AI work runs.

Without it one client (no token needed for reads or for a 404) could keep the event loop, Redis and
the AI thread pool busy, so that `/health`, which the operator probes to decide a failover, waited
behind the flood. Each request is classed by its path (`classify`, pure):

- `exempt`: the probes (`/health`, `/ready`, `/metrics` by default) pass untouched and uncounted;
- `ai`: image search and diagnostics (embeddings, retrieval) count against the client's general
  limit and a tighter AI limit, and against a small cap on AI requests in flight;
- `api`: everything else, unknown paths included, counts against the client's general limit and
  the cap on requests in flight.

Rates are `limits` rate strings (`200/second`, several with `;`) kept per client address in that
library's in-process storage (sliding window counter: two counters per client and limit, expiring
with the window), so each API process admits its own share: N replicas admit N times the rate.
The in-flight caps are plain counters: a request over a cap is refused at once, never queued.
"""

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import limits
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from tier0_services.api.instrument import REGION_HEADER
from tier0_services.api.metrics import ApiMetrics

Class = Literal["exempt", "api", "ai"]
Reason = Literal["rate_limit", "ai_rate_limit", "concurrency", "ai_concurrency"]

INTERNAL = "tier0.internal"
"""Scope key of requests the API sends itself (the console's traffic burst, bounded on its own):
they are admitted without being counted."""


def parse_rates(value: str) -> tuple[limits.RateLimitItem, ...]:
    """`limits` rate strings, `;`-separated (`200/second;5000/minute`); empty: no limit."""
    return tuple(limits.parse_many(value)) if value.strip() else ()


@dataclass(frozen=True)
class Policy:
    rates: tuple[limits.RateLimitItem, ...]
    """Per client, every request but the exempt ones."""
    ai_rates: tuple[limits.RateLimitItem, ...]
    """Per client, AI requests (in addition to `rates`)."""
    max_in_flight: int
    """Requests (not exempt) being served at once, AI ones included."""
    max_ai_in_flight: int
    exempt_paths: frozenset[str]
    ai_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    retry_after: int
    """Whole seconds, at least 1."""
    detail: str


def classify(path: str, policy: Policy) -> Class:
    if path in policy.exempt_paths:
        return "exempt"
    for prefix in policy.ai_prefixes:
        if path == prefix or path.startswith(prefix + "/"):
            return "ai"
    return "api"


def retry_after(reset_at: float, now: float) -> int:
    """Seconds until the window that refused a request has room again (at least 1)."""
    return max(1, math.ceil(reset_at - now))


def over_capacity(kind: Class, in_flight: int, ai_in_flight: int, policy: Policy) -> Rejection | None:
    """Whether one more request of `kind` would exceed an in-flight cap."""
    if in_flight >= policy.max_in_flight:
        return Rejection(
            "concurrency", 1, f"this region API is serving {in_flight} requests, its limit; retry in a second"
        )
    if kind == "ai" and ai_in_flight >= policy.max_ai_in_flight:
        return Rejection(
            "ai_concurrency",
            1,
            f"{ai_in_flight} image search/diagnostics requests are running, the limit; retry in a second",
        )
    return None


def rate_detail(rate: limits.RateLimitItem, ai: bool) -> str:
    what = "image search/diagnostics requests" if ai else "requests"
    return f"too many {what} from this client: the limit is {rate}"


def client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


class RateLimiter:
    """The per-client windows of one policy (in-process `limits` storage)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._limiter = limits.strategies.SlidingWindowCounterRateLimiter(limits.storage.MemoryStorage())

    def hit(self, kind: Class, client: str) -> Rejection | None:
        checks: Iterable[tuple[limits.RateLimitItem, Reason]] = [(r, "rate_limit") for r in self.policy.rates]
        if kind == "ai":
            checks = [*checks, *((r, "ai_rate_limit") for r in self.policy.ai_rates)]
        for rate, reason in checks:
            if not self._limiter.hit(rate, reason, client):
                reset_at, _ = self._limiter.get_window_stats(rate, reason, client)
                return Rejection(reason, retry_after(reset_at, time.time()), rate_detail(rate, reason != "rate_limit"))
        return None


class AdmissionMiddleware:
    """Outermost: a refused request costs a dictionary lookup and a short answer, nothing else (it
    is counted in `tier0_api_requests_rejected_total`, not in the request metrics or the access log)."""

    def __init__(self, app: ASGIApp, policy: Policy, metrics: ApiMetrics, region: str | None = None) -> None:
        self.app = app
        self.policy = policy
        self.metrics = metrics
        self.rates = RateLimiter(policy)
        self.in_flight = 0
        self.ai_in_flight = 0
        self._region_header = [(REGION_HEADER, region.encode())] if region else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get(INTERNAL):
            await self.app(scope, receive, send)
            return
        kind = classify(scope["path"], self.policy)
        if kind == "exempt":
            await self.app(scope, receive, send)
            return
        rejection = over_capacity(kind, self.in_flight, self.ai_in_flight, self.policy) or self.rates.hit(
            kind, client_of(scope)
        )
        if rejection is not None:
            self.metrics.rejected.labels(reason=rejection.reason).inc()
            await self._refuse(send, rejection)
            return
        ai = kind == "ai"
        self.in_flight += 1
        self.ai_in_flight += ai
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.ai_in_flight -= ai

    async def _refuse(self, send: Send, rejection: Rejection) -> None:
        body = orjson.dumps({"detail": rejection.detail, "reason": rejection.reason})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(rejection.retry_after).encode()),
            *self._region_header,
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
