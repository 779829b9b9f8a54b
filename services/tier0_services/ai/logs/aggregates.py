"""Exact access-log aggregates in Redis, written in batches, read by the diagnostics endpoints.

A batch of entries is first folded in process (`fold`, pure) into counters, then written with one
non-transactional pipeline of HINCRBY/ZINCRBY (a few dozen commands for thousands of entries),
so recording the API's own traffic and importing 10,000-line files stay cheap. Every figure the
endpoints answer is a sum of these counters, hence exact; `max` and first/last timestamps use
`ZADD GT/LT`, so concurrent writers cannot lose an extreme.
"""

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.logs.parse import LogEntry

RECENT_ERRORS = 200


@dataclass
class Folded:
    total: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_method: Counter[str] = field(default_factory=Counter)
    by_day: Counter[str] = field(default_factory=Counter)
    ips: Counter[str] = field(default_factory=Counter)
    ips_by_status: dict[int, Counter[str]] = field(default_factory=dict)
    paths_by_status: dict[int, Counter[str]] = field(default_factory=dict)
    latency_histogram: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    error_paths: Counter[str] = field(default_factory=Counter)
    latency_sum: float = 0.0
    latency_count: int = 0
    latency_max: float | None = None
    first_ts: float | None = None
    last_ts: float | None = None
    recent_errors: list[LogEntry] = field(default_factory=list)


def latency_bucket(ms: float) -> str:
    """The histogram field of a latency: the value at 3 significant digits (`g` format)."""
    return f"{ms:.3g}" if ms > 0 else "0"


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


def fold(entries: Iterable[LogEntry]) -> Folded:
    f = Folded()
    for e in entries:
        f.total += 1
        f.by_status[e.status] += 1
        f.by_method[e.method] += 1
        f.by_day[datetime.fromtimestamp(e.ts, UTC).date().isoformat()] += 1
        f.ips[e.ip] += 1
        f.ips_by_status.setdefault(e.status, Counter())[e.ip] += 1
        f.paths_by_status.setdefault(e.status, Counter())[e.path] += 1
        f.paths[e.path] += 1
        if e.status >= 400:
            f.error_paths[e.path] += 1
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


async def record(redis: Redis, entries: Iterable[LogEntry], marker: tuple[str, str, str] | None = None) -> int:
    """Add entries to the aggregates in one pipeline round trip; returns how many. With `marker`
    (key, field, value) the write is one MULTI/EXEC that also sets that hash field: the entries and
    the marker land together or not at all, so a retried import never counts an entry twice."""
    f = fold(entries)
    if f.total == 0:
        return 0
    async with redis.pipeline(transaction=marker is not None) as pipe:
        pipe.incrby(keys.LOGS_TOTAL, f.total)
        for status, n in f.by_status.items():
            pipe.hincrby(keys.LOGS_BY_STATUS, str(status), n)
        for method, n in f.by_method.items():
            pipe.hincrby(keys.LOGS_BY_METHOD, method, n)
        for day, n in f.by_day.items():
            pipe.hincrby(keys.LOGS_BY_DAY, day, n)
        for ip, n in f.ips.items():
            pipe.zincrby(keys.LOGS_IPS, n, ip)
        for status, counter in f.ips_by_status.items():
            for ip, n in counter.items():
                pipe.zincrby(keys.logs_ips_for_status(status), n, ip)
        for status, counter in f.paths_by_status.items():
            for path, n in counter.items():
                pipe.zincrby(keys.logs_paths_for_status(status), n, path)
        for bucket, n in f.latency_histogram.items():
            pipe.hincrby(keys.LOGS_LATENCY_HISTOGRAM, bucket, n)
        for path, n in f.paths.items():
            pipe.zincrby(keys.LOGS_PATHS, n, path)
        for path, n in f.error_paths.items():
            pipe.zincrby(keys.LOGS_ERROR_PATHS, n, path)
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
    return [{name: member.decode(), "count": int(score)} for member, score in pairs]


async def top_ips_for_status(redis: Redis, status: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """(requests answered `status`, top `limit` client IPs with their counts; ties by IP)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hget(keys.LOGS_BY_STATUS, str(status))
        pipe.zrange(keys.logs_ips_for_status(status), 0, -1, withscores=True)
        total, pairs = await pipe.execute()
    ranked = sorted(pairs, key=lambda p: (-p[1], p[0]))[:limit]
    return int(total or 0), _ranked(ranked, "ip")


async def top(redis: Redis, key: str, limit: int, name: str) -> list[dict[str, Any]]:
    pairs = await redis.zrange(key, 0, -1, withscores=True)
    return _ranked(sorted(pairs, key=lambda p: (-p[1], p[0]))[:limit], name)


@dataclass(frozen=True)
class Stats:
    total: int
    by_status: dict[int, int]
    by_method: dict[str, int]
    by_day: dict[str, int]
    unique_ips: int
    latency_sum_ms: float
    latency_count: int
    max_latency_ms: float | None
    first_ts: float | None
    last_ts: float | None

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
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.LOGS_TOTAL)
        pipe.hgetall(keys.LOGS_BY_STATUS)
        pipe.hgetall(keys.LOGS_BY_METHOD)
        pipe.hgetall(keys.LOGS_BY_DAY)
        pipe.zcard(keys.LOGS_IPS)
        pipe.hgetall(keys.LOGS_LATENCY)
        pipe.zrange(keys.LOGS_EXTREMES, 0, -1, withscores=True)
        total, status, method, day, ips, latency, extremes = await pipe.execute()
    ext = {member.decode(): score for member, score in extremes}
    return Stats(
        total=int(total or 0),
        by_status={int(k): v for k, v in sorted(_int_map(status).items())},
        by_method=dict(sorted(_int_map(method).items())),
        by_day=dict(sorted(_int_map(day).items())),
        unique_ips=int(ips),
        latency_sum_ms=float(latency.get(b"sum_ms", 0.0)),
        latency_count=int(latency.get(b"count", 0)),
        max_latency_ms=ext.get("max_latency_ms"),
        first_ts=ext.get("first_ts"),
        last_ts=ext.get("last_ts"),
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
    status_keys = [keys.logs_ips_for_status(c) for c in codes] + [keys.logs_paths_for_status(c) for c in codes]
    await redis.delete(
        keys.LOGS_TOTAL,
        keys.LOGS_BY_STATUS,
        keys.LOGS_BY_METHOD,
        keys.LOGS_BY_DAY,
        keys.LOGS_IPS,
        keys.LOGS_PATHS,
        keys.LOGS_ERROR_PATHS,
        keys.LOGS_LATENCY,
        keys.LOGS_LATENCY_HISTOGRAM,
        keys.LOGS_EXTREMES,
        keys.LOGS_RECENT_ERRORS,
        *status_keys,
    )
