"""Region API core over a real redis-server: `/`, health, readiness, status, app version, OpenAPI,
metrics (promtool-clean), request observers, unknown paths, the last-resort 500, and Redis down."""

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_dev.procs import Process, find_program
from tier0_services.api.app import create_app
from tier0_services.api.instrument import RequestRecord
from tier0_services.api.settings import Settings
from tier0_testing import api as testing

pytestmark = pytest.mark.integration

ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]
RedisFactory = Callable[..., tuple[Process, int]]

SEEDS_ENDPOINTS = {
    ("get", "/"),
    ("get", "/health"),
    ("get", "/api/status"),
    ("get", "/fastapi/{region}/getappversion"),
    ("get", "/api/devices/active"),
    ("get", "/api/devices/alerts"),
    ("get", "/api/devices/metrics/site/{site_id}"),
    ("get", "/api/users/active"),
    ("get", "/api/users/activity"),
    ("get", "/api/users/connections"),
    ("post", "/api/images/search"),
    ("get", "/api/images/list"),
    ("get", "/api/images/site/{site_id}"),
    ("post", "/api/diagnostics/query"),
    ("get", "/api/diagnostics/logs/errors/{code}"),
    ("get", "/api/diagnostics/logs/stats"),
    ("get", "/api/diagnostics/logs/summary"),
    ("post", "/api/failover/simulate"),
    ("get", "/api/failover/status"),
    ("post", "/api/failover/restore"),
}


async def test_root_health_and_ready(client: httpx.AsyncClient) -> None:
    root = (await client.get("/")).json()
    assert root["region"] == "region1" and root["docs"] == "/docs" and root["version"]
    assert (await client.get("/health")).json() == {"status": "healthy", "region": "region1"}
    assert (await client.get("/ready")).json() == {"status": "ready", "region": "region1"}


async def test_status_counts_what_ingest_and_activity_wrote(client: httpx.AsyncClient, redis: Redis) -> None:
    now = time.time()
    await testing.write_devices(redis, testing.fleet(120), now)
    await testing.write_devices(redis, testing.fleet(150)[120:], now - 3600)  # long silent: not active
    await testing.write_activity(redis, testing.activity_message(7, now))
    body = (await client.get("/api/status")).json()
    assert body["region"] == "region1" and body["role"] == "primary" and body["status"] == "active"
    assert body["active_devices"] == 120 and body["active_users"] == 7
    assert set(body) == {
        "region",
        "status",
        "role",
        "version",
        "startup_time",
        "active_devices",
        "active_users",
        "timestamp",
        "pipeline",
    }
    assert body["pipeline"]["ingest"]["state"] == "absent"  # no worker heartbeats here
    await redis.set(keys.region_status("region1"), "failing_over")
    # Requests share one read per read_max_age_seconds (`snapshot`): a change shows within that.
    await asyncio.sleep(Settings().read_max_age_seconds)
    assert (await client.get("/api/status")).json()["status"] == "failing_over"


async def test_hot_reads_are_shared_within_their_max_age(client: httpx.AsyncClient, redis: Redis) -> None:
    """50 concurrent `/api/status` and 50 `/api/devices/active` cost Redis one read each; after
    read_max_age_seconds the next request reads again and sees what changed."""
    await testing.write_devices(redis, testing.fleet(30), time.time())
    before = await _zcount_calls(redis)
    answers = await asyncio.gather(
        *(client.get("/api/status") for _ in range(50)), *(client.get("/api/devices/active") for _ in range(50))
    )
    assert {a.status_code for a in answers} == {200}
    assert {a.json()["active_devices"] for a in answers} == {30}
    assert await _zcount_calls(redis) - before == 2
    await testing.write_devices(redis, testing.fleet(40)[30:], time.time())
    await asyncio.sleep(Settings().read_max_age_seconds)
    assert (await client.get("/api/devices/active")).json()["active_devices"] == 40
    assert (await client.get("/api/status")).json()["active_devices"] == 40


async def _zcount_calls(redis: Redis) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_zcount", {}).get("calls", 0))


async def test_app_version_per_region(api_factory: ApiFactory, redis: Redis, redis_port: int) -> None:
    client = await api_factory(redis_port, version="v1.0.0057_region1")
    own = await client.get("/fastapi/region1/getappversion")
    assert own.status_code == 200 and own.json()["version"] == "v1.0.0057_region1"
    unrecorded = await client.get("/fastapi/region2/getappversion")
    assert unrecorded.status_code == 404 and "region2:version" in unrecorded.json()["detail"]
    await redis.set(keys.region_version("region2"), "v1.0.0058_region2")
    assert (await client.get("/fastapi/region2/getappversion")).json()["version"] == "v1.0.0058_region2"
    unknown = await client.get("/fastapi/region9/getappversion")
    assert unknown.status_code == 404 and "region9" in unknown.json()["detail"]


