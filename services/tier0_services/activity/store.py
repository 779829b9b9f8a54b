"""Apply one user-activity message to Redis in one Lua call, exactly once per message id.

RabbitMQ redelivers a message whose consumer died before acknowledging it, so the consumer sees
some messages twice. The script remembers applied message ids for a day (`keys.activity_seen`)
and never lets an older message replace the newest state.
"""

from typing import Any

import orjson
import redis

from tier0_contract import keys, models

# The message id is marked applied last: a script that fails half-way (Redis keeps the writes made
# before the error) leaves it unmarked, so the retry applies it again instead of calling it a duplicate
# and acknowledging a message that was never stored.
LUA = """
local seen, latest, latest_ts, users, history, n_users, n_conns, stats = unpack(KEYS)
local msg, ts, entry, active_users, active_conns, ttl, history_max = unpack(ARGV, 1, 7)
if redis.call('EXISTS', seen) == 1 then
  redis.call('HINCRBY', stats, 'duplicate', 1)
  return 'duplicate'
end
redis.call('LPUSH', history, entry)
redis.call('LTRIM', history, 0, tonumber(history_max) - 1)
local cur = tonumber(redis.call('GET', latest_ts))
if cur and tonumber(ts) < cur then
  redis.call('HINCRBY', stats, 'stale', 1)
  redis.call('SET', seen, '1', 'EX', ttl)
  return 'stale'
end
redis.call('SET', latest, msg)
redis.call('SET', latest_ts, ts)
redis.call('SET', n_users, active_users)
redis.call('SET', n_conns, active_conns)
redis.call('DEL', users)
if #ARGV > 7 then redis.call('HSET', users, unpack(ARGV, 8)) end
redis.call('HINCRBY', stats, 'stored', 1)
redis.call('SET', seen, '1', 'EX', ttl)
return 'stored'
"""


def script_args(msg: models.UserActivityMessage, raw: bytes, ts: float | None = None) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of LUA for one validated message (pure); `ts` (epoch s) orders it, by default
    its own timestamp (the consumer passes the one `timestamps.clamp_or_reject` decided)."""
    script_keys = [
        keys.activity_seen(msg.message_id),
        keys.USERS_ACTIVITY_LATEST,
        keys.USERS_ACTIVITY_LATEST_TS,
        keys.USERS_ACTIVE,
        keys.USERS_ACTIVITY_HISTORY,
        keys.ACTIVE_USERS,
        keys.ACTIVE_CONNECTIONS,
        keys.ACTIVITY_STATS,
    ]
    entry = orjson.dumps(msg.model_dump(mode="json", exclude={"active_users_list"}))
    argv: list[Any] = [
        raw,
        f"{msg.timestamp_utc.timestamp() if ts is None else ts:.3f}",
        entry,
        msg.metrics.active_users,
        msg.metrics.active_connections,
        keys.ACTIVITY_SEEN_TTL_SECONDS,
        keys.ACTIVITY_HISTORY_MAX,
    ]
    for user in msg.active_users_list:
        argv += (user.user_id, user.model_dump_json())
    return script_keys, argv


class ActivityStore:
    """The consumer's writes to one Redis endpoint."""

    def __init__(self, client: "redis.Redis") -> None:
        self.redis = client
        self._script = client.register_script(LUA)

    def apply(
        self,
        msg: models.UserActivityMessage,
        raw: bytes,
        *,
        ts: float | None = None,
        future_clamped: bool = False,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 0,
    ) -> tuple[str, int | None]:
        """(`stored`/`duplicate`/`stale`, replicas that acknowledged or None) in one round trip,
        ending with `WAIT` when `wait_replicas`; raises redis errors (the caller retries)."""
        script_keys, argv = script_args(msg, raw, ts)
        pipe = self.redis.pipeline(transaction=False)
        self._script(keys=script_keys, args=argv, client=pipe)
        if future_clamped:
            pipe.hincrby(keys.ACTIVITY_STATS, "future_clamped", 1)
        if wait_replicas:
            pipe.wait(wait_replicas, wait_timeout_ms)
        results = pipe.execute()
        result = results[0]
        replicas = int(results[-1]) if wait_replicas else None
        return (result.decode() if isinstance(result, bytes) else str(result)), replicas

    def count(self, field: str) -> None:
        """Bump a counter of keys.ACTIVITY_STATS (`invalid`, `too_old`, `failed`)."""
        self.redis.hincrby(keys.ACTIVITY_STATS, field, 1)
