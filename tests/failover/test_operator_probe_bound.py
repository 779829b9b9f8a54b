"""The operator's probe of a region that failed its last probe is bounded by RECHECK_SECONDS, not
the client's timeout: a Redis that hangs (or an address that vanished) costs 0.25 s per probe, and
the last probe of the failure threshold delays the failover by that much. A real redis-server
still answers within the bound; a silent TCP server stands in for the hung one.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from tier0_contract import regionpair as rp
from tier0_operator import reconciler, redisops

pytestmark = pytest.mark.integration

CLIENT_TIMEOUT = 0.8  # the operator's at a 1 s probe interval
SLACK = 0.3  # a loaded 2-core CI machine; still well under the unbounded CLIENT_TIMEOUT


@pytest_asyncio.fixture
async def silent_port() -> AsyncIterator[int]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    for w in held:
        w.close()


async def timed_probe(port: int, bound: float | None, health: str | None = None) -> tuple[bool, float]:
    client = redisops.RegionRedis("r", rp.RedisEndpoint(host="127.0.0.1", port=port), None, CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as http:
        started = time.monotonic()
        probe = await client.probe(health, http, bound=bound)
        took = time.monotonic() - started
    await client.close()
    return probe.reachable, took


@pytest.mark.asyncio
async def test_a_hung_redis_costs_the_bound_not_the_timeout(silent_port: int) -> None:
    reachable, took = await timed_probe(silent_port, None)
    assert not reachable and took >= CLIENT_TIMEOUT * 0.9, took
    reachable, took = await timed_probe(silent_port, reconciler.RECHECK_SECONDS)
    assert not reachable and took < reconciler.RECHECK_SECONDS + SLACK, took


@pytest.mark.asyncio
async def test_a_hung_health_url_costs_the_bound_too(redis_port: int, silent_port: int) -> None:
    reachable, took = await timed_probe(
        redis_port, reconciler.RECHECK_SECONDS, f"http://127.0.0.1:{silent_port}/health"
    )
    assert reachable and took < reconciler.RECHECK_SECONDS + SLACK, took


@pytest.mark.asyncio
async def test_a_live_redis_answers_within_the_bound(redis_port: int) -> None:
    for _ in range(20):
        reachable, took = await timed_probe(redis_port, reconciler.RECHECK_SECONDS)
        assert reachable, took
