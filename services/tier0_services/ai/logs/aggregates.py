"""Exact access-log aggregates in Redis, written in batches, read by the diagnostics endpoints.

A batch of entries is first folded in process (`fold`, pure) into counters, then written with one
non-transactional pipeline of HINCRBY/ZINCRBY (a few dozen commands for thousands of entries),
so recording the API's own traffic and importing 10,000-line files stay cheap. Every figure the
endpoints answer is a sum of these counters, hence exact; `max` and first/last timestamps use
`ZADD GT/LT`, so concurrent writers cannot lose an extreme.

Bounded both ways, whatever the traffic: a member (path, IP) is cut to `keys.LOGS_MEMBER_MAX_CHARS`,
a method outside HTTP's is `OTHER`, and each sorted set keeps its `keys.LOGS_MAX_MEMBERS` most
frequent members (the rarest are trimmed after each batch), so the figures stay exact until a set
holds that many distinct members; the day counts keep the newest `keys.LOGS_MAX_DAYS` days and sum
older ones under `keys.LOGS_BY_DAY_EARLIER` (`BY_DAY_LUA`, in the same round trip). Reads fetch
at most twice the rows asked for (`top`: Redis ranks, ties by name as before), never a whole set;
"by class" and "errors" questions read sets kept for them at write time instead of merging
per-status sets in the event loop.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.logs.parse import LogEntry

RECENT_ERRORS = 200
BY_DAY_LUA = """
local key, keep, earlier = KEYS[1], tonumber(ARGV[1]), ARGV[2]
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
end
local over = redis.call('HLEN', key) - redis.call('HEXISTS', key, earlier) - keep
if over <= 0 then
  return 0
end
local days = {}
for _, name in ipairs(redis.call('HKEYS', key)) do
  if name ~= earlier then
    days[#days + 1] = name
  end
end
table.sort(days)
local moved = 0
for i = 1, over do
  moved = moved + tonumber(redis.call('HGET', key, days[i]))
  redis.call('HDEL', key, days[i])
end
redis.call('HINCRBY', key, earlier, moved)
return over
"""
"""Add a batch's day counts to `keys.LOGS_BY_DAY` (KEYS[1]; ARGV: days kept, the `earlier` field,
then day/count pairs) and, past the bound, move the oldest days' counts into `earlier`: the newest
days stay exact (`YYYY-MM-DD` sorts by date), and the sort runs only when a new day is added to a
full hash. Sent with EVAL inside the batch's pipeline: a registered script would cost a SCRIPT
EXISTS round trip on every batch."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "-"})
"""Methods counted as themselves (`-`: a log line whose request had none); others are `OTHER`."""


def member(text: str) -> str:
    """A path or IP as a sorted-set member: at most `keys.LOGS_MEMBER_MAX_CHARS` characters (an 8 KB
    path is one bounded member, and a question about it finds the same one)."""
    limit = keys.LOGS_MEMBER_MAX_CHARS
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def method_of(method: str) -> str:
    return method if method in METHODS else "OTHER"


@dataclass
class Folded:
    total: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_method: Counter[str] = field(default_factory=Counter)
    by_day: Counter[str] = field(default_factory=Counter)
    ips: Counter[str] = field(default_factory=Counter)
    ips_by_status: dict[int, Counter[str]] = field(default_factory=dict)
    paths_by_status: dict[int, Counter[str]] = field(default_factory=dict)
    ips_by_class: dict[int, Counter[str]] = field(default_factory=dict)
    paths_by_class: dict[int, Counter[str]] = field(default_factory=dict)
    error_ips: Counter[str] = field(default_factory=Counter)
    latency_histogram: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    error_paths: Counter[str] = field(default_factory=Counter)
    latency_sum: float = 0.0
    latency_count: int = 0
    latency_max: float | None = None
    first_ts: float | None = None
    last_ts: float | None = None
    recent_errors: list[LogEntry] = field(default_factory=list)


LATENCY_RANGE_MS = (1e-3, 1e7)
"""Latencies are bucketed within 1 us .. 2.8 h (beyond: the bound), so the histogram holds at
most 900 fields per decade, 9,000 in all, whatever an imported log claims."""


