"""The worker's HTTP port: Prometheus `/metrics`, `/healthz` (the worker's own pipeline verdict) and
`/livez` (its loop's liveness, what the kubelet probes).

`/healthz` judges this process with the same rule the API and the operator apply to heartbeats
(`pipeline.assess_worker`), on this process's monotonic clock: 200 while `ok`/`idle`, 503 with the
reason while `stalled` (messages held, nothing stored for the stall time, or broker disconnected).
A stalled pipeline (its Redis or broker down) is not a reason to restart the worker, so the liveness
probe asks `/livez` instead: 503 once the worker's own loop has not stamped its
`liveness.LoopClock` for the maximum age (`tier0_contract.liveness`). This server runs in a thread
and would go on answering `/metrics` while that loop is wedged; `/livez` does not.
"""

import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from tier0_contract import liveness, pipeline
from tier0_services.heartbeat import Progress

Verdict = tuple[pipeline.State, str]


def verdict(progress: Progress, interval: float, stall_after: float = pipeline.DEFAULT_STALL_AFTER_SECONDS) -> Verdict:
    """`pipeline.assess_worker` of `progress` as of now (pure given the clock)."""
    now = time.monotonic()
    hb = pipeline.Heartbeat(
        component=progress.component,
        worker=progress.worker,
        region=progress.region,
        at=now,
        last_stored_at=progress.last_stored,
        received=progress.received,
        stored=progress.stored,
        pending=progress.pending,
        connected=progress.connected,
    )
    return pipeline.assess_worker(hb, now, max(stall_after, interval))


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(
    port: int,
    registry: CollectorRegistry,
    check: Callable[[], Verdict],
    clock: liveness.LoopClock,
    max_age: float,
    host: str = "0.0.0.0",
) -> None:
    """Serve /metrics, /healthz and /livez on `port` from a daemon thread."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == liveness.PATH:
            alive, body = liveness.verdict(clock.age(), max_age)
            start_response("200 OK" if alive else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [orjson.dumps(body)]
        if environ.get("PATH_INFO") == "/healthz":
            state, reason = check()
            healthy = state in ("ok", "idle")
            start_response("200 OK" if healthy else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [orjson.dumps({"state": state, "reason": reason})]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
