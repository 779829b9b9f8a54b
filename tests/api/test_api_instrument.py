"""The instrumentation middleware on a bare ASGI app: status and route labels, bounded methods,
a crash counted as 500, observers fed only when registered."""

from typing import Any

import pytest
from prometheus_client import generate_latest

from tier0_services.api.instrument import UNMATCHED_ROUTE, InstrumentMiddleware, RequestRecord
from tier0_services.api.metrics import ApiMetrics

pytestmark = pytest.mark.unit


class Route:
    path = "/api/devices/metrics/site/{site_id}"


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/crash":
        raise RuntimeError("bug")
    if scope["path"].startswith("/api/"):
        scope["route"] = Route()  # what the router does on a match
    await send({"type": "http.response.start", "status": 201 if scope["path"].startswith("/api/") else 404})
    await send({"type": "http.response.body", "body": b"{}"})


async def call(mw: InstrumentMiddleware, path: str, method: str = "GET") -> None:
    scope = {"type": "http", "method": method, "path": path, "client": ("192.0.2.1", 5000)}

    async def send(_: Any) -> None:
        pass

    await mw(scope, None, send)  # type: ignore[arg-type]


async def test_labels_are_templates_statuses_and_known_methods() -> None:
    metrics, records = ApiMetrics("region1", "v1"), list[RequestRecord]()
    mw = InstrumentMiddleware(answer, metrics, [records.append])  # type: ignore[arg-type]
    await call(mw, "/api/devices/metrics/site/WY-ALPHA")
    await call(mw, "/nope", method="BREW")
    with pytest.raises(RuntimeError):
        await call(mw, "/crash")
    text = generate_latest(metrics.registry).decode()
    assert 'tier0_api_requests_total{method="GET",route="/api/devices/metrics/site/{site_id}",status="201"} 1.0' in text
    assert f'tier0_api_requests_total{{method="OTHER",route="{UNMATCHED_ROUTE}",status="404"}} 1.0' in text
    assert f'tier0_api_requests_total{{method="GET",route="{UNMATCHED_ROUTE}",status="500"}} 1.0' in text
    assert "tier0_api_requests_in_progress 0.0" in text
    assert [(r.path, r.status, r.client_ip) for r in records] == [
        ("/api/devices/metrics/site/WY-ALPHA", 201, "192.0.2.1"),
        ("/nope", 404, "192.0.2.1"),
        ("/crash", 500, "192.0.2.1"),
    ]
    assert all(isinstance(r, RequestRecord) and r.duration_seconds >= 0 for r in records)


async def test_non_http_scopes_pass_through() -> None:
    seen = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    mw = InstrumentMiddleware(app, ApiMetrics("r", "v"), [])  # type: ignore[arg-type]
    await mw({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
