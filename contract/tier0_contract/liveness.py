"""Liveness that sees the loop: what the operator's and the workers' `/livez` answers, and why.

Their metrics and health are served by an HTTP server in a thread of its own, which goes on
answering while the loop that does the work is wedged (a blocking call on it, a deadlock), so a
probe of `/metrics` never restarts a stuck process. Instead the loop itself stamps a `LoopClock`
(`tick_forever`, a task on an asyncio loop; the activity consumer's own loop in its turn), and
`/livez` answers 503 once the last stamp is older than the process's maximum age, saying how long
the loop has been silent. The charts' liveness probes use `/livez`; it lives here because the
operator and the services answer by the same rule.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

PATH = "/livez"
TICK_SECONDS = 1.0
"""How often an asyncio loop stamps its clock (`tick_forever`)."""
WORKER_MAX_AGE_SECONDS = 30.0
"""The workers' default maximum age: the activity consumer's loop stamps between blocking calls, the
longest of which (a broker connection attempt, pika's 15 s stack timeout; a 10 s reconnect pause)
must not count as wedged."""


class LoopClock:
    """The monotonic time of the loop's last stamp. Stamped on the loop, read from the HTTP thread
    (a float attribute is replaced atomically, so no lock is needed)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def tick(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        """Seconds since the last stamp."""
        return max(0.0, self._clock() - self._last)


def verdict(age: float, max_age: float) -> tuple[bool, dict[str, Any]]:
    """(alive, the JSON answer) for a loop last seen `age` seconds ago (pure)."""
    alive = age <= max_age
    body: dict[str, Any] = {
        "status": "alive" if alive else "wedged",
        "loopAgeSeconds": round(age, 3),
        "maxAgeSeconds": max_age,
    }
    if not alive:
        body["reason"] = f"the event loop last ran {age:.1f} s ago (more than {max_age:g} s): it is blocked"
    return alive, body


async def tick_forever(clock: LoopClock, every: float = TICK_SECONDS) -> None:
    """Stamp `clock` from the running loop every `every` seconds, for as long as the loop runs."""
    while True:
        clock.tick()
        await asyncio.sleep(every)
