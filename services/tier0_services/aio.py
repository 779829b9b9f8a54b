"""asyncio helpers that stay correct on Python 3.11.

`asyncio.wait_for` on 3.11 swallows a cancellation that arrives while the awaited thing completes
(CPython gh-86296, fixed in 3.12 by rebuilding it on `asyncio.timeout`): a task looping on
`wait_for(event.wait(), interval)` then survives its `cancel()`, and whoever awaits it (an app's
shutdown, a worker's close) waits forever. `asyncio.timeout` counts cancellations and never does.
"""

import asyncio
from typing import Any


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` s for `event`; whether it is set. Cancellation always propagates."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()


async def cancel_and_wait(task: "asyncio.Task[Any]", recancel_every: float = 0.1) -> None:
    """Cancel `task` and return once it has ended, cancelling it again while it runs on. The
    swallowed cancellation is not only ours to avoid: redis-py wraps every socket write in
    `asyncio.wait_for` (`AbstractConnection.send_packed_command`), so a loop cancelled while a
    command is being sent can run on as if nothing happened. An exception the task ended with
    other than the cancellation is raised here."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=recancel_every)
    if not task.cancelled() and (exc := task.exception()) is not None:
        raise exc
