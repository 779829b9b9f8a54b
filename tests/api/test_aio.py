"""`aio.wait_event`: a loop waiting on an event stops when cancelled, whatever the timing.

`asyncio.wait_for` on Python 3.11 lost the cancellation in three of these five orderings (the
event set, then 0-4 loop iterations, then `cancel()`), and the region API's shutdown waited
forever on its access-log recorder."""

import asyncio

import pytest

from tier0_services import aio

pytestmark = pytest.mark.unit


async def _stops_when_cancelled(yields: int) -> bool:
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await aio.wait_event(event, 10)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    event.set()
    for _ in range(yields):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    return task in done and task.cancelled()


@pytest.mark.parametrize("yields", range(5))
async def test_cancellation_is_never_swallowed(yields: int) -> None:
    assert await _stops_when_cancelled(yields)


async def test_answers_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await aio.wait_event(event, 0.01) is False
    event.set()
    assert await aio.wait_event(event, 0.01) is True


async def test_cancel_and_wait_ends_a_task_that_swallowed_its_cancellation() -> None:
    """As a loop does when redis-py's own `wait_for` (around every socket write) eats the cancel:
    one `cancel()` and an `await` would wait forever."""
    swallowed = 0

    async def loop_that_swallows_once() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1

    task = asyncio.create_task(loop_that_swallows_once())
    await asyncio.sleep(0)
    async with asyncio.timeout(2):
        await aio.cancel_and_wait(task, recancel_every=0.05)
    assert task.cancelled() and swallowed == 1


async def test_cancel_and_wait_raises_what_the_task_ended_with() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await aio.cancel_and_wait(task)
