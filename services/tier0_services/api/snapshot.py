"""Shared, short-lived reads for the hot read endpoints (`/api/status`, `/api/devices/active`).

Profiled with py-spy at 1,000 req/s over 100,000 devices (services/README.md, "Shared reads of the
hot endpoints"), Redis was never the cost (ZCOUNT is O(log n)): each request paid redis-py's
pipeline and reply parsing in Python, about twice a whole `/health` request, so one process served
`/api/status` at 0.31 x `/health`'s rate and queued at 1,000 req/s. The answer is the same for
every caller within a fraction of a second, so one read serves them all: a `Snapshot` keeps the
last read for `max_age` seconds, and the requests that arrive while a read is in flight wait for
that one (single flight) instead of starting their own.

Freshness: an answer is at most `max_age` plus one Redis round trip old, and its `timestamp` field is
when it was read (not when it was served). A failed read is never kept: the next request reads again,
so a Redis outage is answered 503 as before, and its end is seen at once.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Snapshot(Generic[T]):
    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._value: T | None = None
        self._read_at = float("-inf")
        self._reading: asyncio.Future[T] | None = None

    async def get(self, read: Callable[[], Awaitable[T]]) -> T:
        """The kept value while it is younger than `max_age`, else the result of `read()` (one at a
        time: concurrent callers share it). `read`'s exception reaches every caller waiting on it."""
        if self._value is not None and self._clock() - self._read_at < self.max_age:
            return self._value
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read(read))
            # Retrieved even when every caller went away, so a failed read is not logged as lost.
            self._reading.add_done_callback(lambda f: f.cancelled() or f.exception())
        # Shielded: a caller that goes away (client disconnect) does not cancel the others' read.
        return await asyncio.shield(self._reading)

    async def _read(self, read: Callable[[], Awaitable[T]]) -> T:
        started = self._clock()
        try:
            value = await read()
        finally:
            self._reading = None
        # Aged from the start of the read: the data is at least that old.
        self._value, self._read_at = value, started
        return value
