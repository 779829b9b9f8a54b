"""Prometheus metrics of the operator, served on :8080/metrics (TIER0_OPERATOR_METRICS_PORT), beside
the liveness answer `/livez` (`tier0_contract.liveness`: the age of kopf's event loop's last stamp).

Labels are per pair and region, never per device. A deleted pair's series are removed.
"""

import json
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app

from tier0_contract import liveness

TRANSITIONS = Counter("tier0_operator_transitions_total", "Switchovers and failovers by outcome", ["type", "outcome"])
TRANSITION_SECONDS = Histogram(
    "tier0_operator_transition_duration_seconds",
    "Time from the start of a transition to the Service selector flip",
    ["type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REGION_HEALTHY = Gauge("tier0_operator_region_healthy", "1 if the region's last probe succeeded", ["pair", "region"])
REGION_ROLE = Gauge("tier0_operator_region_role", "1 for the region's current Redis role", ["pair", "region", "role"])
LAG_BYTES = Gauge("tier0_operator_replication_lag_bytes", "Bytes the standby is behind the primary", ["pair"])
EPOCH = Gauge("tier0_operator_epoch", "Promotions so far (status.epoch)", ["pair"])
PROBE_SECONDS = Histogram(
    "tier0_operator_probe_duration_seconds",
    "Duration of one probe of one region (Redis and health URL)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
LEADER = Gauge("tier0_operator_leader", "1 while this replica holds the Lease and acts")
PIPELINE_HEALTHY = Gauge(
    "tier0_operator_pipeline_healthy",
    "1 if the region's telemetry pipeline is ok or idle, 0 if stalled or dead (absent/unknown: no series)",
    ["pair", "region"],
)
WRITES_AT_RISK = Gauge(
    "tier0_operator_writes_at_risk", "1 while the primary acknowledges writes alone (standby down)", ["pair"]
)
REDIS_HANGUPS = Counter(
    "tier0_operator_redis_hangups_total",
    "Times the active region's Redis closed the operator's idle connection (each wakes a probe at once)",
    ["pair", "region"],
)
IN_TRANSITION = Gauge("tier0_operator_in_transition", "1 while a switchover or failover is in progress", ["pair"])

ROLES = ("primary", "replica", "unknown")


def observe_region(pair: str, region: str, healthy: bool, role: str) -> None:
    REGION_HEALTHY.labels(pair, region).set(1 if healthy else 0)
    for r in ROLES:
        REGION_ROLE.labels(pair, region, r).set(1 if r == role else 0)


def observe_pipeline(pair: str, region: str, state: str | None) -> None:
    if state in ("ok", "idle", "stalled", "dead"):
        PIPELINE_HEALTHY.labels(pair, region).set(1 if state in ("ok", "idle") else 0)
    else:
        try:
            PIPELINE_HEALTHY.remove(pair, region)
        except KeyError:
            pass


def forget_pair(pair: str, regions: list[str]) -> None:
    for g in (LAG_BYTES, EPOCH, WRITES_AT_RISK, IN_TRANSITION):
        try:
            g.remove(pair)
        except KeyError:
            pass
    for region in regions:
        for per_region in (REGION_HEALTHY, PIPELINE_HEALTHY, REDIS_HANGUPS):
            try:
                per_region.remove(pair, region)
            except KeyError:
                pass
        for r in ROLES:
            try:
                REGION_ROLE.remove(pair, region, r)
            except KeyError:
                pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int, host: str, clock: liveness.LoopClock, max_age: float) -> None:
    """Serve /metrics and /livez from a daemon thread. The thread answers even while the event loop
    is wedged, which is why /livez reports the loop's own stamp rather than its own reachability."""
    metrics = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == liveness.PATH:
            alive, body = liveness.verdict(clock.age(), max_age)
            start_response("200 OK" if alive else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps(body).encode()]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