def latency_bucket(ms: float) -> str:
    """The histogram field of a latency: the value at 3 significant digits (`g` format)."""
    if ms <= 0:
        return "0"
    low, high = LATENCY_RANGE_MS
    return f"{min(max(ms, low), high):.3g}"


def percentile(histogram: dict[float, int], q: float) -> float | None:
    """Nearest-rank percentile `q` (0-100] over a bucket -> count histogram: the smallest bucket
    with at least ceil(q/100 * N) entries at or below it."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q / 100.0 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def bounded(entry: LogEntry) -> LogEntry:
    """The entry as the aggregates keep it: members cut (`member`), the method bounded (`method_of`)."""
    ip, path, method = member(entry.ip), member(entry.path), method_of(entry.method)
    if (ip, path, method) == (entry.ip, entry.path, entry.method):
        return entry
    return replace(entry, ip=ip, path=path, method=method)


def fold(entries: Iterable[LogEntry]) -> Folded:
    f = Folded()
    for raw in entries:
        e = bounded(raw)
        f.total += 1
        f.by_status[e.status] += 1
        f.by_method[e.method] += 1
        f.by_day[datetime.fromtimestamp(e.ts, UTC).date().isoformat()] += 1
        f.ips[e.ip] += 1
        f.ips_by_status.setdefault(e.status, Counter())[e.ip] += 1
        f.paths_by_status.setdefault(e.status, Counter())[e.path] += 1
        f.ips_by_class.setdefault(e.status // 100, Counter())[e.ip] += 1
        f.paths_by_class.setdefault(e.status // 100, Counter())[e.path] += 1
        f.paths[e.path] += 1
        if e.status >= 400:
            f.error_paths[e.path] += 1
            f.error_ips[e.ip] += 1
            f.recent_errors.append(e)
        if e.latency_ms is not None:
            f.latency_sum += e.latency_ms
            f.latency_count += 1
            f.latency_histogram[latency_bucket(e.latency_ms)] += 1
            f.latency_max = e.latency_ms if f.latency_max is None else max(f.latency_max, e.latency_ms)
        f.first_ts = e.ts if f.first_ts is None else min(f.first_ts, e.ts)
        f.last_ts = e.ts if f.last_ts is None else max(f.last_ts, e.ts)
    f.recent_errors = sorted(f.recent_errors, key=lambda x: x.ts)[-RECENT_ERRORS:]
    return f


def sorted_sets(f: Folded) -> dict[str, Counter[str]]:
    """Every sorted set a folded batch adds to (key -> member -> count)."""
    out: dict[str, Counter[str]] = {
        keys.LOGS_IPS: f.ips,
        keys.LOGS_PATHS: f.paths,
        keys.LOGS_ERROR_PATHS: f.error_paths,
        keys.LOGS_ERROR_IPS: f.error_ips,
    }
    for status, counter in f.ips_by_status.items():
        out[keys.logs_ips_for_status(status)] = counter
    for status, counter in f.paths_by_status.items():
        out[keys.logs_paths_for_status(status)] = counter
    for status_class, counter in f.ips_by_class.items():
        out[keys.logs_ips_for_class(status_class)] = counter
    for status_class, counter in f.paths_by_class.items():
        out[keys.logs_paths_for_class(status_class)] = counter
    return {key: counter for key, counter in out.items() if counter}


async def record(
    redis: Redis,
    entries: Iterable[LogEntry],
    marker: tuple[str, str, str] | None = None,
    max_days: int = keys.LOGS_MAX_DAYS,
) -> int:
    """Add entries to the aggregates in one pipeline round trip; returns how many. With `marker`
    (key, field, value) the write is one MULTI/EXEC that also sets that hash field: the entries and
    the marker land together or not at all, so a retried import never counts an entry twice. The
    day counts keep the newest `max_days` days (`BY_DAY_LUA`)."""
    f = fold(entries)
    if f.total == 0:
        return 0
    async with redis.pipeline(transaction=marker is not None) as pipe:
        pipe.incrby(keys.LOGS_TOTAL, f.total)
        for status, n in f.by_status.items():
            pipe.hincrby(keys.LOGS_BY_STATUS, str(status), n)
        for method, n in f.by_method.items():
            pipe.hincrby(keys.LOGS_BY_METHOD, method, n)
        day_counts = [x for day, n in f.by_day.items() for x in (day, str(n))]
        pipe.eval(BY_DAY_LUA, 1, keys.LOGS_BY_DAY, str(max_days), keys.LOGS_BY_DAY_EARLIER, *day_counts)
        for key, counter in sorted_sets(f).items():
            for name, n in counter.items():
                pipe.zincrby(key, n, name)
            # The rarest members beyond the cap go: each set stays at most LOGS_MAX_MEMBERS long.
            pipe.zremrangebyrank(key, 0, -(keys.LOGS_MAX_MEMBERS + 1))
        for bucket, n in f.latency_histogram.items():
            pipe.hincrby(keys.LOGS_LATENCY_HISTOGRAM, bucket, n)
        if f.latency_count:
            pipe.hincrbyfloat(keys.LOGS_LATENCY, "sum_ms", f.latency_sum)
            pipe.hincrby(keys.LOGS_LATENCY, "count", f.latency_count)
        if f.latency_max is not None:
            pipe.zadd(keys.LOGS_EXTREMES, {"max_latency_ms": f.latency_max}, gt=True)
        if f.first_ts is not None and f.last_ts is not None:
            pipe.zadd(keys.LOGS_EXTREMES, {"first_ts": f.first_ts}, lt=True)
            pipe.zadd(keys.LOGS_EXTREMES, {"last_ts": f.last_ts}, gt=True)
        if f.recent_errors:
            pipe.lpush(keys.LOGS_RECENT_ERRORS, *(json.dumps(e.to_json()) for e in f.recent_errors))
            pipe.ltrim(keys.LOGS_RECENT_ERRORS, 0, RECENT_ERRORS - 1)
        if marker is not None:
            pipe.hset(marker[0], marker[1], marker[2])
        await pipe.execute()
    return f.total


def _ranked(pairs: list[tuple[bytes, float]], name: str) -> list[dict[str, Any]]:
    return [{name: m.decode(), "count": int(score)} for m, score in pairs]


def ranked_top(
    highest: list[tuple[bytes, float]], ties: list[tuple[bytes, float]], limit: int
) -> list[tuple[bytes, float]]:
    """The top `limit` by count, ties by name, from Redis's `limit` highest (`ZRANGE REV`, whose
    ties at the edge come in reverse name order) and, when those fill the limit, the members that
    share the lowest count among them in name order (`ZRANGE BYSCORE` at that count)."""
    if len(highest) < limit:
        return sorted(highest, key=lambda p: (-p[1], p[0]))
    edge = highest[-1][1]
    above = [p for p in highest if p[1] > edge]
    return sorted(above, key=lambda p: (-p[1], p[0])) + ties[: limit - len(above)]


async def top(redis: Redis, key: str, limit: int, name: str) -> list[dict[str, Any]]:
    """The `limit` most frequent members of a sorted set, ties by name: at most 2 x `limit` rows
    read, ranked by Redis (two round trips when the set is longer than `limit`)."""
    highest = await redis.zrange(key, 0, limit - 1, desc=True, withscores=True)
    ties: list[tuple[bytes, float]] = []
    if len(highest) == limit:
        edge = highest[-1][1]
        ties = await redis.zrange(key, edge, edge, byscore=True, offset=0, num=limit, withscores=True)
    return _ranked(ranked_top(highest, ties, limit), name)


async def bottom(redis: Redis, key: str, limit: int, name: str) -> list[dict[str, Any]]:
    """The `limit` least frequent members of a sorted set, ties by name: Redis orders equal scores by
    member, so one bounded `ZRANGE` is exact."""
    return _ranked(await redis.zrange(key, 0, limit - 1, withscores=True), name)


def status_set(kind: str, codes: list[int], status_class: int | None) -> str:
    """The sorted set of client IPs (`kind` "ips") or paths ("paths") counting exactly `codes`: one
    code, one class, or every error; kept at write time so a question over several codes is one
    bounded read, not a merge of whole sets in the event loop. No codes: the set of every request."""
    if not codes:
        return keys.LOGS_IPS if kind == "ips" else keys.LOGS_PATHS
    if len(codes) == 1:
        return keys.logs_ips_for_status(codes[0]) if kind == "ips" else keys.logs_paths_for_status(codes[0])
    if status_class is not None:
        return keys.logs_ips_for_class(status_class) if kind == "ips" else keys.logs_paths_for_class(status_class)
    return keys.LOGS_ERROR_IPS if kind == "ips" else keys.LOGS_ERROR_PATHS


async def top_ips_for_status(redis: Redis, status: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(requests answered `status`, top `limit` client IPs with their counts; ties by IP)."""
    total = await redis.hget(keys.LOGS_BY_STATUS, str(status))  # type: ignore[misc]
    return int(total or 0), await top(redis, keys.logs_ips_for_status(status), limit, "ip")


