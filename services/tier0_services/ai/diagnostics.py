"""`POST /api/diagnostics/query` and the log endpoints, over the aggregates and the corpus.

A question first goes through `intents.route`: log questions are answered from the exact Redis
aggregates (mode `aggregation`, the figures in `data`). Others retrieve passages (BM25 + embeddings,
RRF, optional rerank); when no passage clears the relevance bar the answer is an abstention (mode
`abstain`), otherwise the answerer (Cohere chat, or the local extractive one) answers citing the
passages it used (mode `retrieval`). A Cohere rerank or chat failure falls back (fused order,
extractive answer) and says so in `fallback`; an embedding failure is a 503 (ProviderUnavailable).
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs.parse import LogEntry, LogParseError, parse_line
from tier0_services.ai.providers import Answer, Passage, Providers, ProviderUnavailableError
from tier0_services.ai.rag import intents
from tier0_services.ai.rag.corpus import Candidate, Corpus

Mode = Literal["aggregation", "retrieval", "abstain"]
IMPORT_BATCH = 5_000
ABSTAIN = (
    "I could not find this in the logs or the documents I hold, so I cannot answer it. "
    "Add a document that covers it (POST /api/diagnostics/documents) and ask again."
)


@dataclass(frozen=True)
class Citation:
    ref: int
    passage_id: str
    doc_id: str
    title: str
    source: str
    text: str
    score: float


@dataclass
class QueryResult:
    question: str
    answer: str
    mode: Mode
    citations: list[Citation] = field(default_factory=list)
    data: dict[str, Any] | None = None
    fallback: str | None = None


@dataclass(frozen=True)
class ImportResult:
    imported: int
    rejected: int
    errors: list[str]


@dataclass(frozen=True)
class Relevance:
    """The bar a passage must clear to be used (else the question is abstained on)."""

    min_cosine: float = 0.35
    min_rerank: float = 0.15
    max_passages: int = 4
    weak_cosine: float = 0.2
    """A passage between `weak_cosine` and `min_cosine` is used only if it also matches the
    question's words (BM25 at least `min_bm25`): "HTTP 503" is a short query embeddings undersell."""
    min_bm25: float = 2.0

    def accepts(self, c: Candidate) -> bool:
        return c.cosine >= self.min_cosine or (c.cosine >= self.weak_cosine and c.bm25 >= self.min_bm25)


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


