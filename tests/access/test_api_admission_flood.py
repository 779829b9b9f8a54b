"""Admission at the edge and bounded memory, on the real API over a real redis-server (issue 17):

- a flood of 3,000 random 8 KB paths without a token, with the default settings: 429s (with
  `Retry-After` and a JSON reason) instead of growing Redis, whose memory stays within 1 MB where it
  grew by tens of MB before (the access log kept every raw path); what the API wrote has a data
  class, and no key it wrote carries a TTL (it is never evicted);
- AI endpoints are limited tighter than the rest, per client, and by an in-flight cap;
- `/health` answers through all of it, and the rejections are in `/metrics`.
"""

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.providers import Providers
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings
from tier0_testing.ai import HashingEmbedder

pytestmark = pytest.mark.integration

ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]
Start = Callable[..., Awaitable[FastAPI]]


@pytest.fixture
async def start_api(redis_port: int) -> AsyncIterator[Start]:
    """`app = await start_api(**settings)`: started, with the tiny test embedder (fast AI answers)."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> FastAPI:
            app = create_app(Settings(region="region1", redis_url=f"redis://127.0.0.1:{redis_port}/0", **overrides))
            embedder = HashingEmbedder()
            app.state.ai_settings = AISettings(provider="local", record_access_log=False)
            app.state.ai_providers = Providers(kind="test", embedder=embedder, answerer=SentenceReader(embedder))
            manager = await stack.enter_async_context(LifespanManager(app, startup_timeout=60, shutdown_timeout=30))
            started: FastAPI = manager.app  # type: ignore[assignment]
            return started

        yield start


def client_of(app: FastAPI, address: str = "192.0.2.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 4000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://region1")


async def wait_recorded(redis: Redis, expected: int, timeout: float = 10.0) -> int:
    """The access log's total once it reaches `expected` (the recorder flushes every 0.5 s)."""
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        total = int(await redis.get(keys.LOGS_TOTAL) or 0)
        if total >= expected:
            return total
        await asyncio.sleep(0.1)
    return total


async def test_a_flood_of_random_8kb_paths_gets_429s_and_leaves_redis_bounded(
    api_factory: ApiFactory, redis_port: int, redis: Redis
) -> None:
    client = await api_factory(redis_port)
    await client.get("/api/status")  # the recorder is running and has its first entry
    await wait_recorded(redis, 1)
    before = (await redis.info("memory"))["used_memory"]
    rng = random.Random(17)
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    health: list[int] = []
    for i in range(3000):
        answer = await client.get("/" + rng.randbytes(4096).hex())
        statuses[answer.status_code] += 1
        if answer.status_code == 429:
            retry_after.add(answer.headers["retry-after"])
            assert answer.json()["reason"] == "rate_limit", answer.text
        if i % 100 == 0:
            health.append((await client.get("/health")).status_code)
    assert set(statuses) <= {404, 429} and statuses[429] > 0, statuses
    assert all(int(s) >= 1 for s in retry_after)
    assert health == [200] * 30
    # Every answered (not refused) request is recorded: the first, the 404s (one counter) and /health.
    recorded = 1 + statuses[404] + len(health)
    assert await wait_recorded(redis, recorded) == recorded
    grown = (await redis.info("memory"))["used_memory"] - before
    assert grown < 1_000_000, f"Redis grew by {grown:,} bytes for {statuses[404]:,} recorded 8 KB paths"
    assert await redis.zscore(keys.logs_paths_for_status(404), "<unmatched>") == statuses[404]
    written = [k.decode() async for k in redis.scan_iter(count=1000)]
    assert written and all(keys.data_class(k) is not None for k in written), written
    assert [k for k in written if await redis.ttl(k) != -1] == []
    metrics = (await client.get("/metrics")).text
    assert f'tier0_api_requests_rejected_total{{reason="rate_limit"}} {statuses[429]}.0' in metrics


async def test_ai_endpoints_are_limited_tighter_per_client(start_api: Start) -> None:
    app = await start_api(ai_rate_limit="5/minute")
    async with client_of(app) as client, client_of(app, "192.0.2.9") as second:
        await ai_limits(client, second)


async def ai_limits(client: httpx.AsyncClient, second: httpx.AsyncClient) -> None:
    stats = [await client.get("/api/diagnostics/logs/stats") for _ in range(7)]
    assert [r.status_code for r in stats] == [200] * 5 + [429] * 2
    assert stats[-1].json()["reason"] == "ai_rate_limit" and "5 per 1 minute" in stats[-1].json()["detail"]
    assert 1 <= int(stats[-1].headers["retry-after"]) <= 60
    assert (await client.post("/api/images/search", json={"query": "hard hats"})).status_code == 429
    # The rest of the API, and other clients, are not held back by this client's AI budget.
    assert (await client.get("/api/status")).status_code == 200
    assert (await second.get("/api/diagnostics/logs/stats")).status_code == 200


async def test_ai_requests_in_flight_are_capped(start_api: Start) -> None:
    app = await start_api(max_concurrent_ai_requests=1, ai_rate_limit="")
    async with client_of(app) as client:
        await ai_in_flight(client)


async def ai_in_flight(client: httpx.AsyncClient) -> None:
    searches = await asyncio.gather(
        *(client.post("/api/images/search", json={"query": f"turbine {i}"}) for i in range(4)),
        client.get("/health"),
        client.get("/api/status"),
    )
    codes = [r.status_code for r in searches]
    assert codes[0] == 200 and set(codes[1:4]) == {429} and codes[4:] == [200, 200], codes
    assert searches[1].json()["reason"] == "ai_concurrency" and searches[1].headers["retry-after"] == "1"
    assert (await client.post("/api/images/search", json={"query": "turbine"})).status_code == 200
