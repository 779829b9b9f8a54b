"""asyncio helpers that stay correct on Python 3.11.

`asyncio.wait_for` on 3.11 swallows a cancellation that arrives while the awaited thing completes
(CPython gh-86296, fixed in 3.12 by rebuilding it on `asyncio.timeout`): a task looping on
`wait_for(event.wait(), interval)` then survives its `cancel()`, and whoever awaits it (an app's
shutdown, a worker's close) waits forever. `asyncio.timeout` counts cancellations and never does.
"""

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` s for `event`; whether it is set. Cancellation always propagates."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()
