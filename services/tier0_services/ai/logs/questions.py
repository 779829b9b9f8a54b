"""Questions about the access logs, answered from the exact aggregates (`aggregates`): the read
each `LogQuery` kind needs, its figures (`data`), a sentence that states them, and the Redis
commands that computed them.

A restriction the aggregates cannot honour (a year or a day the logs do not cover, a site, a
relative time window, latency per status, a method combined with a status) is an abstention that
says what the logs hold and how they are aggregated, never a figure for something else.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.answers import Evidence, Mode, QueryResult
from tier0_services.ai.logs import aggregates
from tier0_services.ai.rag import intents, slots
from tier0_services.ai.rag.intents import LogQuery

AGGREGATED_BY = ["status", "client ip", "path", "method", "day", "latency"]
VOCABULARY = frozenset(
    """http https api apis ip ips url urls uri get post put patch delete head options json rest id ids utc gmt
    ok created accepted no content not modified bad request unauthorized forbidden found too many requests
    internal server error service unavailable gateway timeout""".split()
)
"""Proper names and acronyms the access logs can honour: what a request is, its status's reason
phrase ("Bad Request"), UTC. Another name ("BP", "CEO") is something the logs know nothing of."""
RECENT_IN_TEXT = 5


@dataclass(frozen=True)
class LogAnswer:
    text: str
    data: dict[str, Any]
    query: str | None
    abstained: bool = False
    covers: dict[str, Any] = field(default_factory=dict)


def pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def sig(value: float | None, digits: int = 3) -> float | None:
    """Round to `digits` significant digits: 971.712115999992 -> 972.0, 0.51234 -> 0.512."""
    if value is None or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:g}"


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def covers(s: aggregates.Stats) -> dict[str, Any]:
    days = list(s.by_day)
    out = {
        "entries": s.total,
        "first_seen": iso(s.first_ts),
        "last_seen": iso(s.last_ts),
        "days": [days[0], days[-1]] if days else [],
        "aggregated_by": AGGREGATED_BY,
    }
    if s.earlier:
        out["earlier_days_entries"] = s.earlier
    return out


def summed_away(s: aggregates.Stats, when: str) -> bool:
    """Could requests of `when` (`YYYY`, `YYYY-MM` or a day; `0000-` without a year) be among those
    the day counts summed under `earlier` (older than the `keys.LOGS_MAX_DAYS` days kept)? Then the
    day counts cannot answer for it. A kept day's count is exact: a day is summed only once every
    kept day is newer."""
    if not s.earlier or not s.by_day:
        return False
    first = iso(s.first_ts)
    oldest = next(iter(s.by_day))
    if when.startswith("0000"):
        if first is None:
            return True
        return any(summed_away(s, f"{year}{when[4:]}") for year in range(int(first[:4]), int(oldest[:4]) + 1))
    if first is not None and when < first[: len(when)]:
        return False  # before the first request: nothing there
    return when < oldest if len(when) == len(oldest) else when <= oldest[: len(when)]


def summed_note(s: aggregates.Stats) -> str:
    days = list(s.by_day)
    return (
        f"the day counts keep the newest {len(days)} days (from {days[0]}); the {s.earlier} requests "
        "of earlier days are counted in the totals only"
    )


def resolve_days(q: LogQuery, s: aggregates.Stats) -> tuple[str, ...]:
    """Days named without a year (`0000-06-03`) take the year of the logs' day with that date."""
    out = []
    for day in q.days:
        if day.startswith("0000-"):
            match = [d for d in s.by_day if d[4:] == day[4:]]
            out.append(match[0] if match else day)
        else:
            out.append(day)
    return tuple(out)