EXTREMES = ("max_latency_ms", "first_ts", "last_ts")


@dataclass(frozen=True)
class Stats:
    total: int
    by_status: dict[int, int]
    by_method: dict[str, int]
    by_day: dict[str, int]
    """Requests per day, the newest `max_days` days the aggregates keep."""
    unique_ips: int
    latency_sum_ms: float
    latency_count: int
    max_latency_ms: float | None
    first_ts: float | None
    last_ts: float | None
    earlier: int = 0
    """Requests on days older than `by_day` holds (summed there once the day bound was reached)."""

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 400)

    def by_class(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for status, n in self.by_status.items():
            out[f"{status // 100}xx"] += n
        return dict(sorted(out.items()))


def _int_map(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


async def stats(redis: Redis) -> Stats:
    # Whole-hash reads, fine: status codes are 100-599, methods a fixed set, days `keys.LOGS_MAX_DAYS`.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.LOGS_TOTAL)
        pipe.hgetall(keys.LOGS_BY_STATUS)
        pipe.hgetall(keys.LOGS_BY_METHOD)
        pipe.hgetall(keys.LOGS_BY_DAY)
        pipe.zcard(keys.LOGS_IPS)
        pipe.hgetall(keys.LOGS_LATENCY)
        pipe.zmscore(keys.LOGS_EXTREMES, list(EXTREMES))
        total, status, method, day, ips, latency, extremes = await pipe.execute()
    ext = dict(zip(EXTREMES, extremes, strict=True))
    days = _int_map(day)
    earlier = days.pop(keys.LOGS_BY_DAY_EARLIER, 0)
    return Stats(
        total=int(total or 0),
        by_status={int(k): v for k, v in sorted(_int_map(status).items())},
        by_method=dict(sorted(_int_map(method).items())),
        by_day=dict(sorted(days.items())),
        unique_ips=int(ips),
        latency_sum_ms=float(latency.get(b"sum_ms", 0.0)),
        latency_count=int(latency.get(b"count", 0)),
        max_latency_ms=ext.get("max_latency_ms"),
        first_ts=ext.get("first_ts"),
        last_ts=ext.get("last_ts"),
        earlier=earlier,
    )


async def latency_histogram(redis: Redis) -> dict[float, int]:
    raw = await redis.hgetall(keys.LOGS_LATENCY_HISTOGRAM)  # type: ignore[misc]
    return {float(k): int(v) for k, v in raw.items()}


async def recent_errors(redis: Redis, limit: int) -> list[dict[str, Any]]:
    raw = await redis.lrange(keys.LOGS_RECENT_ERRORS, 0, limit - 1)  # type: ignore[misc]
    return [json.loads(item) for item in raw]


async def clear(redis: Redis) -> None:
    """Drop every aggregate (tests and `logs import --replace`)."""
    codes = [int(s) for s in await redis.hkeys(keys.LOGS_BY_STATUS)]  # type: ignore[misc]
    classes = sorted({c // 100 for c in codes})
    status_keys = [keys.logs_ips_for_status(c) for c in codes] + [keys.logs_paths_for_status(c) for c in codes]
    status_keys += [keys.logs_ips_for_class(c) for c in classes] + [keys.logs_paths_for_class(c) for c in classes]
    await redis.delete(
        keys.LOGS_TOTAL,
        keys.LOGS_BY_STATUS,
        keys.LOGS_BY_METHOD,
        keys.LOGS_BY_DAY,
        keys.LOGS_IPS,
        keys.LOGS_PATHS,
        keys.LOGS_ERROR_PATHS,
        keys.LOGS_ERROR_IPS,
        keys.LOGS_LATENCY,
        keys.LOGS_LATENCY_HISTOGRAM,
        keys.LOGS_EXTREMES,
        keys.LOGS_RECENT_ERRORS,
        *status_keys,
    )
