"""Talking to one region's Redis: the probe (PING + INFO replication) and the few commands a
transition needs (CLIENT PAUSE WRITE, REPLICAOF, CLIENT UNPAUSE). Each call is bounded by a
short timeout so a hung server counts as a failed probe instead of stalling the daemon.
"""

import asyncio
import time
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tier0_operator import metrics
from tier0_operator.model import Probe, RedisEndpoint, now


class RegionRedis:
    def __init__(self, region: str, endpoint: RedisEndpoint, password: str | None, timeout: float) -> None:
        self.region = region
        self.endpoint = endpoint
        self.password = password
        self.client = aioredis.Redis(
            host=endpoint.host,
            port=endpoint.port,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0),  # one attempt: a failed probe must count, not be retried away
            decode_responses=True,
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def probe(self, health_url: str | None, http: aiohttp.ClientSession, ping: bool = True) -> Probe:
        """PING + INFO replication (+ the health URL, concurrently); `ping=False` inside transitions."""
        started = time.perf_counter()
        at = now()
        redis_task = asyncio.ensure_future(self._replication(ping))
        http_ok: bool | None = None
        error = ""
        if health_url:
            try:
                async with http.get(health_url) as resp:
                    http_ok = 200 <= resp.status < 300
                    if not http_ok:
                        error = f"health {resp.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                http_ok, error = False, f"health: {type(e).__name__}"
        try:
            info = await redis_task
        except (TimeoutError, RedisError, OSError) as e:
            metrics.PROBE_SECONDS.observe(time.perf_counter() - started)
            return Probe(self.region, at, reachable=False, http_ok=http_ok, error=f"redis: {e}"[:200])
        metrics.PROBE_SECONDS.observe(time.perf_counter() - started)
        return parse_replication(self.region, info, at, http_ok, error)

    async def _replication(self, ping: bool) -> dict[str, Any]:
        if ping:
            await self.client.ping()
        return dict(await self.client.info("replication"))

    async def pause_writes(self, ms: int) -> None:
        await self.client.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "PAUSE", ms, "WRITE"
        )

    async def unpause(self) -> None:
        await self.client.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "UNPAUSE"
        )

    async def replicaof(self, master: "RegionRedis") -> None:
        """Replicate from `master`, authenticating with its password (masterauth) when it has one."""
        if master.password:
            await self.client.execute_command(  # type: ignore[no-untyped-call]
                "CONFIG", "SET", "masterauth", master.password
            )
        await self.client.execute_command(  # type: ignore[no-untyped-call]
            "REPLICAOF", master.endpoint.host, master.endpoint.port
        )

    async def promote(self) -> None:
        await self.client.execute_command(  # type: ignore[no-untyped-call]
            "REPLICAOF", "NO", "ONE"
        )


def parse_replication(region: str, info: dict[str, Any], at: Any, http_ok: bool | None, error: str = "") -> Probe:
    """INFO replication -> Probe (pure; redis-py has already split the fields)."""
    if info.get("role") == "master":
        return Probe(region, at, True, http_ok, "primary", int(info.get("master_repl_offset", 0)), error=error)
    return Probe(
        region,
        at,
        True,
        http_ok,
        "replica",
        int(info.get("slave_repl_offset", 0)),
        master_host=str(info.get("master_host")),
        master_port=int(info.get("master_port", 0)),
        link_up=info.get("master_link_status") == "up",
        error=error,
    )