def gap(q: LogQuery, s: aggregates.Stats) -> str | None:
    """Why the aggregates cannot answer what the question restricts to, or None (pure)."""
    days = list(s.by_day)
    first = (iso(s.first_ts) or "")[:10] if s.earlier else (days[0] if days else "")
    span = f"{first or 'earlier days'} to {days[-1]}" if days else "no days"
    held = f"The logs I hold cover {span} ({s.total} requests)"
    by = "aggregated by status, client IP, path, method and day"
    for year in q.years:
        summed = summed_away(s, str(year))
        if summed and not (q.days or q.months):  # else the day or month named decides
            return f"{held}; {summed_note(s)}, so I cannot answer for {year}."
        in_year = [d for d in days if d.startswith(str(year))]
        if not in_year and not summed:
            return f"{held}: nothing in {year}, so I cannot answer for {year}."
        if len(in_year) != len(days) and not q.days:
            return f"{held}; they are aggregated by day only in total, so I cannot break {year} out."
    for day in resolve_days(q, s):
        if day not in s.by_day:
            shown = day[5:] if day.startswith("0000-") else day
            if summed_away(s, day):
                return f"{held}; {summed_note(s)}, so I cannot answer for {shown}."
            return f"{held}: nothing on {shown}, so I cannot answer for that day."
    if q.future:
        return f"{held}: the logs record what happened, not what will."
    for month in q.months:
        if summed_away(s, month) and not q.days:
            shown = month[5:7] if month.startswith("0000") else month
            return f"{held}; {summed_note(s)}, so I cannot answer for {shown}."
        in_month = [d for d in days if d[5:7] == month[5:7] and (month.startswith("0000") or d[:4] == month[:4])]
        shown = month[5:7] if month.startswith("0000") else month
        if not in_month:
            return f"{held}: nothing in {shown}, so I cannot answer for that month."
        if len(in_month) != len(days):
            return f"{held}; {by}, so I cannot break {shown} out of the other days."
    if q.window:
        return f"{held}, {by}: I cannot answer for a relative window ({q.window})."
    if q.sites:
        return (
            f"{held}, {by}: not by site ({', '.join(q.sites)}). Ask about a path such as "
            f"/api/devices/metrics/site/{q.sites[0]}."
        )
    if q.kind == "latency" and (q.status is not None or q.status_class is not None or q.ip or q.path or q.method):
        return (
            f"{held}; latency is aggregated over all requests only (mean, maximum, percentiles), "
            "not per status, IP, path or method."
        )
    filtered = q.status is not None or q.status_class is not None or q.errors_only
    if q.method and (filtered or q.ip or q.path or q.days):
        return f"{held}, {by}: methods are counted over all requests only, not per status, IP, path or day."
    if q.days and (filtered or q.ip or q.path) and q.kind != "days":
        return f"{held}, {by}: days are counted over all requests only, not per status, IP or path."
    if q.ip and q.path:
        return f"{held}, {by}: not by client IP and path together."
    return None


