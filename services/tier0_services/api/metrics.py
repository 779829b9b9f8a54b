"""The region API's Prometheus metrics, in a registry of its own per app (several apps in one test
process do not collide), exposed at `/metrics`.

Latency buckets include every latency target (25 ms, 100 ms, 200 ms) so that "share of requests
under the target" is an exact bucket ratio, not an interpolation. Labels are bounded: `route` is the
path template (`/api/devices/metrics/site/{site_id}`), never the raw path.
"""

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
FAILOVER_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class ApiMetrics:
    def __init__(self, region: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        labels = ("method", "route", "status")
        self.request_duration = Histogram(
            "tier0_api_request_duration_seconds",
            "Time from request start to the last byte of the answer, by route template",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter("tier0_api_requests", "HTTP requests answered", labels, registry=r)
        self.in_progress = Gauge("tier0_api_requests_in_progress", "HTTP requests being served", registry=r)
        self.redis_errors = Counter(
            "tier0_api_redis_errors", "Redis calls that failed (answered 503), by exception", ("error",), registry=r
        )
        self.failover_duration = Histogram(
            "tier0_api_failover_duration_seconds",
            "Failover/restore requests: from the spec patch until the operator reported the target active",
            ("outcome",),
            buckets=FAILOVER_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "tier0_api_requests_rejected",
            "Requests answered 429 by admission before any work, by the limit that refused them",
            ("reason",),
            registry=r,
        )
        self.observer_errors = Counter(
            "tier0_api_request_observer_errors",
            "Request observers that raised (the request was unaffected)",
            registry=r,
        )
        self.pipeline_healthy = Gauge(
            "tier0_api_pipeline_healthy",
            "1 while this region's pipeline component is ok/idle by its workers' heartbeats (set by /api/status)",
            ("component",),
            registry=r,
        )
        info = Gauge("tier0_api_info", "Region and version of this API (always 1)", ("region", "version"), registry=r)
        info.labels(region=region, version=version).set(1)


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    # Sync on purpose: FastAPI runs it in a thread, so a scrape never stalls the event loop.
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
