"""Writing a worker's `tier0_contract.pipeline.Heartbeat` with the Redis server's clock.

One script call per heartbeat: it reads `TIME` and writes the JSON into field
`pipeline.heartbeat_field(component, worker)` of `keys.PIPELINE_HEARTBEATS`. The worker passes how
many seconds ago (on its own monotonic clock) it last stored something; the script turns that into
server time, so no worker clock is ever compared with another machine's.
"""

from dataclasses import dataclass
from typing import Any

from tier0_contract import keys, pipeline

LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hb = {component = ARGV[1], worker = ARGV[2], region = ARGV[3], at = now,
            received = tonumber(ARGV[4]), stored = tonumber(ARGV[5]), pending = tonumber(ARGV[6]),
            connected = ARGV[7] == '1'}
if ARGV[8] ~= '' then hb.last_stored_at = now - tonumber(ARGV[8]) end
redis.call('HSET', KEYS[1], ARGV[9], cjson.encode(hb))
return tostring(now)
"""


@dataclass
class Progress:
    """What a worker reports; `last_stored` is `time.monotonic()` of its last stored batch."""

    component: pipeline.Component
    worker: str
    region: str
    received: int = 0
    stored: int = 0
    pending: int = 0
    connected: bool = False
    last_stored: float | None = None

    def args(self, monotonic_now: float) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of LUA (pure)."""
        since = "" if self.last_stored is None else f"{max(0.0, monotonic_now - self.last_stored):.3f}"
        argv: list[Any] = [
            self.component,
            self.worker,
            self.region,
            self.received,
            self.stored,
            self.pending,
            "1" if self.connected else "0",
            since,
            pipeline.heartbeat_field(self.component, self.worker),
        ]
        return [keys.PIPELINE_HEARTBEATS], argv
