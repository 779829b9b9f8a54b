"""Apply a batch of device messages to Redis: one Lua call, so the per-site counts stay exact.

Counting devices by state needs each device's previous state. Workers split the stream through a
shared subscription, so no worker has it in memory: it lives in Redis (`keys.DEVICES_STATE`), and
the read-compare-write happens inside one script per batch (atomic, a few commands per batch
rather than per message). The script is also what makes redelivery harmless: a message no newer
than the device's stored timestamp is counted as stale/duplicate and not applied.
"""

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from tier0_contract import keys
from tier0_services import rediserrors
from tier0_services.ingest.batch import Prepared

_SITE_PREFIX, _SITE_SUFFIX = keys.site_metrics("\0").split("\0")
_TYPE_SUFFIX = keys.site_type_field("\0").split("\0")[1]
_STATE_FIELDS = "{" + ", ".join(f"{s} = '{f}'" for s, f in keys.SITE_STATE_FIELDS.items()) + "}"

SCRIPT_KEYS = (
    keys.DEVICES_LATEST,
    keys.DEVICES_STATE,
    keys.DEVICES_LAST_SEEN,
    keys.DEVICES_ALERTS,
    keys.SITES,
    keys.INGEST_STATS,
    keys.DEVICES_DEAD_LETTER,
)

# KEYS: SCRIPT_KEYS. ARGV: site key prefix, site key suffix, type field suffix, then the batch as one
# string: records (batch.Prepared.records, oldest first) joined by 0x1e; its dead letters joined by
# 0x1e (JSON, which escapes control characters); the counts invalid, too_old, failed, future_clamped;
# the dead-letter list's bound. Returns {stored, stale, duplicate}. Everything the batch writes is
# written here, after every key's type was checked, so a batch that fails wrote nothing (Redis keeps
# a failing script's earlier writes): retrying or salvaging it counts and dead-letters nothing twice.
# Raw string: '\30' and '\31' below are Lua's decimal escapes (0x1e, 0x1f), not Python's octal ones.
LUA = r"""
local latest_key, state_key, seen_key, alerts_key, sites_key, stats_key, dead_key = unpack(KEYS)
local site_prefix, site_suffix, type_suffix, blob, dead_blob = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local invalid, too_old, failed, clamped = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local dead_max = tonumber(ARGV[10])
local FIELD = %(state_fields)s
local find, sub = string.find, string.sub

local ids, sites, types, states, tss, payloads = {}, {}, {}, {}, {}, {}
local n, pos, len = 0, 1, #blob
while pos <= len do
  local stop = find(blob, '\30', pos, true) or (len + 1)
  local a = find(blob, '\31', pos, true)
  local b = find(blob, '\31', a + 1, true)
  local c = find(blob, '\31', b + 1, true)
  local s1 = find(blob, '/', pos, true)
  local s2 = find(blob, '/', s1 + 1, true)
  n = n + 1
  sites[n] = sub(blob, pos, s1 - 1)
  types[n] = sub(blob, s1 + 1, s2 - 1)
  ids[n] = sub(blob, s2 + 1, a - 1)
  states[n] = sub(blob, a + 1, b - 1)
  tss[n] = tonumber(sub(blob, b + 1, c - 1))
  payloads[n] = sub(blob, c + 1, stop - 1)
  pos = stop + 1
end

local want = {[stats_key] = 'hash', [dead_key] = 'list'}
if n > 0 then
  want[latest_key], want[state_key], want[seen_key] = 'hash', 'hash', 'zset'
  want[alerts_key], want[sites_key] = 'zset', 'set'
  for i = 1, n do want[site_prefix .. sites[i] .. site_suffix] = 'hash' end
end
for key, kind in pairs(want) do
  local got = redis.call('TYPE', key)['ok']
  if got ~= 'none' and got ~= kind then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. got .. ', not a ' .. kind)
  end
end

if #dead_blob > 0 then
  local letters, p, dlen = {}, 1, #dead_blob
  while p <= dlen do
    local stop = find(dead_blob, '\30', p, true) or (dlen + 1)
    letters[#letters + 1] = sub(dead_blob, p, stop - 1)
    p = stop + 1
  end
  redis.call('LPUSH', dead_key, unpack(letters))
  redis.call('LTRIM', dead_key, 0, dead_max - 1)
end
if invalid > 0 then redis.call('HINCRBY', stats_key, 'invalid', invalid) end
if too_old > 0 then redis.call('HINCRBY', stats_key, 'too_old', too_old) end
if failed > 0 then redis.call('HINCRBY', stats_key, 'failed', failed) end
if clamped > 0 then redis.call('HINCRBY', stats_key, 'future_clamped', clamped) end
if n < 1 then return {0, 0, 0} end

local old_ts = redis.call('ZMSCORE', seen_key, unpack(ids))
local old_state = redis.call('HMGET', state_key, unpack(ids))

local cur_ts, cur_state, was_alert, changed = {}, {}, {}, {}
local delta, site_seen = {}, {}
local stored, stale, dup = 0, 0, 0

local function bump(site, field, d)
  local t = delta[site]
  if not t then t = {}; delta[site] = t end
  t[field] = (t[field] or 0) + d
end

local order, payload = {}, {}
for i = 1, n do
  local id, site, dtype, st, ts = ids[i], sites[i], types[i], states[i], tss[i]
  local pts, pst = cur_ts[id], cur_state[id]
  if not pts then
    pts = old_ts[i] and tonumber(old_ts[i])
    pst = old_state[i]
  end
  if pts and ts < pts then
    stale = stale + 1
  elseif pts and ts == pts then
    dup = dup + 1
  else
    local nst = site .. '|' .. dtype .. '|' .. st
    if pst ~= nst then
      if pst then
        local osite, otype, ostate = string.match(pst, '^(.*)|(.*)|(.*)$')
        bump(osite, 'device_count', -1)
        bump(osite, otype .. type_suffix, -1)
        bump(osite, FIELD[ostate], -1)
        if ostate == 'ALERT' then was_alert[id] = true end
      end
      bump(site, 'device_count', 1)
      bump(site, dtype .. type_suffix, 1)
      bump(site, FIELD[st], 1)
      changed[id] = true
    end
    if not cur_ts[id] then order[#order + 1] = id end
    cur_ts[id], cur_state[id] = ts, nst
    payload[id] = payloads[i]
    if not site_seen[site] or ts > site_seen[site] then site_seen[site] = ts end
    stored = stored + 1
  end
end

if stored > 0 then
  local h, z, s, za, zr = {}, {}, {}, {}, {}
  for _, id in ipairs(order) do
    h[#h + 1] = id; h[#h + 1] = payload[id]
    z[#z + 1] = cur_ts[id]; z[#z + 1] = id
    if changed[id] then s[#s + 1] = id; s[#s + 1] = cur_state[id] end
    if string.sub(cur_state[id], -6) == '|ALERT' then
      za[#za + 1] = cur_ts[id]; za[#za + 1] = id
    elseif was_alert[id] then
      zr[#zr + 1] = id
    end
  end
  redis.call('HSET', latest_key, unpack(h))
  redis.call('ZADD', seen_key, unpack(z))
  if #s > 0 then redis.call('HSET', state_key, unpack(s)) end
  if #za > 0 then redis.call('ZADD', alerts_key, unpack(za)) end
  if #zr > 0 then redis.call('ZREM', alerts_key, unpack(zr)) end
  for site, fields in pairs(delta) do
    local key = site_prefix .. site .. site_suffix
    for field, d in pairs(fields) do
      if d ~= 0 then redis.call('HINCRBY', key, field, d) end
    end
  end
  for site, ts in pairs(site_seen) do
    local key = site_prefix .. site .. site_suffix
    local prev = tonumber(redis.call('HGET', key, 'last_seen'))
    if not prev or ts > prev then redis.call('HSET', key, 'last_seen', tostring(ts)) end
    redis.call('SADD', sites_key, site)
  end
  redis.call('HINCRBY', stats_key, 'stored', stored)
end
if stale > 0 then redis.call('HINCRBY', stats_key, 'stale', stale) end
if dup > 0 then redis.call('HINCRBY', stats_key, 'duplicate', dup) end
return {stored, stale, dup}
""" % {"state_fields": _STATE_FIELDS}  # noqa: UP031 (Lua braces make str.format awkward)


