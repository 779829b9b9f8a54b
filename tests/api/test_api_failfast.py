"""A region API whose Redis swallows connections (its address gone with a crashed pod, a lost node,
a partition) answers 503 at once instead of holding each request for a timeout or more
(`tier0_services.failfast`). The black hole is a real listening socket whose accept queue is full:
the kernel drops further SYNs, as for an address nobody answers."""

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from tier0_dev.procs import Process
from tier0_services.api.settings import Settings

pytestmark = pytest.mark.integration

TIMEOUT = Settings().redis_timeout_seconds
ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]
RedisFactory = Callable[..., tuple[Process, int]]


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts no connection: a backlog of 0, filled by one connection never accepted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    probe = socket.socket()
    probe.settimeout(0.2)
    with pytest.raises(TimeoutError):  # the kernel drops the SYN: a connection attempt hangs
        probe.connect(("127.0.0.1", port))
    probe.close()
    yield port
    filler.close()
    server.close()


async def timed(client: httpx.AsyncClient, path: str = "/api/status") -> tuple[int, float]:
    started = time.monotonic()
    resp = await client.get(path)
    return resp.status_code, time.monotonic() - started


async def test_requests_to_a_vanished_redis_fail_at_once_not_each_after_a_timeout(
    api_factory: ApiFactory, black_hole: int
) -> None:
    client = await api_factory(black_hole)
    # Ten different reads at once: one connection attempt times out, the others do not queue
    # behind it for theirs (redis-py connects under the pool's lock: in turn, ten timeouts).
    started = time.monotonic()
    answers = await asyncio.gather(*(timed(client, f"/api/devices/metrics/site/SITE-{i}") for i in range(10)))
    assert all(code == 503 for code, _ in answers), answers
    assert time.monotonic() - started < 2 * TIMEOUT + 0.3, answers
    # While the breaker holds, a request is answered at once, with the reason.
    code, took = await timed(client)
    resp = await client.get("/api/devices/active")
    assert (code, resp.status_code) == (503, 503) and took < 0.2, (code, took)
    assert "not tried again" in resp.json()["detail"], resp.text
    # After it, Redis is tried again (and times out again: one timeout, no retry of it).
    await asyncio.sleep(TIMEOUT)
    code, took = await timed(client)
    assert code == 503 and TIMEOUT * 0.8 < took < 2 * TIMEOUT, took
    assert (await client.get("/health")).status_code == 200  # liveness never depended on Redis


async def test_a_redis_back_after_a_crash_is_used_again_within_the_hold(
    api_factory: ApiFactory, redis_factory: RedisFactory
) -> None:
    proc, port = redis_factory()
    client = await api_factory(port)
    assert (await client.get("/api/status")).status_code == 200
    proc.kill()
    await asyncio.sleep(Settings().read_max_age_seconds)
    assert (await client.get("/api/status")).status_code == 503  # refused: no breaker needed
    proc.start()
    deadline = time.monotonic() + TIMEOUT + 5
    while (await client.get("/api/status")).status_code != 200:
        assert time.monotonic() < deadline, "the API did not use its Redis again"
        await asyncio.sleep(0.05)
