"""`snapshot.Snapshot`: one read serves every caller within `max_age`, concurrent callers share the
read in flight, a failed read is never kept, and a caller that goes away does not cancel the read
the others wait for."""

import asyncio

import pytest

from tier0_services.api import snapshot

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reader:
    """Counts reads; each returns its own number, optionally after `gate` opens or by failing."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(self) -> int:
        self.reads += 1
        n = self.reads
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return n


async def test_kept_for_max_age_then_read_again() -> None:
    clock, read = Clock(), Reader()
    snap = snapshot.Snapshot[int](0.25, clock)
    assert await snap.get(read) == 1
    clock.now += 0.24
    assert await snap.get(read) == 1
    clock.now += 0.01  # 0.25 s after the read started: too old
    assert await snap.get(read) == 2
    assert read.reads == 2


async def test_max_age_zero_reads_every_time() -> None:
    read = Reader()
    snap = snapshot.Snapshot[int](0, Clock())
    assert [await snap.get(read) for _ in range(3)] == [1, 2, 3]


async def test_concurrent_callers_share_one_read() -> None:
    read = Reader()
    read.gate = asyncio.Event()
    snap = snapshot.Snapshot[int](0.25, Clock())
    waiting = [asyncio.create_task(snap.get(read)) for _ in range(50)]
    await asyncio.sleep(0)
    read.gate.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    assert read.reads == 1


async def test_a_failed_read_reaches_its_callers_and_is_not_kept() -> None:
    read = Reader()
    read.gate, read.fail = asyncio.Event(), ConnectionError("redis down")
    snap = snapshot.Snapshot[int](10, Clock())
    waiting = [asyncio.create_task(snap.get(read)) for _ in range(3)]
    await asyncio.sleep(0)
    read.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results) and read.reads == 1
    read.fail = None
    assert await snap.get(read) == 2  # read again at once, though max_age is 10 s


async def test_a_cancelled_caller_does_not_cancel_the_shared_read() -> None:
    read = Reader()
    read.gate = asyncio.Event()
    snap = snapshot.Snapshot[int](0.25, Clock())
    leaving, staying = asyncio.create_task(snap.get(read)), asyncio.create_task(snap.get(read))
    await asyncio.sleep(0)
    leaving.cancel()
    read.gate.set()
    assert await staying == 1
    with pytest.raises(asyncio.CancelledError):
        await leaving