def statuses(q: LogQuery, by_status: dict[int, int]) -> list[int]:
    if q.status is not None:
        return [q.status]
    if q.status_class is not None:
        return sorted(c for c in by_status if c // 100 == q.status_class)
    if q.errors_only:
        return sorted(c for c in by_status if c >= 400)
    return []


def label(q: LogQuery) -> str:
    if q.status is not None:
        return f"HTTP {q.status}"
    if q.status_class is not None:
        return f"HTTP {q.status_class}xx"
    return "with an error (4xx/5xx)" if q.errors_only else "any status"


def ranked(counts: dict[Any, int], least: bool, limit: int) -> list[tuple[Any, int]]:
    order = sorted(counts.items(), key=lambda kv: ((kv[1] if least else -kv[1]), str(kv[0])))
    return order[:limit]


async def answer(redis: Redis, q: LogQuery) -> LogAnswer:
    s = await aggregates.stats(redis)
    held = covers(s)
    if s.total == 0:
        return LogAnswer(
            "No access-log entries have been recorded or imported yet, so I cannot answer from the logs.",
            {"total_entries": 0},
            f"GET {keys.LOGS_TOTAL}",
            abstained=True,
            covers=held,
        )
    why = gap(q, s)
    if why is not None:
        return LogAnswer(why, {"covers": held}, None, abstained=True, covers=held)
    codes = statuses(q, s.by_status)
    kind = q.kind
    if kind == "count" and q.errors_only and q.direction and not q.ip and not q.path:
        kind = "status_breakdown"  # "the most frequent error" asks which code, not how many
    handler = _HANDLERS[kind]
    text, data, query = await handler(redis, q, s, codes)
    return LogAnswer(text, data, query, covers=held)


async def _count(redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]) -> tuple[str, dict[str, Any], str]:
    lab = label(q)
    if q.ip is not None or q.path is not None:
        member, name = (q.ip, "ip") if q.ip is not None else (q.path or "", "path")
        if codes:
            zkeys = [keys.logs_ips_for_status(c) if name == "ip" else keys.logs_paths_for_status(c) for c in codes]
        else:
            zkeys = [keys.LOGS_IPS if name == "ip" else keys.LOGS_PATHS]
        async with redis.pipeline(transaction=False) as pipe:
            for key in zkeys:
                pipe.zscore(key, member)
            scores = await pipe.execute()
        count = int(sum(x or 0 for x in scores))
        side = f"from {member}" if name == "ip" else f"to {member}"
        what = f" answered {lab}" if codes else ""
        return (
            f"{count} logged requests {side}{what}.",
            {name: member, "status_codes": codes, "count": count},
            "; ".join(f"ZSCORE {k} {member}" for k in zkeys),
        )
    if q.method:
        count = s.by_method.get(q.method, 0)
        return (
            f"{count} of the {s.total} logged requests used {q.method} ({pct(count, s.total)}%).",
            {"method": q.method, "count": count, "total": s.total},
            f"HGET {keys.LOGS_BY_METHOD} {q.method}",
        )
    days = resolve_days(q, s)
    if days:
        counts = {d: s.by_day.get(d, 0) for d in days}
        listed = ", ".join(f"{n} on {d}" for d, n in counts.items())
        return (
            f"The logs hold {listed}.",
            {"days": counts, "count": sum(counts.values()), "total": s.total},
            f"HMGET {keys.LOGS_BY_DAY} {' '.join(days)}",
        )
    if not codes:
        return (
            f"The logs hold {s.total} requests.",
            {"status_codes": [], "count": s.total, "total": s.total},
            f"GET {keys.LOGS_TOTAL}",
        )
    count = sum(s.by_status.get(c, 0) for c in codes)
    return (
        f"{count} of the {s.total} logged requests were answered {lab} ({pct(count, s.total)}%).",
        {"status_codes": codes, "count": count, "total": s.total},
        f"HMGET {keys.LOGS_BY_STATUS} {' '.join(map(str, codes))}",
    )


async def _error_rate(
    redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]
) -> tuple[str, dict[str, Any], str]:
    if q.ip is not None or q.path is not None:
        member, name = (q.ip, "ip") if q.ip is not None else (q.path or "", "path")
        errors = [c for c in s.by_status if c >= 400] if not codes else codes
        side_key = keys.LOGS_IPS if name == "ip" else keys.LOGS_PATHS
        per = keys.logs_ips_for_status if name == "ip" else keys.logs_paths_for_status
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zscore(side_key, member)
            for c in errors:
                pipe.zscore(per(c), member)
            total, *scores = await pipe.execute()
        whole, part = int(total or 0), int(sum(x or 0 for x in scores))
        what = label(q) if codes else "with an error (4xx/5xx)"
        return (
            f"{part} of the {whole} logged requests {'from' if name == 'ip' else 'to'} {member} were answered "
            f"{what}: {pct(part, whole)}%.",
            {
                name: member,
                "count": part,
                "total": whole,
                "rate_pct": pct(part, whole),
                "error_rate_pct": pct(part, whole),
            },
            f"ZSCORE {side_key} {member}; ZSCORE <per-status sets> {member}",
        )
    if codes and (q.status is not None or q.status_class is not None):
        part = sum(s.by_status.get(c, 0) for c in codes)
        return (
            f"{part} of the {s.total} logged requests were answered {label(q)}: {pct(part, s.total)}%.",
            {"status_codes": codes, "count": part, "total": s.total, "rate_pct": pct(part, s.total)},
            f"HGETALL {keys.LOGS_BY_STATUS}: sum(status in {codes}) / sum(all)",
        )
    return (
        f"{s.errors} of {s.total} logged requests were answered 4xx or 5xx: an error rate of "
        f"{pct(s.errors, s.total)}%.",
        {"total": s.total, "errors": s.errors, "error_rate_pct": pct(s.errors, s.total)},
        f"HGETALL {keys.LOGS_BY_STATUS}: sum(status >= 400) / sum(all)",
    )


