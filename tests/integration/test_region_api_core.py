"""Region API core endpoints over a real redis-server: health, readiness, status, Redis down."""

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings


@pytest.fixture
async def client(redis_port: int) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(Settings(region="region1", redis_url=f"redis://127.0.0.1:{redis_port}/0"))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as c:
            yield c


async def test_health_and_status_read_redis(client: httpx.AsyncClient, redis_port: int) -> None:
    import redis

    redis.Redis(port=redis_port).mset({"stats:active_devices": 1234, "stats:active_users": 5})
    assert (await client.get("/health")).json() == {"status": "healthy", "region": "region1"}
    assert (await client.get("/ready")).status_code == 200
    body = (await client.get("/api/status")).json()
    assert body["region"] == "region1" and body["role"] == "primary"
    assert body["active_devices"] == 1234 and body["active_users"] == 5


async def test_redis_down_is_a_503_with_a_reason(redis_factory) -> None:  # type: ignore[no-untyped-def]
    proc, port = redis_factory()
    app = create_app(Settings(region="region2", redis_url=f"redis://127.0.0.1:{port}/0"))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://region2") as c:
            proc.kill()
            resp = await c.get("/api/status")
            assert resp.status_code == 503
            assert "redis unavailable" in resp.json()["detail"]
            assert (await c.get("/health")).status_code == 200
