"""Region2's API serves reads from its own Redis, a real `REPLICAOF` replica of region1's: the same
answers as region1, role replica, and no write needed in region2."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from redis.asyncio import Redis

from tier0_dev.procs import Process
from tier0_testing import api as testing

pytestmark = pytest.mark.integration

ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]
RedisFactory = Callable[..., tuple[Process, int]]

READS = [
    "/api/devices/active",
    "/api/devices/alerts?limit=1000",
    "/api/devices/alerts?site_id=TX-BRAVO",
    "/api/devices/metrics/site/WY-ALPHA",
    "/api/users/active",
    "/api/users/activity",
    "/api/users/connections",
]


async def test_region2_reads_what_region1_wrote(redis_factory: RedisFactory, api_factory: ApiFactory) -> None:
    _, port1 = redis_factory()
    _, port2 = redis_factory()
    r1, r2 = Redis(port=port1), Redis(port=port2)
    try:
        await r2.replicaof("127.0.0.1", port1)
        now = time.time()
        await testing.write_devices(r1, testing.fleet(500), now)
        await testing.write_activity(r1, testing.activity_message(40, now))
        await _wait_replicated(r1, r2)

        region1 = await api_factory(port1, region="region1")
        region2 = await api_factory(port2, region="region2")
        s1 = (await region1.get("/api/status")).json()
        s2 = (await region2.get("/api/status")).json()
        assert (s1["role"], s1["status"], s2["role"], s2["status"]) == ("primary", "active", "replica", "standby")
        assert s1["active_devices"] == s2["active_devices"] == 500
        assert s1["active_users"] == s2["active_users"] == 40
        for path in READS:
            a, b = await region1.get(path), await region2.get(path)
            assert a.status_code == b.status_code == 200, path
            assert _without_times(a.json()) == _without_times(b.json()), path
    finally:
        await r1.aclose()
        await r2.aclose()


async def _wait_replicated(primary: Redis, replica: Redis, timeout: float = 10) -> None:
    """Until the replica is linked and has the primary's offset (WAIT alone does not cover the
    initial sync)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = await replica.info("replication")
        if info.get("master_link_status") == "up":
            if await primary.wait(1, int(timeout * 1000)) >= 1:
                offset = (await primary.info("replication"))["master_repl_offset"]
                if (await replica.info("replication"))["slave_repl_offset"] >= offset:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError("replica did not catch up")


def _without_times(body: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in body.items() if k not in ("timestamp", "region")}