async def _status_breakdown(
    redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]
) -> tuple[str, dict[str, Any], str]:
    del redis
    pool = {c: n for c, n in s.by_status.items() if not codes or c in codes}
    least = q.direction == "least"
    order = ranked(pool, least, len(pool))
    what = "error status code" if q.errors_only else "status code"
    if not order:
        return (f"No request in the logs was answered {label(q)}.", {"by_status": {}}, f"HGETALL {keys.LOGS_BY_STATUS}")
    top_code, top_n = order[0]
    ties = [c for c, n in order if n == top_n]
    which = "least" if least else "most"
    lead = (
        f"The {which} common {what}s are {' and '.join(map(str, ties))} ({top_n} requests each)"
        if len(ties) > 1
        else f"The {which} common {what} is {top_code} ({top_n} of the {s.total} requests, {pct(top_n, s.total)}%)"
    )
    shown = order[: max(q.limit, 5)]
    listed = ", ".join(f"{c}: {n}" for c, n in shown)
    text = f"{lead}. By status: {listed}; by class: " + ", ".join(f"{k} {v}" for k, v in s.by_class().items()) + "."
    data = {
        "status_code": top_code,
        "count": top_n,
        "total": s.total,
        "order": "ascending" if least else "descending",
        "by_status": [{"status_code": c, "count": n} for c, n in order],
        "by_class": s.by_class(),
    }
    return text, data, f"HGETALL {keys.LOGS_BY_STATUS}"


async def _top_ips(redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]) -> tuple[str, dict[str, Any], str]:
    least = q.direction == "least"
    key = aggregates.status_set("ips", codes, q.status_class)
    read = aggregates.bottom if least else aggregates.top
    query = f"ZRANGE {key} 0 {q.limit - 1}{'' if least else ' REV'} WITHSCORES"
    rows = await read(redis, key, q.limit, "ip")
    matching = sum(s.by_status.get(c, 0) for c in codes) if codes else s.total
    lab = label(q)
    what = f"requests answered {lab}" if codes else "requests"
    if not rows:
        return f"No request in the logs was answered {lab}.", {"status_codes": codes, "total": 0, "top_ips": []}, query
    listed = ", ".join(f"{r['ip']} ({r['count']} requests)" for r in rows)
    which = "least" if least else "most"
    text = (
        f"The client IP with the {which} {what} is {rows[0]['ip']} with {rows[0]['count']} of the {matching} "
        f"{what}. {'Bottom' if least else 'Top'} {len(rows)}: {listed}."
    )
    return text, {"status_codes": codes, "total": matching, "top_ips": rows, "ip": rows[0]["ip"]}, query