class Diagnostics:
    def __init__(self, redis: Redis, providers: Providers, corpus: Corpus, relevance: Relevance) -> None:
        self.redis = redis
        self.providers = providers
        self.corpus = corpus
        self.relevance = relevance

    # --- logs -------------------------------------------------------------------------------

    async def import_lines(self, lines: Iterable[str]) -> ImportResult:
        batch: list[LogEntry] = []
        imported = rejected = 0
        errors: list[str] = []
        for number, line in enumerate(lines, start=1):
            try:
                entry = parse_line(line)
            except LogParseError as exc:
                rejected += 1
                if len(errors) < 10:
                    errors.append(f"line {number}: {exc}")
                continue
            if entry is not None:
                batch.append(entry)
            if len(batch) >= IMPORT_BATCH:
                imported += await aggregates.record(self.redis, batch)
                batch = []
        imported += await aggregates.record(self.redis, batch)
        return ImportResult(imported, rejected, errors)

    async def errors_for(self, status: int, limit: int) -> dict[str, Any]:
        total, top = await aggregates.top_ips_for_status(self.redis, status, limit)
        return {"status_code": status, "total": total, "top_ips": top}

    async def stats(self) -> dict[str, Any]:
        s = await aggregates.stats(self.redis)
        return {
            "total_entries": s.total,
            "error_entries": s.errors,
            "error_rate_pct": _pct(s.errors, s.total),
            "unique_ips": s.unique_ips,
            "by_status": {str(k): v for k, v in s.by_status.items()},
            "by_class": s.by_class(),
            "by_method": s.by_method,
            "by_day": s.by_day,
            "latency_ms": {
                "count": s.latency_count,
                "mean": round(s.latency_sum_ms / s.latency_count, 3) if s.latency_count else None,
                "max": s.max_latency_ms,
            },
            "first_seen": _iso(s.first_ts),
            "last_seen": _iso(s.last_ts),
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
            "error_rate_pct": _pct(s.errors, s.total),
            "top_error_codes": [{"status_code": k, "count": v} for k, v in error_codes[:limit]],
            "top_error_ips": top_error_ips,
            "top_error_paths": await aggregates.top(self.redis, keys.LOGS_ERROR_PATHS, limit, "path"),
            "top_paths": await aggregates.top(self.redis, keys.LOGS_PATHS, limit, "path"),
            "recent_errors": await aggregates.recent_errors(self.redis, limit),
        }

    # --- questions ----------------------------------------------------------------------------

    async def query(self, question: str, top_k: int = 4) -> QueryResult:
        routed = intents.route(question)
        if routed is not None:
            return await self._aggregate(question, routed)
        return await self._retrieve(question, top_k)

    async def _aggregate(self, question: str, q: intents.LogQuery) -> QueryResult:
        s = await aggregates.stats(self.redis)
        if s.total == 0:
            return QueryResult(
                question,
                "No access-log entries have been recorded or imported yet.",
                "aggregation",
                data={"total_entries": 0},
            )
        statuses = self._statuses(q, s.by_status)
        label = self._label(q)
        if q.kind == "top_ips":
            rows = await self._top_ips(statuses, q.limit)
            matching = sum(s.by_status.get(code, 0) for code in statuses)
            if not rows:
                return QueryResult(
                    question,
                    f"No request in the logs was answered {label}.",
                    "aggregation",
                    data={"status_codes": statuses, "total": 0, "top_ips": []},
                )
            listed = ", ".join(f"{r['ip']} ({r['count']} requests)" for r in rows)
            answer = (
                f"The most frequent client IP for {label} is {rows[0]['ip']} with {rows[0]['count']} of the "
                f"{matching} requests answered {label}. Top {len(rows)}: {listed}."
            )
            return QueryResult(
                question, answer, "aggregation", data={"status_codes": statuses, "total": matching, "top_ips": rows}
            )
        if q.kind == "top_paths":
            key = keys.LOGS_ERROR_PATHS if q.errors_only else keys.LOGS_PATHS
            rows = await aggregates.top(self.redis, key, q.limit, "path")
            what = "failed requests (4xx/5xx)" if q.errors_only else "requests"
            listed = ", ".join(f"{r['path']} ({r['count']})" for r in rows)
            return QueryResult(
                question,
                f"Endpoints with the most {what}: {listed}.",
                "aggregation",
                data={"errors_only": q.errors_only, "top_paths": rows},
            )
        if q.kind == "error_rate":
            answer = (
                f"{s.errors} of {s.total} logged requests were answered 4xx or 5xx: an error rate of "
                f"{_pct(s.errors, s.total)}%."
            )
            return QueryResult(
                question,
                answer,
                "aggregation",
                data={"total": s.total, "errors": s.errors, "error_rate_pct": _pct(s.errors, s.total)},
            )
        if q.kind == "latency":
            mean = round(s.latency_sum_ms / s.latency_count, 3) if s.latency_count else None
            answer = (
                f"Over {s.latency_count} requests with a recorded latency, the mean was {mean} ms and the "
                f"maximum {s.max_latency_ms} ms."
                if s.latency_count
                else "No logged request carried a latency."
            )
            return QueryResult(
                question,
                answer,
                "aggregation",
                data={"count": s.latency_count, "mean_ms": mean, "max_ms": s.max_latency_ms},
            )
        count = s.total if not statuses and not q.errors_only else sum(s.by_status.get(c, 0) for c in statuses)
        answer = (
            f"{count} of the {s.total} logged requests were answered {label}."
            if statuses
            else f"The logs hold {s.total} requests."
        )
        return QueryResult(
            question, answer, "aggregation", data={"status_codes": statuses, "count": count, "total": s.total}
        )

    @staticmethod
    def _statuses(q: intents.LogQuery, by_status: dict[int, int]) -> list[int]:
        if q.status is not None:
            return [q.status]
        if q.status_class is not None:
            return sorted(c for c in by_status if c // 100 == q.status_class)
        if q.errors_only:
            return sorted(c for c in by_status if c >= 400)
        return []

    @staticmethod
    def _label(q: intents.LogQuery) -> str:
        if q.status is not None:
            return f"HTTP {q.status}"
        if q.status_class is not None:
            return f"HTTP {q.status_class}xx"
        return "with an error (4xx/5xx)" if q.errors_only else "any status"

    async def _top_ips(self, statuses: list[int], limit: int) -> list[dict[str, Any]]:
        if not statuses:
            return await aggregates.top(self.redis, keys.LOGS_IPS, limit, "ip")
        if len(statuses) == 1:
            return (await aggregates.top_ips_for_status(self.redis, statuses[0], limit))[1]
        merged: dict[str, int] = {}
        for code in statuses:
            for row in (await aggregates.top_ips_for_status(self.redis, code, 10**9))[1]:
                merged[row["ip"]] = merged.get(row["ip"], 0) + row["count"]
        ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [{"ip": ip, "count": n} for ip, n in ranked]

    async def _retrieve(self, question: str, top_k: int) -> QueryResult:
        candidates = await self.corpus.retrieve(question, k=max(8, top_k * 2))
        fallback: str | None = None
        scored: list[tuple[Candidate, float]] = []
        reranker = self.providers.reranker
        if reranker is not None and candidates:
            try:
                ranked = await asyncio.to_thread(
                    reranker.rerank,
                    question,
                    [f"{c.passage.title}. {c.passage.text}" for c in candidates],
                    len(candidates),
                )
                scored = [(candidates[i], score) for i, score in ranked if score >= self.relevance.min_rerank]
            except ProviderUnavailableError as exc:
                fallback = f"rerank skipped: {exc}"
                reranker = None
        if reranker is None:
            scored = [(c, c.cosine) for c in candidates if self.relevance.accepts(c)]
        scored = scored[: min(top_k, self.relevance.max_passages)]
        if not scored:
            return QueryResult(question, ABSTAIN, "abstain", fallback=fallback)
        passages = [
            Passage(
                ref=n,
                passage_id=c.passage.passage_id,
                doc_id=c.passage.doc_id,
                title=c.passage.title,
                text=c.passage.text,
                score=score,
            )
            for n, (c, score) in enumerate(scored, start=1)
        ]
        answer: Answer
        try:
            answer = await asyncio.to_thread(self.providers.answerer.answer, question, passages)
        except ProviderUnavailableError as exc:
            if self.providers.fallback_answerer is None:
                raise
            fallback = "; ".join(x for x in (fallback, f"answered extractively: {exc}") if x)
            answer = await asyncio.to_thread(self.providers.fallback_answerer.answer, question, passages)
        if answer.abstained or not answer.cited:
            return QueryResult(question, ABSTAIN, "abstain", fallback=fallback)
        by_ref = {p.ref: (p, c) for p, (c, _) in zip(passages, scored, strict=True)}
        citations = [
            Citation(ref, p.passage_id, p.doc_id, p.title, c.passage.source, p.text, round(p.score, 4))
            for ref in answer.cited
            if ref in by_ref
            for p, c in [by_ref[ref]]
        ]
        return QueryResult(question, answer.text, "retrieval", citations=citations, fallback=fallback)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
