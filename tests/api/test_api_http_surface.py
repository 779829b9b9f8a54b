"""The HTTP surface as a new user tries it (issue 12, item 4): every bad input is a 4xx with a
reason, writes to the standby say so, the docs work offline, the console is served. A real
redis-server; region2 is a real REPLICAOF replica of region1 for the standby cases."""

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from redis.asyncio import Redis

from tier0_services.ai.providers import Providers
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings
from tier0_testing.ai import HashingEmbedder

pytestmark = pytest.mark.integration

TOKEN = "surface-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

Start = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
def apps() -> dict[str, Any]:
    """The started apps by region (the last one started for each)."""
    return {}


@pytest.fixture
async def start_api(apps: dict[str, Any]) -> AsyncIterator[Start]:
    """`await start_api(redis_port, region=..., **settings)`: the app with a tiny test embedder."""
    async with AsyncExitStack() as stack:

        async def start(redis_port: int, region: str = "region1", **overrides: Any) -> httpx.AsyncClient:
            settings = Settings(
                region=region,
                redis_url=f"redis://127.0.0.1:{redis_port}/0",
                api_token=SecretStr(TOKEN),
                **overrides,
            )
            app = create_app(settings)
            embedder = HashingEmbedder()
            app.state.ai_settings = AISettings(provider="local", record_access_log=False)
            app.state.ai_providers = Providers(kind="test", embedder=embedder, answerer=SentenceReader(embedder))
            manager = await stack.enter_async_context(LifespanManager(app, startup_timeout=60, shutdown_timeout=30))
            apps[region] = app
            transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
            return await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=f"http://{region}"))

        yield start


@pytest.fixture
async def api(start_api: Start, redis_port: int) -> httpx.AsyncClient:
    return await start_api(redis_port)


def detail(resp: httpx.Response) -> str:
    body = resp.json()
    text = body["detail"]
    return text if isinstance(text, str) else "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in text)


# --- bodies that are not what they claim -------------------------------------------------------------


