"""Which of the pair's Redis endpoints is the current primary: one pure rule, two small I/O shells.

Every ingest worker and activity consumer, in either region, is connected to *both* regions' Redis
and writes to the current primary, so the region that is active receives the writes whichever
region the worker runs in, and no standby worker holds a queue. The rule (`choose`):

- Only an endpoint answering `ROLE` with `master` is a candidate.
- Among candidates the highest `keys.PAIR_EPOCH` wins (missing = 0). The operator writes the
  pair's epoch into the Redis it promotes, so an isolated old primary that still believes it is
  master (same or lower epoch) is never chosen over the promoted one.
- Two candidates at the same highest epoch are ambiguous (a promotion whose epoch is not written
  yet, or a split brain): no primary; writers hold their messages unacknowledged and re-resolve.

Each observation also carries what the replicated-acknowledgement policy needs from the endpoint:
its connected replicas and `min-replicas-to-write` (read with `CONFIG GET` in the same round trip,
so it is as fresh as the resolution, about once a second).
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from tier0_contract import credentials, keys
from tier0_services import aio, connect

log = logging.getLogger("tier0.primary")

MIN_REPLICAS = "min-replicas-to-write"


@dataclass(frozen=True)
class Observation:
    """What one endpoint answered (or that it did not)."""

    endpoint: int
    """Index into the configured endpoint list."""
    reachable: bool
    role: str = ""
    epoch: int = 0
    connected_replicas: int = 0
    min_replicas_to_write: int | None = None
    """None: unknown (CONFIG GET refused or unreadable); treated as "hold" by the ack policy."""
    error: str = ""


@dataclass(frozen=True)
class Choice:
    endpoint: int | None
    reason: str
    observation: Observation | None = None


def choose(observations: Sequence[Observation]) -> Choice:
    """The current primary among `observations` (pure)."""
    masters = [o for o in observations if o.reachable and o.role == "master"]
    if not masters:
        down = sum(not o.reachable for o in observations)
        return Choice(None, f"no endpoint is role:master ({down} of {len(observations)} unreachable)")
    top = max(o.epoch for o in masters)
    best = [o for o in masters if o.epoch == top]
    if len(best) > 1:
        ids = ", ".join(str(o.endpoint) for o in best)
        return Choice(None, f"endpoints {ids} are all role:master at epoch {top}: ambiguous, holding")
    o = best[0]
    return Choice(o.endpoint, f"endpoint {o.endpoint} is role:master at epoch {top}", o)


def parse_observation(endpoint: int, role: Any, epoch: Any, config: Any) -> Observation:
    """Observation from the raw answers to `ROLE`, `GET pair:epoch` and `CONFIG GET
    min-replicas-to-write` (each may be an exception instance: pipeline with raise_on_error off)."""
    if isinstance(role, BaseException) or not role:
        return Observation(endpoint, False, error=repr(role))
    name = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
    replicas = len(role[2]) if name == "master" and len(role) > 2 else 0
    try:
        ep = int(epoch) if epoch is not None and not isinstance(epoch, BaseException) else 0
    except ValueError:
        ep = 0
    min_replicas: int | None = None
    if isinstance(config, dict):
        value = config.get(MIN_REPLICAS, config.get(MIN_REPLICAS.encode()))
        try:
            min_replicas = int(value) if value is not None else None
        except ValueError:
            min_replicas = None
    return Observation(endpoint, True, name, ep, replicas, min_replicas)


def shown(urls: Sequence[str], endpoint: int | None) -> str:
    """An endpoint as a log line shows it (never with a password)."""
    return credentials.redact_url(urls[endpoint]) if endpoint is not None else "none"


RECHECK_TIMEOUT = 0.1
"""Bound of the probe of an endpoint that did not answer the last resolution: a vanished pod
address would cost the whole `timeout` at every resolution, and one that is back answers in
milliseconds (the operator's probes do the same)."""
HOLDING_INTERVAL = 0.05
"""Re-resolution cadence while there is no primary (a transition: writers hold their messages), so
the promoted one is found within this of its promotion, not within `interval`."""


def _observe_commands(pipe: Any) -> None:
    pipe.execute_command("ROLE")
    pipe.get(keys.PAIR_EPOCH)
    pipe.config_get(MIN_REPLICAS)


class AsyncPrimary:
    """Resolves the primary for an asyncio writer: `run()` re-resolves every `interval` and at once
    after `poke()` (a READONLY/NOREPLICAS/connection error)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        interval: float = 0.5,
        timeout: float = 0.5,
        write_timeout: float = 2.0,
        auth: connect.RedisAuth | None = None,
    ) -> None:
        self.urls = list(urls)
        self.interval = interval
        auth = auth or connect.RedisAuth()
        # A write to a primary cut off by a partition fails after write_timeout, then re-resolves.
        self.clients = [
            redis.asyncio.Redis.from_url(
                u,
                socket_timeout=write_timeout,
                socket_connect_timeout=timeout,
                health_check_interval=10,
                **auth.kwargs(u),
            )
            for u in self.urls
        ]
        """Write clients, one per endpoint."""
        self._probes = [
            redis.asyncio.Redis.from_url(u, socket_timeout=timeout, socket_connect_timeout=timeout, **auth.kwargs(u))
            for u in self.urls
        ]
        self.choice = Choice(None, "not resolved yet")
        self.resolved_at = 0.0
        self._unreachable: set[int] = set()
        self._changed = asyncio.Event()
        self._poke = asyncio.Event()

    async def _observe(self, i: int) -> Observation:
        try:
            async with asyncio.timeout(RECHECK_TIMEOUT if i in self._unreachable else None):
                async with self._probes[i].pipeline(transaction=False) as pipe:
                    _observe_commands(pipe)
                    role, epoch, config = await pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            return Observation(i, False, error=repr(exc))
        return parse_observation(i, role, epoch, config)

    async def resolve(self) -> Choice:
        observations = await asyncio.gather(*(self._observe(i) for i in range(len(self.urls))))
        self._unreachable = {o.endpoint for o in observations if not o.reachable}
        choice = choose(observations)
        if choice.endpoint != self.choice.endpoint:
            where = shown(self.urls, choice.endpoint)
            log.info("primary: %s (%s)", where, choice.reason)
            self._changed.set()
            self._changed = asyncio.Event()
        self.choice = choice
        self.resolved_at = time.monotonic()
        return choice

    def poke(self) -> None:
        """Re-resolve now (after an error that suggests the primary moved)."""
        self._poke.set()

    async def primary(self) -> int:
        """Index of the current primary, waiting (re-resolving) while there is none."""
        while self.choice.endpoint is None:
            self.poke()
            await aio.wait_event(self._changed, HOLDING_INTERVAL)
        return self.choice.endpoint

    async def run(self) -> None:
        while True:
            self._poke.clear()
            await self.resolve()
            await aio.wait_event(self._poke, self.interval if self.choice.endpoint is not None else HOLDING_INTERVAL)

    async def aclose(self) -> None:
        for c in (*self.clients, *self._probes):
            await c.aclose()


class SyncPrimary:
    """The same for a blocking writer (the pika activity consumer): `current()` re-resolves when
    the last resolution is older than `interval` or after `poke()`."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        interval: float = 0.5,
        timeout: float = 0.5,
        write_timeout: float = 2.0,
        auth: connect.RedisAuth | None = None,
    ) -> None:
        self.urls = list(urls)
        self.interval = interval
        auth = auth or connect.RedisAuth()
        self.clients = [
            redis.Redis.from_url(u, socket_timeout=write_timeout, socket_connect_timeout=timeout, **auth.kwargs(u))
            for u in self.urls
        ]
        self._probes = [
            redis.Redis.from_url(u, socket_timeout=timeout, socket_connect_timeout=timeout, **auth.kwargs(u))
            for u in self.urls
        ]
        self._rechecks = [
            redis.Redis.from_url(
                u, socket_timeout=RECHECK_TIMEOUT, socket_connect_timeout=RECHECK_TIMEOUT, **auth.kwargs(u)
            )
            for u in self.urls
        ]
        """Probe clients bounded by RECHECK_TIMEOUT, for endpoints that did not answer last time."""
        self.choice = Choice(None, "not resolved yet")
        self.resolved_at = float("-inf")
        self._unreachable: set[int] = set()

    def _observe(self, i: int) -> Observation:
        try:
            pipe = (self._rechecks if i in self._unreachable else self._probes)[i].pipeline(transaction=False)
            _observe_commands(pipe)
            role, epoch, config = pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError) as exc:
            return Observation(i, False, error=repr(exc))
        return parse_observation(i, role, epoch, config)

    def resolve(self) -> Choice:
        observations = [self._observe(i) for i in range(len(self.urls))]
        self._unreachable = {o.endpoint for o in observations if not o.reachable}
        choice = choose(observations)
        if choice.endpoint != self.choice.endpoint:
            where = shown(self.urls, choice.endpoint)
            log.info("primary: %s (%s)", where, choice.reason)
        self.choice = choice
        self.resolved_at = time.monotonic()
        return choice

    def poke(self) -> None:
        self.resolved_at = float("-inf")

    def current(self) -> Choice:
        every = self.interval if self.choice.endpoint is not None else HOLDING_INTERVAL
        if time.monotonic() - self.resolved_at >= every:
            return self.resolve()
        return self.choice