async def _top_paths(
    redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]
) -> tuple[str, dict[str, Any], str]:
    del s
    least = q.direction == "least"
    key = aggregates.status_set("paths", codes, q.status_class)
    read = aggregates.bottom if least else aggregates.top
    query = f"ZRANGE {key} 0 {q.limit - 1}{'' if least else ' REV'} WITHSCORES"
    rows = await read(redis, key, q.limit, "path")
    lab = label(q)
    what = f"requests answered {lab}" if codes else "requests"
    if not rows:
        return f"No request in the logs was answered {lab}.", {"status_codes": codes, "top_paths": []}, query
    listed = ", ".join(f"{r['path']} ({r['count']})" for r in rows)
    which = "fewest" if least else "most"
    text = f"The path with the {which} {what} is {rows[0]['path']} ({rows[0]['count']}). Paths: {listed}."
    data = {"status_codes": codes, "errors_only": q.errors_only, "top_paths": rows, "path": rows[0]["path"]}
    return text, data, query


async def _latency(redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]) -> tuple[str, dict[str, Any], str]:
    del codes
    if not s.latency_count:
        return "No logged request carried a latency.", {"count": 0}, f"HGETALL {keys.LOGS_LATENCY}"
    mean = sig(s.latency_sum_ms / s.latency_count)
    histogram = await aggregates.latency_histogram(redis)
    if q.percentiles:
        values = {f"p{p:g}": aggregates.percentile(histogram, p) for p in q.percentiles}
        listed = ", ".join(f"{name} {fmt(v)} ms" for name, v in values.items())
        text = f"Over {s.latency_count} requests with a recorded latency: {listed}."
        data: dict[str, Any] = {"count": s.latency_count, "percentiles_ms": values, "mean_ms": mean}
        data["method"] = "nearest rank over a histogram at 3 significant digits"
        return text, data, f"HGETALL {keys.LOGS_LATENCY_HISTOGRAM} (nearest rank)"
    fastest = min(histogram) if histogram else None
    slowest = sig(s.max_latency_ms)
    data = {"count": s.latency_count, "mean_ms": mean, "max_ms": slowest, "min_ms": fastest}
    query = (
        f"HGETALL {keys.LOGS_LATENCY}; ZSCORE {keys.LOGS_EXTREMES} max_latency_ms; "
        f"HGETALL {keys.LOGS_LATENCY_HISTOGRAM}"
    )
    if q.direction == "least":
        text = (
            f"Over {s.latency_count} requests with a recorded latency, the fastest took {fmt(fastest)} ms "
            f"(mean {fmt(mean)} ms)."
        )
    else:
        text = (
            f"Over {s.latency_count} requests with a recorded latency, the mean was {fmt(mean)} ms, the maximum "
            f"{fmt(slowest)} ms and the minimum {fmt(fastest)} ms."
        )
    return text, data, query


async def _unique_ips(
    redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]
) -> tuple[str, dict[str, Any], str]:
    if not codes:
        return (
            f"{s.unique_ips} distinct client IPs sent the {s.total} logged requests.",
            {"unique_ips": s.unique_ips, "total": s.total},
            f"ZCARD {keys.LOGS_IPS}",
        )
    key = aggregates.status_set("ips", codes, q.status_class)
    distinct = int(await redis.zcard(key))
    return (
        f"{distinct} distinct client IPs got requests answered {label(q)}.",
        {"unique_ips": distinct, "status_codes": codes},
        f"ZCARD {key}",
    )


async def _methods(redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]) -> tuple[str, dict[str, Any], str]:
    del redis, codes
    if q.method:
        n = s.by_method.get(q.method, 0)
        return (
            f"{n} of the {s.total} logged requests used {q.method} ({pct(n, s.total)}%).",
            {"method": q.method, "count": n, "total": s.total, "by_method": s.by_method},
            f"HGETALL {keys.LOGS_BY_METHOD}",
        )
    order = ranked(s.by_method, q.direction == "least", len(s.by_method))
    top, n = order[0]
    which = "least" if q.direction == "least" else "most"
    listed = ", ".join(f"{m} {c}" for m, c in order)
    return (
        f"The {which} used method is {top} ({n} of the {s.total} requests, {pct(n, s.total)}%). By method: {listed}.",
        {"method": top, "count": n, "total": s.total, "by_method": dict(order)},
        f"HGETALL {keys.LOGS_BY_METHOD}",
    )