MAX_BATCH = 2000
"""Messages per script call: Lua's unpack() takes at most ~8000 values (two per message here)."""


@dataclass(frozen=True)
class Applied:
    stored: int
    stale: int
    duplicate: int
    invalid: int
    too_old: int = 0
    future_clamped: int = 0
    replicas: int | None = None
    failed: int = 0
    """Messages dead-lettered because the store refused them for good (non-transient errors)."""
    """Replicas that acknowledged the write (`WAIT`), None when not asked."""


class Store:
    """The ingest worker's writes to one Redis endpoint."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._sha: str | None = None

    async def apply(self, batch: Prepared, *, wait_replicas: int = 0, wait_timeout_ms: int = 0) -> Applied:
        """Write one prepared batch (≤ MAX_BATCH accepted messages) and its dead letters in one
        round trip; with `wait_replicas`, end that round trip with `WAIT wait_replicas
        wait_timeout_ms` (on the same connection, so it covers this write). Raises redis errors
        (ReadOnlyError on a replica, NOREPLICAS, ConnectionError, ...); the caller retries the same
        batch, which the script makes idempotent."""
        if self._sha is None:
            self._sha = await self.redis.script_load(LUA)
        try:
            result, replicas = await self._apply(batch, self._sha, wait_replicas, wait_timeout_ms)
        except NoScriptError:  # a restarted or newly promoted Redis has an empty script cache
            self._sha = await self.redis.script_load(LUA)
            result, replicas = await self._apply(batch, self._sha, wait_replicas, wait_timeout_ms)
        return Applied(
            int(result[0]), int(result[1]), int(result[2]), batch.invalid, batch.too_old, batch.future_clamped, replicas
        )

    async def _apply(
        self, batch: Prepared, sha: str, wait_replicas: int, timeout_ms: int
    ) -> tuple[list[Any], int | None]:
        async with self.redis.pipeline(transaction=False) as pipe:
            args = (
                *SCRIPT_KEYS,
                _SITE_PREFIX,
                _SITE_SUFFIX,
                _TYPE_SUFFIX,
                b"\x1e".join(batch.records),
                b"\x1e".join(batch.dead_letters),
                batch.invalid,
                batch.too_old,
                batch.failed,
                batch.future_clamped,
                keys.DEAD_LETTER_MAX,
            )
            pipe.evalsha(sha, len(SCRIPT_KEYS), *args)  # type: ignore[arg-type]
            if wait_replicas:
                pipe.wait(wait_replicas, timeout_ms)
            results = rediserrors.raise_first(await pipe.execute(raise_on_error=False))
        replicas = int(results[-1]) if wait_replicas else None
        return list(results[0]), replicas

    async def refresh_active_devices(self, now: float, window: float) -> int:
        """Recount devices seen in the last `window` seconds into keys.ACTIVE_DEVICES."""
        count = int(await self.redis.zcount(keys.DEVICES_LAST_SEEN, now - window, "+inf"))
        await self.redis.set(keys.ACTIVE_DEVICES, count)
        return count