async def test_lone_surrogate_in_json_is_400(api: httpx.AsyncClient) -> None:
    for path in ("/api/images/search", "/api/diagnostics/query"):
        field = "query" if "images" in path else "question"
        resp = await api.post(
            path, content=b'{"%s":"\\ud800"}' % field.encode(), headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == 400, resp.text
        assert "not valid JSON" in detail(resp) and "surrogate" in detail(resp).lower()


async def test_non_utf8_bodies_are_400(api: httpx.AsyncClient) -> None:
    resp = await api.post(
        "/api/diagnostics/logs/import", content=b"\xff\xfe 10.0.0.1 - -", headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert resp.status_code == 400, resp.text
    assert "not valid UTF-8" in detail(resp) and "0xff" in detail(resp)
    resp = await api.post(
        "/api/images/search", content=b'{"query":"\xc3("}', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and "UTF-8" in detail(resp)
    resp = await api.post("/api/images/search", content=b'{"query": ', headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and "not valid JSON" in detail(resp)


async def test_wrong_media_type_is_415(api: httpx.AsyncClient) -> None:
    resp = await api.post("/api/images/search", content=b"query=turbine", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415 and "application/json" in detail(resp)
    resp = await api.post(
        "/api/diagnostics/logs/import", json={"lines": []}, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 415 and "text/plain" in detail(resp)


async def test_body_size_is_limited(start_api: Start, redis_port: int) -> None:
    api = await start_api(redis_port, max_body_bytes=64 * 1024, max_upload_bytes=256 * 1024)
    big = b'{"query":"' + b"a" * (10 * 1024 * 1024) + b'"}'
    resp = await api.post("/api/images/search", content=big, headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and "65536 bytes" in detail(resp)
    # Streamed without a Content-Length: counted while read.

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 8192

    resp = await api.post(
        "/api/diagnostics/logs/import", content=chunks(), headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert resp.status_code == 413 and "262144 bytes" in detail(resp)
    # Upload endpoints take more than the others.
    lines = "\n".join(f'{{"ip":"10.0.0.{i % 9}","status":200,"ts":1700000000}}' for i in range(2000))
    assert 64 * 1024 < len(lines) < 256 * 1024
    resp = await api.post("/api/diagnostics/logs/import", content=lines, headers={**AUTH, "Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["imported"] == 2000


# --- strict values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/images/search", {"query": "turbine", "top_k": True}, "top_k"),
        ("/api/images/search", {"query": "turbine", "top_k": 2.5}, "top_k"),
        ("/api/images/search", {"query": "turbine", "top_k": "3"}, "top_k"),
        ("/api/images/search", {"query": "   \t "}, "query"),
        ("/api/images/search", {"query": "turbine", "topk": 3}, "topk"),
        ("/api/diagnostics/query", {"question": "\u3000 \n"}, "question"),
        ("/api/diagnostics/query", {"question": "why", "top_k": False}, "top_k"),
        ("/api/images/ingest", {"samples": 0}, "samples"),
        ("/api/images/ingest", {"samples": "true"}, "samples"),
    ],
)
async def test_lax_values_are_422(api: httpx.AsyncClient, path: str, body: dict[str, Any], needle: str) -> None:
    resp = await api.post(path, json=body, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert needle in detail(resp)


def upload(image_base64: str) -> dict[str, Any]:
    return {
        "images": [
            {
                "image_id": "u1",
                "site_id": "WY-ALPHA",
                "device_type": "turbine",
                "description": "a turbine",
                "image_base64": image_base64,
            }
        ]
    }


async def test_image_uploads_must_be_images(api: httpx.AsyncClient) -> None:
    for bad in ("hello", base64.b64encode(b"hello").decode(), base64.b64encode(PNG_1PX).decode()[:-1]):
        resp = await api.post("/api/images/ingest", json=upload(bad), headers=AUTH)
        assert resp.status_code == 422, resp.text
        assert "not base64 of a PNG or JPEG image" in detail(resp)
    resp = await api.post("/api/images/ingest", json=upload(base64.b64encode(PNG_1PX).decode()), headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.json()["ingested"] == 1
    # JSON Schema's integers include 3.0; booleans and strings are not integers.
    resp = await api.post("/api/images/search", json={"query": "turbine", "top_k": 3.0})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("code", ["400.0", "0400", "400%20", "4e2", "99", "600", "true"])
async def test_status_codes_in_paths_are_exact(api: httpx.AsyncClient, code: str) -> None:
    resp = await api.get(f"/api/diagnostics/logs/errors/{code}")
    assert resp.status_code == 422, resp.text
    assert (await api.get("/api/diagnostics/logs/errors/400")).status_code == 200


async def test_status_codes_in_imported_json_lines_are_exact(api: httpx.AsyncClient) -> None:
    lines = [
        '{"ip":"10.0.0.1","status":400,"ts":1700000000}',
        '{"ip":"10.0.0.2","status":400.0,"ts":1700000000}',
        '{"ip":"10.0.0.3","status":"0400","ts":1700000000}',
        '{"ip":"10.0.0.4","status":"400 ","ts":1700000000}',
        '{"ip":"10.0.0.5","status":true,"ts":1700000000}',
        '{"ip":"10.0.0.6","status":"404","ts":1700000000}',
    ]
    resp = await api.post(
        "/api/diagnostics/logs/import", content="\n".join(lines), headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["imported"], body["rejected"]) == (2, 4), body


# --- regions ------------------------------------------------------------------------------------------


async def test_unknown_version_of_the_other_region_is_404(api: httpx.AsyncClient, redis_port: int) -> None:
    resp = await api.get("/fastapi/region2/getappversion")
    assert resp.status_code == 404, resp.text
    assert "region2:version" in detail(resp)
    redis = Redis(port=redis_port)
    await redis.set("region2:version", "v1.2.3_region2")
    await redis.aclose()
    resp = await api.get("/fastapi/region2/getappversion")
    assert resp.status_code == 200 and resp.json()["version"] == "v1.2.3_region2"


async def test_writes_to_the_standby_say_it_is_the_standby(start_api: Start, redis_factory: Any) -> None:
    _, primary_port = redis_factory()
    _, replica_port = redis_factory("--replicaof", "127.0.0.1", str(primary_port))
    replica = Redis(port=replica_port)
    for _ in range(100):
        if (await replica.info("replication")).get("master_link_status") == "up":
            break
        await asyncio.sleep(0.05)
    await replica.aclose()
    standby = await start_api(replica_port, region="region2")
    log_line = '{"ip":"10.0.0.1","status":200,"ts":1700000000}'
    answers = [
        await standby.post(
            "/api/diagnostics/documents",
            json={"doc_id": "d1", "title": "A note", "text": "Turbines spin."},
            headers=AUTH,
        ),
        await standby.post(
            "/api/diagnostics/logs/import", content=log_line, headers={**AUTH, "Content-Type": "text/plain"}
        ),
        await standby.post("/api/images/ingest", json={"samples": True}, headers=AUTH),
    ]
    for resp in answers:
        assert resp.status_code == 503, (resp.request.url, resp.text)
        text = detail(resp)
        assert "region2 is the standby region" in text and "{" not in text, text
    # Reads keep working there.
    assert (await standby.get("/api/status")).json()["role"] == "replica"


async def test_every_answer_names_its_region(api: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/status", "/nope", "/openapi.json"):
        assert (await api.get(path)).headers["x-tier0-region"] == "region1"


# --- methods and documentation ------------------------------------------------------------------------


async def test_405_names_every_method_of_the_path(api: httpx.AsyncClient) -> None:
    resp = await api.options("/api/diagnostics/documents")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET, HEAD, POST"
    assert "OPTIONS is not allowed" in detail(resp)
    resp = await api.delete("/api/images/search")
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"


async def test_openapi_documents_the_error_answers(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    for path, method in [
        ("/api/images/search", "post"),
        ("/api/diagnostics/query", "post"),
        ("/api/diagnostics/logs/import", "post"),
        ("/api/images/ingest", "post"),
        ("/api/console/traffic", "post"),
        ("/api/failover/restore", "post"),
    ]:
        codes = set(spec["paths"][path][method]["responses"])
        assert {"400", "413", "415", "422"} <= codes, (path, codes)
    assert "404" in spec["paths"]["/fastapi/{region}/getappversion"]["get"]["responses"]


async def test_docs_work_offline(api: httpx.AsyncClient) -> None:
    for page, asset in (("/docs", "/docs-assets/swagger-ui-bundle.js"), ("/redoc", "/docs-assets/redoc.standalone.js")):
        html = (await api.get(page)).text
        assert asset in html and "cdn" not in html.lower() and "fonts.googleapis" not in html
        resp = await api.get(asset)
        assert resp.status_code == 200 and len(resp.content) > 100_000
    assert (await api.get("/docs-assets/swagger-ui.css")).status_code == 200


# --- the console's own endpoints ----------------------------------------------------------------------


async def test_root_serves_api_clients_and_sends_browsers_to_the_console(api: httpx.AsyncClient) -> None:
    body = (await api.get("/")).json()
    assert body["console"] == "/console" and body["region"] == "region1"
    assert (await api.get("/", headers={"Accept": "application/json"})).status_code == 200
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    resp = await api.get("/", headers={"Accept": browser})
    assert resp.status_code == 307 and resp.headers["location"] == "/console"
    page = await api.get("/console")
    assert page.status_code == 200 and "Simulate Failover" in page.text
    for asset in ("console.js", "charts.js", "console.css"):
        assert (await api.get(f"/console/static/{asset}")).status_code == 200


async def test_overview_without_a_regionpair(api: httpx.AsyncClient, redis_port: int) -> None:
    redis = Redis(port=redis_port)
    async with redis.pipeline() as pipe:
        pipe.hset("stats:ingest", mapping={"stored": 10, "stale": 2, "invalid": 1})
        pipe.sadd("sites", "WY-ALPHA")
        pipe.hset("site:WY-ALPHA:metrics", mapping={"ok_count": 5, "warn_count": 2, "alert_count": 1})
        await pipe.execute()
    await redis.aclose()
    body = (await api.get("/api/console/overview")).json()
    assert body["answered_by"] == "region1"
    assert [r["name"] for r in body["regions"]] == ["region1", "region2"]
    me, peer = body["regions"]
    assert (me["source"], me["role"], me["lag_bytes"]) == ("self", "primary", 0)
    assert peer["source"] == "unknown" and "kubernetes API not configured" in peer["error"]
    assert body["pair"] is None and "not configured" in body["pair_error"]
    assert body["telemetry"] == {
        "messages_total": 13,
        "devices_by_state": {"OK": 5, "WARN": 2, "ALERT": 1},
        "known_devices": 0,
    }


async def test_overview_asks_the_peer_api_when_configured(
    start_api: Start, redis_factory: Any, apps: dict[str, Any]
) -> None:
    _, port1 = redis_factory()
    _, port2 = redis_factory()
    await start_api(port2, region="region2")
    region1 = await start_api(port1, peer_api_url="http://region2")
    # The peer app, reached over ASGI the way TIER0_PEER_API_URL would reach it over HTTP.
    app = apps["region1"]
    await app.state.peer_http.aclose()
    app.state.peer_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps["region2"]), timeout=1.0)
    body = (await region1.get("/api/console/overview")).json()
    peer_view = body["regions"][1]
    assert (peer_view["source"], peer_view["role"], peer_view["healthy"]) == ("peer-api", "primary", True)
    # The version region1's Redis does not hold is asked of region2's API.
    version = await region1.get("/fastapi/region2/getappversion")
    assert version.status_code == 200 and version.json()["version"] == "v0.1.0", version.text
    await app.state.peer_http.aclose()
    app.state.peer_http = httpx.AsyncClient(timeout=0.3)  # now really over HTTP, to nothing listening
    app.state.settings = app.state.settings.model_copy(update={"peer_api_url": "http://127.0.0.1:9"})
    peer_view = (await region1.get("/api/console/overview")).json()["regions"][1]
    assert peer_view["healthy"] is False and "127.0.0.1:9" in peer_view["error"]
    version = await region1.get("/fastapi/region2/getappversion")
    assert version.status_code == 404 and "127.0.0.1:9" in detail(version)


async def test_overview_is_503_when_redis_is_down(start_api: Start, redis_factory: Any) -> None:
    proc, port = redis_factory()
    api = await start_api(port)
    proc.stop()
    resp = await api.get("/api/console/overview")
    assert resp.status_code == 503 and "redis unavailable" in detail(resp)


async def test_traffic_burst_needs_the_token_and_is_bounded(start_api: Start, redis_port: int) -> None:
    api = await start_api(redis_port, traffic_max_requests=120, traffic_max_seconds=5)
    assert (await api.post("/api/console/traffic", json={})).status_code == 401
    assert (await api.get("/api/console/traffic")).json()["state"] == "idle"
    resp = await api.post("/api/console/traffic", json={"requests": 5000, "concurrency": 8}, headers=AUTH)
    assert resp.status_code == 202, resp.text
    assert resp.json()["requests"] == 120  # capped server-side
    again = await api.post("/api/console/traffic", json={}, headers=AUTH)
    assert again.status_code == 409
    for _ in range(200):
        run = (await api.get("/api/console/traffic")).json()
        if run["state"] == "finished":
            break
        await asyncio.sleep(0.05)
    assert run["state"] == "finished" and run["sent"] == 120 and run["stopped_by"] == "done"
    assert sum(run["by_status"].values()) == 120 and run["by_status"].get("200") == 120
    assert run["latency_ms"]["p50"] > 0
    for bad in ({"requests": 0}, {"requests": 5001}, {"concurrency": 33}, {"requests": True}):
        assert (await api.post("/api/console/traffic", json=bad, headers=AUTH)).status_code == 422


async def test_traffic_burst_stops_at_the_time_limit(start_api: Start, redis_port: int) -> None:
    api = await start_api(redis_port, traffic_max_seconds=0.3)
    await api.post("/api/console/traffic", json={"requests": 5000, "concurrency": 2}, headers=AUTH)
    await asyncio.sleep(0.2)
    for _ in range(100):
        run = (await api.get("/api/console/traffic")).json()
        if run["state"] == "finished":
            break
        await asyncio.sleep(0.05)
    assert run["stopped_by"] == "time limit" and run["sent"] < 5000
    assert run["elapsed_seconds"] < 2.0


async def test_sample_pictures_for_result_cards(api: httpx.AsyncClient) -> None:
    resp = await api.get("/api/console/images/WY-ALPHA_turbine_Turbine1.png")
    assert resp.status_code == 200 and resp.content.startswith(b"\x89PNG")
    assert (await api.get("/api/console/images/uploaded-1")).status_code == 404
