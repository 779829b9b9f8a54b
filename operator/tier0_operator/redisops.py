"""Talking to one region's Redis: the probe and the few commands a transition needs (CLIENT PAUSE
WRITE, REPLICAOF, CLIENT UNPAUSE), the pair's epoch and the write guard (`min-replicas-to-write`).
Each call is bounded by a short timeout so a hung server counts as a failed probe instead of
stalling the daemon.

The probe is one pipelined round trip: INFO replication, GET `keys.PAIR_EPOCH`, CONFIG GET
min-replicas-*, HGETALL `keys.PIPELINE_HEARTBEATS`, TIME (the clock the heartbeats are on) and
CONFIG GET repl-ping-replica-period. A replica's INFO is also the standby's witness of its primary
(`decide.standby_saw`): its link, when it last heard from it, whether it is syncing.
Inside a transition only INFO replication is read (`full=False`): every millisecond counts there.
"""

import asyncio
import time
from dataclasses import replace
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tier0_contract import keys, pipeline
from tier0_contract import regionpair as rp
from tier0_operator import metrics
from tier0_operator.decide import REPL_PING_PERIOD, Guard
from tier0_operator.model import Probe, now


class RegionRedis:
    def __init__(
        self,
        region: str,
        endpoint: rp.RedisEndpoint,
        password: str | None,
        timeout: float,
        ca_pem: str | None = None,
    ) -> None:
        self.region = region
        self.endpoint = endpoint
        self.password = password
        # TLS (spec.regions[].redis.tls): the server's certificate checked against the pair's CA (with
        # the CA not read yet, against the system's: the probe fails, it never falls back to plain text).
        tls: dict[str, Any] = {}
        if endpoint.tls is not None:
            tls = {"ssl": True, "ssl_ca_data": ca_pem, "ssl_cert_reqs": "required"}
        self.client = aioredis.Redis(
            host=endpoint.host,
            port=endpoint.port,
            username=endpoint.username,
            password=password,
            **tls,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # one attempt: a failed probe must count, not be retried away
            decode_responses=True,
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def probe(
        self, health_url: str | None, http: aiohttp.ClientSession, full: bool = True, bound: float | None = None
    ) -> Probe:
        """The Redis round trip (+ the health URL, concurrently); `full=False` inside transitions.
        `bound`: a shorter limit for both round trips than the clients' timeouts."""
        started = time.perf_counter()
        at = now()
        redis_task = asyncio.ensure_future(self._read(full, bound))
        http_ok: bool | None = None
        error = ""
        if health_url:
            try:
                # The session's timeout unless bounded (timeout=None would mean no limit at all).
                limit = http.timeout if bound is None else aiohttp.ClientTimeout(total=bound)
                async with http.get(health_url, timeout=limit) as resp:
                    http_ok = 200 <= resp.status < 300
                    if not http_ok:
                        error = f"health {resp.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                http_ok, error = False, f"health: {type(e).__name__}"
        try:
            replies = await redis_task
        except (TimeoutError, RedisError, OSError) as e:
            metrics.PROBE_SECONDS.observe(time.perf_counter() - started)
            return Probe(self.region, at, reachable=False, http_ok=http_ok, error=f"redis: {e}"[:200])
        metrics.PROBE_SECONDS.observe(time.perf_counter() - started)
        probe = parse_replication(self.region, replies[0], at, http_ok, error)
        return with_extras(probe, *replies[1:]) if full else probe

    async def _read(self, full: bool, bound: float | None = None) -> list[Any]:
        async with asyncio.timeout(bound):
            if not full:
                return [await self.client.info("replication")]
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.info("replication")
                pipe.get(keys.PAIR_EPOCH)
                pipe.config_get("min-replicas-*")
                pipe.hgetall(keys.PIPELINE_HEARTBEATS)
                pipe.time()
                pipe.config_get("repl-ping-replica-period")
                return list(await pipe.execute())

    async def take_primary(
        self, epoch: int, min_replicas_to_write: int, max_lag: int
    ) -> tuple[tuple[pipeline.Heartbeat, ...], float]:
        """On a just promoted primary, before traffic moves to it: the pair's epoch (so writers pick it
        over any other master) and its write guard. The guard is dropped for the epoch's own SET (a
        fresh primary has no replica yet); nothing routes to it meanwhile. Returns the pipeline
        heartbeats it holds and its clock, read in the same round trip (`decide.held_routes`)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.config_set("min-replicas-to-write", 0)
            pipe.set(keys.PAIR_EPOCH, epoch)
            pipe.config_set("min-replicas-to-write", min_replicas_to_write)
            pipe.config_set("min-replicas-max-lag", max_lag)
            pipe.config_set("repl-ping-replica-period", REPL_PING_PERIOD)
            pipe.hgetall(keys.PIPELINE_HEARTBEATS)
            pipe.time()
            *_, heartbeats, (seconds, micros) = await pipe.execute()
        return tuple(pipeline.parse(heartbeats or {})), int(seconds) + int(micros) / 1e6

    async def apply_guard(self, guard: Guard) -> None:
        """Outside transitions: raise or lower min-replicas-to-write first, then (re)write the epoch."""
        if guard.min_replicas_to_write is not None:
            await self.client.config_set("min-replicas-to-write", guard.min_replicas_to_write)
            await self.client.config_set("min-replicas-max-lag", guard.min_replicas_max_lag)
        if guard.ping_period is not None:
            await self.client.config_set("repl-ping-replica-period", guard.ping_period)
        if guard.epoch is not None:
            await self.client.set(keys.PAIR_EPOCH, guard.epoch)

    async def pause_writes(self, ms: int) -> None:
        await self.client.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "PAUSE", ms, "WRITE"
        )

    async def unpause(self) -> None:
        await self.client.execute_command(  # type: ignore[no-untyped-call]
            "CLIENT", "UNPAUSE"
        )

    async def replicaof(self, master: "RegionRedis") -> None:
        """Replicate from `master`. Without ACL users (no `username`), authenticating with the
        master's password (masterauth); with them, the server replicates as its configured
        `masteruser` (tier0_services.access.redis), and the operator's own password stays with it."""
        if master.password and not master.endpoint.username:
            await self.client.execute_command(  # type: ignore[no-untyped-call]
                "CONFIG", "SET", "masterauth", master.password
            )
        host, port = master.endpoint.replication_endpoint
        await self.client.execute_command("REPLICAOF", host, port)  # type: ignore[no-untyped-call]

    async def promote(self) -> None:
        await self.client.execute_command(  # type: ignore[no-untyped-call]
            "REPLICAOF", "NO", "ONE"
        )


def with_extras(probe: Probe, epoch: Any, config: Any, heartbeats: Any, server_time: Any, ping: Any = None) -> Probe:
    """The probe with the rest of the pipelined replies (pure)."""
    config = {**dict(config or {}), **dict(ping or {})}

    def number(raw: Any) -> int | None:
        try:
            return int(raw)
        except (TypeError, ValueError):
            return None

    seconds, micros = server_time
    return replace(
        probe,
        epoch=number(epoch),
        min_replicas_to_write=number(config.get("min-replicas-to-write")),
        min_replicas_max_lag=number(config.get("min-replicas-max-lag")),
        ping_period=number(config.get("repl-ping-replica-period")),
        heartbeats=tuple(pipeline.parse(heartbeats or {})),
        server_time=int(seconds) + int(micros) / 1e6,
    )


def parse_replication(region: str, info: dict[str, Any], at: Any, http_ok: bool | None, error: str = "") -> Probe:
    """INFO replication -> Probe (pure; redis-py has already split the fields)."""
    if info.get("role") == "master":
        return Probe(region, at, True, http_ok, "primary", int(info.get("master_repl_offset", 0)), error=error)
    link_up = info.get("master_link_status") == "up"

    def seconds(field: str) -> int | None:
        # -1: never (a replica that has not connected yet has no lost link and no last I/O).
        value = int(info.get(field, -1))
        return value if value >= 0 else None

    return Probe(
        region,
        at,
        True,
        http_ok,
        "replica",
        int(info.get("slave_repl_offset", 0)),
        master_host=str(info.get("master_host")),
        master_port=int(info.get("master_port", 0)),
        link_up=link_up,
        error=error,
        last_io_seconds=seconds("master_last_io_seconds_ago") if link_up else None,
        link_down_seconds=None if link_up else seconds("master_link_down_since_seconds"),
        syncing=bool(int(info.get("master_sync_in_progress", 0))),
    )
