"""The access logs as the API sees them: import (lines or parsed entries, in batches) into the
bounded aggregates (`aggregates`), and the endpoints' reads (`/logs/stats`, `/logs/summary`,
`/logs/errors/{code}`). Questions about the logs are answered by `questions`."""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.logs import aggregates, questions
from tier0_services.ai.logs.parse import LogEntry, LogParseError, parse_line

IMPORT_BATCH = 5_000
ERRORS_SHOWN = 10


@dataclass(frozen=True)
class ImportResult:
    imported: int
    rejected: int
    errors: list[str]


class AccessLogs:
    def __init__(self, redis: Redis, max_days: int = keys.LOGS_MAX_DAYS) -> None:
        self.redis = redis
        self.max_days = max_days
        """Days the day counts keep (`aggregates.record`)."""

    async def import_lines(self, lines: Iterable[str]) -> ImportResult:
        """Combined-format or JSON lines; an unreadable line is counted and sampled, never fatal."""
        batch: list[LogEntry] = []
        imported = rejected = 0
        errors: list[str] = []
        for number, line in enumerate(lines, start=1):
            try:
                entry = parse_line(line)
            except LogParseError as exc:
                rejected += 1
                if len(errors) < ERRORS_SHOWN:
                    errors.append(f"line {number}: {exc}")
                continue
            if entry is not None:
                batch.append(entry)
            if len(batch) >= IMPORT_BATCH:
                imported += await aggregates.record(self.redis, batch, max_days=self.max_days)
                batch = []
        imported += await aggregates.record(self.redis, batch, max_days=self.max_days)
        return ImportResult(imported, rejected, errors)

    async def import_entries(self, entries: list[LogEntry], atomic_marker: tuple[str, str, str] | None = None) -> int:
        """Add entries to the aggregates, in batches; with `atomic_marker` (key, field, value) all
        of them and that hash field in one transaction instead (`aggregates.record`)."""
        if atomic_marker is not None:
            return await aggregates.record(self.redis, entries, atomic_marker, self.max_days)
        imported = 0
        for start in range(0, len(entries), IMPORT_BATCH):
            batch = entries[start : start + IMPORT_BATCH]
            imported += await aggregates.record(self.redis, batch, max_days=self.max_days)
        return imported

    async def errors_for(self, status: int, limit: int) -> dict[str, Any]:
        total, top = await aggregates.top_ips_for_status(self.redis, status, limit)
        return {"status_code": status, "total": total, "top_ips": top}

    async def stats(self) -> dict[str, Any]:
        s = await aggregates.stats(self.redis)
        return {
            "total_entries": s.total,
            "error_entries": s.errors,
            "error_rate_pct": questions.pct(s.errors, s.total),
            "unique_ips": s.unique_ips,
            "by_status": {str(k): v for k, v in s.by_status.items()},
            "by_class": s.by_class(),
            "by_method": s.by_method,
            "by_day": s.by_day,
            "by_day_earlier": s.earlier,
            "latency_ms": {
                "count": s.latency_count,
                "mean": round(s.latency_sum_ms / s.latency_count, 3) if s.latency_count else None,
                "max": s.max_latency_ms,
            },
            "first_seen": questions.iso(s.first_ts),
            "last_seen": questions.iso(s.last_ts),
        }

    async def summary(self, limit: int = 5) -> dict[str, Any]:
        s = await aggregates.stats(self.redis)
        error_codes = sorted(((k, v) for k, v in s.by_status.items() if k >= 400), key=lambda kv: (-kv[1], kv[0]))
        top_error_ips: dict[str, list[dict[str, Any]]] = {}
        for status, _ in error_codes[:3]:
            top_error_ips[str(status)] = (await aggregates.top_ips_for_status(self.redis, status, 3))[1]
        return {
            "total_entries": s.total,
            "error_entries": s.errors,
            "error_rate_pct": questions.pct(s.errors, s.total),
            "top_error_codes": [{"status_code": k, "count": v} for k, v in error_codes[:limit]],
            "top_error_ips": top_error_ips,
            "top_error_paths": await aggregates.top(self.redis, keys.LOGS_ERROR_PATHS, limit, "path"),
            "top_paths": await aggregates.top(self.redis, keys.LOGS_PATHS, limit, "path"),
            "recent_errors": await aggregates.recent_errors(self.redis, limit),
        }
