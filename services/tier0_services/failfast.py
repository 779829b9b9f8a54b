"""A Redis client that fails fast while its server swallows connections.

A Redis that vanished with its address (a crashed pod deleted, a lost node, a partition) does not
refuse a connection: each attempt waits out `socket_connect_timeout`. redis-py's pool connects under
one lock, and its default retry reconnects after a timed-out read, so each request of a region API
whose Redis is gone waited one to three timeouts, and concurrent ones waited their turn: a client
in the middle of a failover saw 1.5 s pass before its retry could reach the new region. Here a
connection attempt that times out opens a breaker for `hold_seconds`: attempts meanwhile fail at
once with the same reason (answered 503 like any Redis error), and the first after it tries again.
A broken connection (a Redis restarted under a pooled one) is retried once; a timeout never is.
"""

import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError


class Breaker:
    """Open for `hold_seconds` after a connection attempt timed out (shared by a pool's connections)."""

    def __init__(self, hold_seconds: float) -> None:
        self.hold_seconds = hold_seconds
        self._until = 0.0
        self._why = ""

    def check(self) -> None:
        left = self._until - time.monotonic()
        if left > 0:
            raise TimeoutError(f"{self._why} (not tried again for {left:.2f} s)")

    def trip(self, why: str) -> None:
        self._until = time.monotonic() + self.hold_seconds
        self._why = why


class _FailFast(AbstractConnection):
    def __init__(self, *args: Any, breaker: Breaker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.breaker = breaker

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self.is_connected:
            return
        self.breaker.check()
        try:
            await super().connect_check_health(check_health, retry_socket_connect)
        except TimeoutError as exc:
            self.breaker.trip(str(exc))
            raise


class FailFastConnection(_FailFast, Connection):
    pass


class FailFastSSLConnection(_FailFast, SSLConnection):
    pass


def client(url: str, timeout_seconds: float, hold_seconds: float, **kwargs: Any) -> Redis:
    """A client of the Redis at `url` with `timeout_seconds` for connecting and for each reply, and a
    breaker holding `hold_seconds` after a connection attempt timed out. `kwargs`: the credentials
    (`connect.RedisAuth.kwargs`) and any other `Redis.from_url` option."""
    redis: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # redis-py's default backs off for seconds, and a client would rather hear "down" now.
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), retries=1, supported_errors=(ConnectionError,)),
        **kwargs,
    )
    pool = redis.connection_pool
    tls = issubclass(pool.connection_class, SSLConnection)
    pool.connection_class = FailFastSSLConnection if tls else FailFastConnection
    pool.connection_kwargs["breaker"] = Breaker(hold_seconds)
    return redis
