"""The hang-up watch (`tier0_operator.hangup`) on a real redis-server: an idle Redis never wakes the
pair's loop; a killed one wakes it at once (not at the next probe), and so does a connection
killed by hand; a server that is down is tried again, and watched once it is back; a watch replaced
or closed leaves no connection behind."""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis

from tier0_contract import regionpair as rp
from tier0_dev import programs
from tier0_dev.procs import Process, free_port
from tier0_operator import hangup, metrics
from tier0_operator.redisops import RegionRedis

pytestmark = pytest.mark.integration


def region_redis(port: int) -> RegionRedis:
    return RegionRedis("region1", rp.RedisEndpoint(host="127.0.0.1", port=port), None, 0.8)


def watchers(port: int) -> int:
    """Clients connected to the Redis on `port` besides the asking one (the watch's, while it holds)."""
    with Redis(port=port) as r:
        return len(r.client_list()) - 1


def hangups() -> float:
    return float(metrics.REDIS_HANGUPS.labels("ns/pair", "region1")._value.get())


async def woken(wake: asyncio.Event, within: float) -> float | None:
    """Seconds until `wake` is set (None: not within `within`)."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(wake.wait(), within)
    except TimeoutError:
        return None
    return time.monotonic() - started


async def held(port: int, count: int = 1) -> None:
    deadline = time.monotonic() + 5
    while watchers(port) != count:
        assert time.monotonic() < deadline, f"the watch holds {watchers(port)} connections, not {count}"
        await asyncio.sleep(0.02)


@dataclass
class Watched:
    """A redis-server, the region's client to it, and a hang-up watch that sets `wake` (not yet
    tracking the client: each test starts the watch itself)."""

    port: int
    data: Path
    server: Process
    client: RegionRedis
    wake: asyncio.Event
    watch: hangup.HangupWatch

    def start_server(self) -> None:
        """A new redis-server on the same port and data: the one the teardown stops."""
        self.server = programs.redis(self.port, self.data)


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    port, data = free_port(), tmp_path / "redis"
    wake = asyncio.Event()
    w = Watched(port, data, programs.redis(port, data), region_redis(port), wake, hangup.HangupWatch("ns/pair", wake))
    yield w
    await w.watch.close()
    await w.client.close()
    w.server.stop()


async def test_a_killed_redis_wakes_the_loop_at_once_and_an_idle_one_never(watched: Watched) -> None:
    watched.watch.track(watched.client)
    await held(watched.port)
    assert await woken(watched.wake, 1.5) is None  # idle: Redis sends nothing, nothing ends
    before = hangups()
    killed = time.monotonic()
    watched.server.kill()
    took = await woken(watched.wake, 2.0)
    assert took is not None, "a killed Redis did not wake the loop"
    assert time.monotonic() - killed < 0.3, f"woken {time.monotonic() - killed:.3f} s after the kill"
    assert hangups() == before + 1
    # Down: the watch tries again without waking anyone; back up, it holds a connection again.
    watched.wake.clear()
    assert await woken(watched.wake, 1.5) is None
    watched.start_server()
    await held(watched.port)


async def test_a_connection_killed_by_hand_wakes_it_too_and_the_watch_comes_back(watched: Watched) -> None:
    """A CLIENT KILL is no crash: the loop wakes and probes (and finds the Redis answering)."""
    watched.watch.track(watched.client)
    await held(watched.port)
    with Redis(port=watched.port) as r:
        assert r.client_kill_filter(skipme=True) == 1
    assert await woken(watched.wake, 2.0) is not None
    await held(watched.port)  # watching again after RECONNECT_SECONDS


async def test_another_client_replaces_the_watch_and_none_or_close_ends_it(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    servers = [programs.redis(p, tmp_path / f"redis-{p}") for p in ports]
    clients = [region_redis(p) for p in ports]
    watch = hangup.HangupWatch("ns/pair", asyncio.Event())
    try:
        watch.track(clients[0])
        await held(ports[0])
        watch.track(clients[0])  # the same client: the same connection
        await asyncio.sleep(0.2)
        await held(ports[0])
        watch.track(clients[1])  # a new active region
        await held(ports[0], 0)
        await held(ports[1])
        watch.track(None)
        await held(ports[1], 0)
        watch.track(clients[0])
        await held(ports[0])
        await watch.close()
        await held(ports[0], 0)
    finally:
        await watch.close()
        for c in clients:
            await c.close()
        for s in servers:
            s.stop()