async def _days(redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]) -> tuple[str, dict[str, Any], str]:
    if resolve_days(q, s):
        return await _count(redis, q, s, codes)
    order = ranked(s.by_day, q.direction == "least", len(s.by_day))
    day, n = order[0]
    which = "fewest" if q.direction == "least" else "most"
    per_day = ", ".join(f"{d}: {c}" for d, c in s.by_day.items())
    mean = (s.total - s.earlier) / max(1, len(s.by_day))
    over = f"; {summed_note(s)}. Of those days" if s.earlier else f" over {len(s.by_day)} days;"
    text = (
        f"The logs run from {iso(s.first_ts)} to {iso(s.last_ts)}{over} the day with the "
        f"{which} requests is {day} ({n}). Per day: {per_day} (mean {math.floor(mean + 0.5)})."
    )
    data = {
        "day": day,
        "count": n,
        "days": len(s.by_day),
        "by_day": s.by_day,
        "earlier_days_entries": s.earlier,
        "first_seen": iso(s.first_ts),
        "last_seen": iso(s.last_ts),
        "total": s.total,
    }
    return text, data, f"HGETALL {keys.LOGS_BY_DAY}; ZRANGE {keys.LOGS_EXTREMES} 0 -1 WITHSCORES"


async def _recent_errors(
    redis: Redis, q: LogQuery, s: aggregates.Stats, codes: list[int]
) -> tuple[str, dict[str, Any], str]:
    del s
    newest = await aggregates.recent_errors(redis, aggregates.RECENT_ERRORS)
    if codes:
        newest = [e for e in newest if e.get("status") in codes]
    newest.sort(key=lambda e: -float(e.get("ts") or 0))
    shown = newest[: min(q.limit, RECENT_IN_TEXT)]
    if not shown:
        return f"No recent request was answered {label(q)}.", {"errors": []}, f"LRANGE {keys.LOGS_RECENT_ERRORS}"
    rows = [{**e, "time": iso(float(e["ts"]))} for e in shown if isinstance(e.get("ts"), int | float)]
    listed = "; ".join(f"{r['time']} {r['method']} {r['path']} -> {r['status']} from {r['ip']}" for r in rows)
    first = rows[0]
    text = (
        f"The latest error is {first['status']} on {first['method']} {first['path']} at {first['time']}. "
        f"Latest: {listed}."
    )
    return (
        text,
        {"errors": rows, "status_code": first["status"], "time": first["time"]},
        f"LRANGE {keys.LOGS_RECENT_ERRORS} 0 {aggregates.RECENT_ERRORS - 1}",
    )


_HANDLERS = {
    "count": _count,
    "error_rate": _error_rate,
    "status_breakdown": _status_breakdown,
    "top_ips": _top_ips,
    "top_paths": _top_paths,
    "latency": _latency,
    "unique_ips": _unique_ips,
    "methods": _methods,
    "days": _days,
    "recent_errors": _recent_errors,
}


async def ask(redis: Redis, question: str, label: str, found: slots.Slots) -> tuple[QueryResult, list[str]]:
    """A question routed to the log aggregate `label`: the answer, and the names the question
    gives that the logs cannot honour (the orchestrator grounds on them)."""
    got = await answer(redis, intents.log_query(label, found))
    strange = [n for n in found.names if not honours_name(n, found)]
    mode: Mode = "abstain" if got.abstained else "aggregation"
    return QueryResult(
        question, got.text, mode, data=got.data, evidence=Evidence("logs", got.query, got.covers)
    ), strange


def honours_name(name: str, found: slots.Slots) -> bool:
    """Can the access logs honour this name? Request vocabulary, a method, a month of a day asked,
    a part of the path asked."""
    low = name.lower()
    if low in VOCABULARY or low.rstrip("s") in VOCABULARY or name.upper() == found.method:
        return True
    if (found.days or found.months) and low[:3] in slots.MONTH_NAMES:
        return True
    return bool(found.path and low in found.path.lower())
