"""Hearing the active Redis hang up: the wake-up for a crash between two probes.

A probe runs once per `probeIntervalSeconds`, so a Redis killed just after one was heard of only at
the next, up to a whole interval later, before the fast path's confirmation even began. A crash is
loud, though: the kernel closes the dead server's sockets, so a connection held open to it ends at
once. The operator keeps one idle connection to the active region's Redis (authenticated like its
probes, never sent a command: Redis sends nothing to an idle client) and wakes the pair's loop when
the server closes it. The loop then probes at once; the decision is still `decide`'s, on probes and
witnesses, so a hang-up alone (a `CLIENT KILL`, a restart that answers again) fails nothing over.

A silent failure (a partition, a frozen host) closes nothing: that stays the probes' and the
standby's link's to find.
"""

import asyncio
import logging

from redis.exceptions import RedisError

from tier0_operator import metrics
from tier0_operator.redisops import RegionRedis

log = logging.getLogger("tier0_operator.hangup")

IDLE_READ_SECONDS = 60.0  # each read's limit; an idle connection simply reads again
RECONNECT_SECONDS = 0.5  # after a hang-up or a refused connection: the probes watch it meanwhile
SETTLE_SECONDS = 0.05  # from a hang-up to the wake-up (below)
CLOSE_SECONDS = 2.0  # how long close() waits for the watch to end


class HangupWatch:
    """One idle connection to the Redis being watched; `wake` is set when the server closes it."""

    def __init__(self, pair: str, wake: asyncio.Event) -> None:
        self.pair = pair
        self.wake = wake
        self._watched: RegionRedis | None = None
        self._task: asyncio.Task[None] | None = None

    def track(self, redis: RegionRedis | None) -> None:
        """Watch `redis` (the active region's client; None: none) from now on. The same client
        again changes nothing; another (a new active region, new credentials) replaces the watch."""
        if redis is self._watched:
            return
        self._stop()
        self._watched = redis
        if redis is not None:
            self._task = asyncio.create_task(self._watch(redis), name=f"hangup-{self.pair}-{redis.region}")

    async def close(self) -> None:
        task = self._task
        self._stop()
        if task is not None:
            await asyncio.wait([task], timeout=CLOSE_SECONDS)

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task, self._watched = None, None

    async def _watch(self, redis: RegionRedis) -> None:
        while True:
            hung_up = await self._held_until_hangup(redis)
            _cancel_if_asked()
            if hung_up:
                metrics.REDIS_HANGUPS.labels(self.pair, redis.region).inc()
                log.info("%s: %s's Redis closed the operator's idle connection: probing now", self.pair, redis.region)
                # The probes' own connection to it closed in the same instant: let its end arrive
                # first, so the probe reconnects (and finds a server that answers again, or none)
                # instead of counting the closed connection as a failure.
                await asyncio.sleep(SETTLE_SECONDS)
                self.wake.set()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _held_until_hangup(self, redis: RegionRedis) -> bool:
        """Hold one connection until the server ends it: True then; False when none could be opened
        (the server is down already: its probes fail on their own)."""
        # Outside the client's pool (same address, credentials and TLS), so no command ever shares it.
        pool = redis.client.connection_pool
        conn = pool.connection_class(**pool.connection_kwargs)
        try:
            try:
                await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            except (RedisError, OSError):
                return False
            while True:
                try:
                    # A limit given here returns None when it passes and keeps the connection.
                    await conn.read_response(timeout=IDLE_READ_SECONDS)
                except (RedisError, OSError):
                    return True
                _cancel_if_asked()
        finally:
            await conn.disconnect()


def _cancel_if_asked() -> None:
    """Raise a cancellation that did not arrive as one. Seen under load (1 close() in about 50): the
    watch read again with a cancellation pending, redis-py's read having answered it as its time
    limit (None, or a TimeoutError, an OSError here)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