async def test_openapi_documents_every_endpoint_of_the_seeds(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert SEEDS_ENDPOINTS <= documented
    assert "503" in spec["paths"]["/api/devices/active"]["get"]["responses"]
    assert "404" in spec["paths"]["/api/devices/metrics/site/{site_id}"]["get"]["responses"]
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_path_is_a_json_404(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api/nothing/here")
    assert resp.status_code == 404 and resp.json() == {"detail": "Not Found"}


async def test_metrics_label_routes_by_template_and_pass_promtool(client: httpx.AsyncClient, redis: Redis) -> None:
    await testing.write_devices(redis, testing.fleet(40), time.time())
    for site in testing.SITES[:3]:
        assert (await client.get(f"/api/devices/metrics/site/{site}")).status_code == 200
    await client.get("/random/path/1")
    await client.get("/random/path/2")
    text = (await client.get("/metrics")).text
    route = 'route="/api/devices/metrics/site/{site_id}"'
    assert f'tier0_api_requests_total{{method="GET",{route},status="200"}} 3.0' in text
    for le in ("0.025", "0.1", "0.2"):
        assert f'tier0_api_request_duration_seconds_bucket{{le="{le}",method="GET",{route},status="200"}}' in text
    assert "WY-ALPHA" not in text and "/random/path" not in text
    assert 'route="<unmatched>",status="404"} 2.0' in text
    assert 'tier0_api_info{region="region1",version="v0.1.0"} 1.0' in text
    check = subprocess.run([find_program("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


async def test_request_observers_see_each_answered_request(redis_port: int) -> None:
    records: list[RequestRecord] = []

    def broken(_: RequestRecord) -> None:
        raise RuntimeError("observer bug")

    app = create_app(Settings(redis_url=f"redis://127.0.0.1:{redis_port}/0"), observers=[records.append, broken])
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as c:
            assert (await c.get("/api/devices/metrics/site/NOPE")).status_code == 404
            assert (await c.get("/health")).status_code == 200
            metrics = (await c.get("/metrics")).text
    first = records[0]
    assert (first.client_ip, first.method, first.path, first.status) == (
        "203.0.113.9",
        "GET",
        "/api/devices/metrics/site/NOPE",
        404,
    )
    assert first.route == "/api/devices/metrics/site/{site_id}" and 0 < first.duration_seconds < 5
    assert abs(first.started_at - time.time()) < 60
    assert [r.path for r in records[1:]] == ["/health", "/metrics"]
    assert "tier0_api_request_observer_errors_total 2.0" in metrics  # counted, requests unaffected


async def test_a_bug_is_a_json_500_without_a_traceback(redis_port: int) -> None:
    app = create_app(Settings(redis_url=f"redis://127.0.0.1:{redis_port}/0"))

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as c:
            resp = await c.get("/boom")
            metrics = (await c.get("/metrics")).text
    assert resp.status_code == 500 and resp.json() == {"detail": "internal server error"}
    assert "secret" not in resp.text and "Traceback" not in resp.text
    assert 'tier0_api_requests_total{method="GET",route="/boom",status="500"} 1.0' in metrics


REDIS_ENDPOINTS = [
    "/ready",
    "/api/status",
    "/fastapi/region1/getappversion",
    "/api/devices/active",
    "/api/devices/alerts",
    "/api/devices/alerts?site_id=WY-ALPHA",
    "/api/devices/metrics/site/WY-ALPHA",
    "/api/users/active",
    "/api/users/activity",
    "/api/users/connections",
]


async def test_redis_down_is_a_fast_503_with_a_reason(redis_factory: RedisFactory, api_factory: ApiFactory) -> None:
    proc, port = redis_factory()
    client = await api_factory(port)
    assert (await client.get("/api/status")).status_code == 200  # a pooled connection exists
    proc.kill()
    await asyncio.sleep(Settings().read_max_age_seconds)  # the read above is no longer served
    for path in REDIS_ENDPOINTS:
        started = time.monotonic()
        resp = await client.get(path)
        assert resp.status_code == 503, (path, resp.text)
        assert resp.json()["detail"].startswith("redis unavailable"), path
        assert time.monotonic() - started < 2, path
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/")).status_code == 200
    assert "tier0_api_redis_errors_total{error=" in (await client.get("/metrics")).text


async def test_cors_only_for_configured_origins(api_factory: ApiFactory, redis_port: int) -> None:
    dashboard = "http://localhost:3000"
    closed = await api_factory(redis_port)
    assert "access-control-allow-origin" not in (await closed.get("/health", headers={"Origin": dashboard})).headers
    open_ = await api_factory(redis_port, cors_origins=[dashboard])
    preflight = await open_.options(
        "/api/failover/simulate",
        headers={
            "Origin": dashboard,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == dashboard
    assert (await open_.get("/health", headers={"Origin": dashboard})).headers[
        "access-control-allow-origin"
    ] == dashboard
