"""The region API's own access log, recorded into the aggregates without slowing requests down.

`observe()` only appends to an in-memory buffer (no await, no I/O on the request path); a
background task flushes the buffer with one pipelined `aggregates.record` every `interval` seconds
or as soon as `batch` entries wait. If Redis is down the entries stay buffered (bounded: the oldest
are dropped and counted) and go out with the next successful flush.

On a replica (a standby region) the flush is refused READONLY. Each flush then only asks Redis its
role (`INFO replication`) until it is primary, and folds the buffer only then: folding a buffer
that cannot be written, every `interval`, cost a standby API about 15% of a core once its probes
had filled the buffer (tens of thousands of entries), and the promotion is still seen within one
`interval`.

An entry's path is the request's route template (`/api/images/site/{site_id}`, or
`instrument.UNMATCHED_ROUTE` for a path no route serves), never the raw path: a flood of random
8 KB paths adds to one counter instead of one member per path, in the buffer and in Redis.
"""

import asyncio
import logging
from collections import deque
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError, RedisError

from tier0_contract import keys
from tier0_services import aio, rediserrors
from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs.parse import LogEntry

log = logging.getLogger(__name__)


class RequestRecordLike(Protocol):
    """What the region API's request observers receive (`tier0_services.api.instrument.RequestRecord`)."""

    @property
    def started_at(self) -> float: ...
    @property
    def client_ip(self) -> str | None: ...
    @property
    def method(self) -> str: ...
    @property
    def route(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def duration_seconds(self) -> float: ...


class AccessLogRecorder:
    def __init__(
        self,
        redis: Redis,
        interval: float = 0.5,
        batch: int = 500,
        limit: int = 50_000,
        max_days: int = keys.LOGS_MAX_DAYS,
    ) -> None:
        self.redis = redis
        self.max_days = max_days
        self.interval = interval
        self.batch = batch
        self._buffer: deque[LogEntry] = deque(maxlen=limit)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.recorded = 0
        self.dropped = 0
        self._failing = False  # log a failure once when it starts, not on every flush
        self._replica = False
        """The last flush was refused READONLY: check the role before folding again."""

    def __call__(self, record: RequestRecordLike) -> None:
        """The request-observer hook: called once per answered request, cheap and non-blocking."""
        self.observe(
            LogEntry(
                ip=record.client_ip or "-",
                ts=record.started_at,
                method=record.method,
                path=record.route,
                status=record.status,
                latency_ms=record.duration_seconds * 1000.0,
            )
        )

    def observe(self, entry: LogEntry) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(entry)
        if len(self._buffer) >= self.batch:
            self._wake.set()

    async def flush(self) -> int:
        if not self._buffer:
            return 0
        try:
            if self._replica:
                info = await self.redis.info("replication")
                if info.get("role") != "master":
                    return 0
                self._replica = False
            entries = list(self._buffer)
            written = await aggregates.record(self.redis, entries, max_days=self.max_days)
        except ReadOnlyError:
            self._replica = True
            # A replica region serves reads but cannot write: keep the entries (bounded) until
            # the operator promotes this region's Redis.
            if not self._failing:
                log.info("this region's Redis is a replica: access log kept in memory until it is promoted")
            self._failing = True
            return 0
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("access log flush failed, %d entries kept: %s", len(self._buffer), rediserrors.reason(exc))
            self._failing = True
            return 0
        self._failing = False
        for _ in range(min(written, len(self._buffer))):
            self._buffer.popleft()
        self.recorded += written
        return written

    async def _run(self) -> None:
        while True:
            await aio.wait_event(self._wake, self.interval)
            self._wake.clear()
            await self.flush()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="access-log-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            await aio.cancel_and_wait(self._task)
            self._task = None
        await self.flush()
