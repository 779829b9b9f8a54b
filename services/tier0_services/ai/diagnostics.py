"""`POST /api/diagnostics/query` and the log endpoints, over the aggregates and the corpus.

Grounded by construction: every answer carries its `Evidence`. A question first goes through
`intents.route`: log questions are answered from the exact Redis aggregates, live questions (alerts
now, active devices, users) from the live telemetry keys (mode `aggregation`, the figures in
`data`, the Redis commands in `evidence.query`); a restriction the data cannot honour (a year the
logs do not cover, a site the region does not have) is an abstention that says what the data holds.
Others retrieve passages (BM25 + embeddings, RRF, optional rerank); when no passage clears the
relevance bar, or the cited passages do not cover the question's entities (company, year, status
code, site) and subject (`grounding`), the answer is an abstention (mode `abstain`); otherwise the
answerer (Cohere chat, or the local extractive one) answers citing the passages it used (mode
`retrieval`). "List ..." questions return every matching item of the best document. A Cohere
rerank or chat failure falls back (fused order, extractive answer) and says so in `fallback`; an
embedding failure is a 503 (ProviderUnavailable).
"""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.live import LiveData
from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs.parse import LogEntry, LogParseError, parse_line
from tier0_services.ai.providers import Answer, Passage, Providers, ProviderUnavailableError
from tier0_services.ai.rag import grounding, intents, text
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


@dataclass(frozen=True)
class Evidence:
    """Which data answered: an exact aggregate over the access logs (`logs`) or the live telemetry
    (`live`) with the Redis commands that computed it (`query`), cited passages (`documents`), or
    nothing (`none`, an abstention). `covers` says what that data holds (time span, sites,
    documents), so an abstention can say what it does have."""

    source: Literal["logs", "live", "documents", "none"]
    query: str | None = None
    covers: dict[str, Any] = field(default_factory=dict)


@dataclass
class QueryResult:
    question: str
    answer: str
    mode: Mode
    citations: list[Citation] = field(default_factory=list)
    data: dict[str, Any] | None = None
    fallback: str | None = None
    evidence: Evidence = field(default_factory=lambda: Evidence("none"))


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
    def __init__(
        self,
        redis: Redis,
        providers: Providers,
        corpus: Corpus,
        relevance: Relevance,
        active_window_seconds: float = keys.ACTIVE_WINDOW_SECONDS,
    ) -> None:
        self.redis = redis
        self.providers = providers
        self.corpus = corpus
        self.relevance = relevance
        self.live = LiveData(redis, active_window_seconds)

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

    async def import_entries(self, entries: list[LogEntry], atomic_marker: tuple[str, str, str] | None = None) -> int:
        """Add entries to the aggregates, in batches; with `atomic_marker` (key, field, value) all
        of them and that hash field in one transaction instead (`aggregates.record`)."""
        if atomic_marker is not None:
            return await aggregates.record(self.redis, entries, atomic_marker)
        imported = 0
        for start in range(0, len(entries), IMPORT_BATCH):
            imported += await aggregates.record(self.redis, entries[start : start + IMPORT_BATCH])
        return imported

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
        if isinstance(routed, intents.LiveQuery):
            return await self._live(question, routed)
        if routed is not None:
            return await self._aggregate(question, routed)
        return await self._retrieve(question, top_k)

    async def _live(self, question: str, q: intents.LiveQuery) -> QueryResult:
        found = await self.live.answer(q)
        evidence = Evidence("live", found.query, found.covers)
        if found.abstained:
            return QueryResult(question, found.text, "abstain", data=found.data, evidence=evidence)
        return QueryResult(question, found.text, "aggregation", data=found.data, evidence=evidence)

    async def _aggregate(self, question: str, q: intents.LogQuery) -> QueryResult:
        s = await aggregates.stats(self.redis)
        covers = _log_covers(s)
        if s.total == 0:
            return QueryResult(
                question,
                "No access-log entries have been recorded or imported yet, so I cannot answer from the logs.",
                "abstain",
                data={"total_entries": 0},
                evidence=Evidence("logs", f"GET {keys.LOGS_TOTAL}", covers),
            )
        gap = _log_gap(q, s)
        if gap is not None:
            return QueryResult(
                question, gap, "abstain", data={"covers": covers}, evidence=Evidence("logs", None, covers)
            )
        statuses = self._statuses(q, s.by_status)
        label = self._label(q)
        data: dict[str, Any]
        if q.kind == "top_ips":
            rows, query = await self._top_ips(q, statuses)
            matching = sum(s.by_status.get(code, 0) for code in statuses) if statuses else s.total
            if not rows:
                answer = f"No request in the logs was answered {label}."
            else:
                listed = ", ".join(f"{r['ip']} ({r['count']} requests)" for r in rows)
                answer = (
                    f"The most frequent client IP for {label} is {rows[0]['ip']} with {rows[0]['count']} of the "
                    f"{matching} requests answered {label}. Top {len(rows)}: {listed}."
                )
            data = {"status_codes": statuses, "total": matching, "top_ips": rows}
        elif q.kind == "top_paths":
            rows, query = await self._top_paths(q, statuses)
            what = f"requests answered {label}" if statuses else "requests"
            if not rows:
                answer = f"No request in the logs was answered {label}."
            else:
                listed = ", ".join(f"{r['path']} ({r['count']})" for r in rows)
                answer = f"Paths with the most {what}: {listed}."
            data = {"status_codes": statuses, "errors_only": q.errors_only, "top_paths": rows}
        elif q.kind == "error_rate":
            answer = (
                f"{s.errors} of {s.total} logged requests were answered 4xx or 5xx: an error rate of "
                f"{_pct(s.errors, s.total)}%."
            )
            data = {"total": s.total, "errors": s.errors, "error_rate_pct": _pct(s.errors, s.total)}
            query = f"HGETALL {keys.LOGS_BY_STATUS}: sum(status >= 400) / sum(all)"
        elif q.kind == "latency":
            answer, data, query = await self._latency(q, s)
        else:
            answer, data, query = await self._count(q, s, statuses, label)
        return QueryResult(question, answer, "aggregation", data=data, evidence=Evidence("logs", query, covers))

    async def _count(
        self, q: intents.LogQuery, s: aggregates.Stats, statuses: list[int], label: str
    ) -> tuple[str, dict[str, Any], str]:
        if q.ip is not None or q.path is not None:
            return await self._count_for(q, statuses, label)
        if not statuses:
            return (
                f"The logs hold {s.total} requests.",
                {"status_codes": [], "count": s.total, "total": s.total},
                f"GET {keys.LOGS_TOTAL}",
            )
        count = sum(s.by_status.get(c, 0) for c in statuses)
        return (
            f"{count} of the {s.total} logged requests were answered {label}.",
            {"status_codes": statuses, "count": count, "total": s.total},
            f"HMGET {keys.LOGS_BY_STATUS} {' '.join(map(str, statuses))}",
        )

    async def _count_for(self, q: intents.LogQuery, statuses: list[int], label: str) -> tuple[str, dict[str, Any], str]:
        """Requests from one IP or to one path, optionally with a status (exact ZSCOREs)."""
        member, name = (q.ip, "ip") if q.ip is not None else (q.path or "", "path")
        member = aggregates.member(member)
        if statuses:
            zkeys = [keys.logs_ips_for_status(c) if name == "ip" else keys.logs_paths_for_status(c) for c in statuses]
        else:
            zkeys = [keys.LOGS_IPS if name == "ip" else keys.LOGS_PATHS]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in zkeys:
                pipe.zscore(key, member)
            scores = await pipe.execute()
        count = int(sum(x or 0 for x in scores))
        side = f"from {member}" if name == "ip" else f"to {member}"
        what = f" answered {label}" if statuses else ""
        return (
            f"{count} logged requests {side}{what}.",
            {name: member, "status_codes": statuses, "count": count},
            "; ".join(f"ZSCORE {k} {member}" for k in zkeys),
        )

    async def _latency(self, q: intents.LogQuery, s: aggregates.Stats) -> tuple[str, dict[str, Any], str]:
        if not s.latency_count:
            return "No logged request carried a latency.", {"count": 0}, f"HGETALL {keys.LOGS_LATENCY}"
        mean = _sig(s.latency_sum_ms / s.latency_count)
        if q.percentiles:
            histogram = await aggregates.latency_histogram(self.redis)
            values = {f"p{p:g}": aggregates.percentile(histogram, p) for p in q.percentiles}
            listed = ", ".join(f"{name} {_fmt(v)} ms" for name, v in values.items())
            answer = f"Over {s.latency_count} requests with a recorded latency: {listed}."
            data: dict[str, Any] = {"count": s.latency_count, "percentiles_ms": values, "mean_ms": mean}
            data["method"] = "nearest rank over a histogram at 3 significant digits"
            return answer, data, f"HGETALL {keys.LOGS_LATENCY_HISTOGRAM} (nearest rank)"
        answer = (
            f"Over {s.latency_count} requests with a recorded latency, the mean was {_fmt(mean)} ms and the "
            f"maximum {_fmt(_sig(s.max_latency_ms))} ms."
        )
        return (
            answer,
            {"count": s.latency_count, "mean_ms": mean, "max_ms": _sig(s.max_latency_ms)},
            f"HGETALL {keys.LOGS_LATENCY}; ZSCORE {keys.LOGS_EXTREMES} max_latency_ms",
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

    async def _top_ips(self, q: intents.LogQuery, statuses: list[int]) -> tuple[list[dict[str, Any]], str]:
        key = keys.LOGS_IPS if not statuses else _status_key(q, statuses, "ips")
        return await aggregates.top(self.redis, key, q.limit, "ip"), f"ZRANGE {key} 0 {q.limit - 1} REV (by score)"

    async def _top_paths(self, q: intents.LogQuery, statuses: list[int]) -> tuple[list[dict[str, Any]], str]:
        key = keys.LOGS_PATHS if not statuses else _status_key(q, statuses, "paths")
        return await aggregates.top(self.redis, key, q.limit, "path"), f"ZRANGE {key} 0 {q.limit - 1} REV (by score)"

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
        wanted = grounding.constraints(question)
        if _enumerating(question) and scored:
            return await self._enumerate(question, wanted, scored, fallback)
        scored = scored[: min(top_k, self.relevance.max_passages)]
        docs = await self._doc_covers()
        if not scored:
            return QueryResult(
                question, _abstain(docs), "abstain", fallback=fallback, evidence=Evidence("none", None, docs)
            )
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
            return QueryResult(
                question, _abstain(docs), "abstain", fallback=fallback, evidence=Evidence("none", None, docs)
            )
        by_ref = {p.ref: (p, c) for p, (c, _) in zip(passages, scored, strict=True)}
        used = [by_ref[ref] for ref in answer.cited if ref in by_ref]
        # The cited passages must cover what the question names (entities, years, its subject).
        evidence_text = " ".join(f"{p.title} {p.text}" for p, _ in used)
        verdict = grounding.check(wanted, evidence_text)
        if not verdict.ok:
            text = grounding.explain(verdict, [p.title for p, _ in used], evidence_text)
            return QueryResult(question, text, "abstain", fallback=fallback, evidence=Evidence("none", None, docs))
        citations = [
            Citation(p.ref, p.passage_id, p.doc_id, p.title, c.passage.source, p.text, round(p.score, 4))
            for p, c in used
        ]
        evidence = Evidence("documents", None, {"documents": sorted({c.doc_id for c in citations})})
        return QueryResult(
            question, answer.text, "retrieval", citations=citations, fallback=fallback, evidence=evidence
        )

    async def _enumerate(
        self,
        question: str,
        wanted: grounding.Constraints,
        scored: list[tuple[Candidate, float]],
        fallback: str | None,
    ) -> QueryResult:
        """ "List ..." questions: every matching item of the best document(s), not the top few
        sentences. Items are the sentences that name the listed thing (the question's last
        content word, e.g. "statements"), narrowed by the question's qualifiers ("economic",
        "social") when those split the items."""
        best_doc = scored[0][0].passage.doc_id
        passages = [p for p in await self.corpus.all_passages() if p.doc_id == best_doc]
        items = enumerate_items(wanted.terms, [(p, s) for p in passages for s in _item_sentences(p.text)])
        evidence_text = " ".join(f"{p.title} {p.text}" for p in passages)
        verdict = grounding.check(wanted, evidence_text)
        docs = await self._doc_covers()
        if not items or not verdict.ok:
            why = grounding.explain(verdict, [passages[0].title], evidence_text) if passages else ABSTAIN
            return QueryResult(question, why, "abstain", fallback=fallback, evidence=Evidence("none", None, docs))
        refs: dict[str, int] = {}
        for p, _ in items:
            refs.setdefault(p.passage_id, len(refs) + 1)
        body = " ".join(f"({n}) {sentence} [{refs[p.passage_id]}]" for n, (p, sentence) in enumerate(items, start=1))
        by_id = {p.passage_id: p for p, _ in items}
        score_of = {c.passage.passage_id: score for c, score in scored}
        citations = [
            Citation(
                ref,
                pid,
                by_id[pid].doc_id,
                by_id[pid].title,
                by_id[pid].source,
                by_id[pid].text,
                round(score_of.get(pid, 0.0), 4),
            )
            for pid, ref in refs.items()
        ]
        answer = f"The documents list {len(items)}: {body}"
        evidence = Evidence("documents", None, {"documents": [best_doc], "items": len(items)})
        return QueryResult(
            question,
            answer,
            "retrieval",
            citations=citations,
            data={"items": [s for _, s in items], "count": len(items)},
            fallback=fallback,
            evidence=evidence,
        )

    async def _doc_covers(self) -> dict[str, Any]:
        docs = await self.corpus.documents()
        return {"documents": [str(d["title"]) for d in docs]}


def _abstain(docs: dict[str, Any]) -> str:
    titles = docs.get("documents") or []
    held = f" The documents I hold are: {'; '.join(titles)}." if titles else " I hold no documents yet."
    return ABSTAIN + held


_ENUMERATE_START = frozenset({"list", "enumerate", "name"})


def _enumerating(question: str) -> bool:
    tokens = text.words(question)
    return bool(tokens) and (tokens[0] in _ENUMERATE_START or " list all " in f" {question.lower()} ")


def _heading(passage_text: str) -> str:
    """The heading the chunker put in front of a passage (`Social sustainability: ...`), or ''."""
    head, sep, _ = passage_text.partition(": ")
    return head if sep and len(head) <= 60 and "." not in head else ""


def _item_sentences(passage_text: str) -> list[tuple[str, str]]:
    """(context, sentence) of a passage: the context is the heading plus the sentence, the
    sentence is shown without the heading."""
    heading = _heading(passage_text)
    body = passage_text[len(heading) + 2 :] if heading else passage_text
    return [(f"{heading} {s}", s) for s in text.sentences(body)]


def enumerate_items(terms: tuple[str, ...], sentences: list[tuple[Any, tuple[str, str]]]) -> list[tuple[Any, str]]:
    """Of (passage, (context, sentence)) pairs, the sentences naming the listed thing (the last
    content term that any context has), narrowed to those whose context has one of the other
    terms when some have it and some do not (pure)."""
    if not terms:
        return []
    sentence_terms = [set(text.terms(context)) for _, (context, _) in sentences]
    head = next((t for t in reversed(terms) if any(t in st for st in sentence_terms)), None)
    if head is None:
        return []
    items = [(x, st) for x, st in zip(sentences, sentence_terms, strict=True) if head in st]
    qualifiers = [t for t in terms if t != head]
    splitting = [t for t in qualifiers if 0 < sum(t in st for _, st in items) < len(items)]
    if splitting:
        items = [(x, st) for x, st in items if any(t in st for t in splitting)]
    return [(p, sentence) for (p, (_, sentence)), _ in items if not sentence.upper().startswith(text.SAMPLE_LABEL)]


def _status_key(q: intents.LogQuery, statuses: list[int], kind: Literal["ips", "paths"]) -> str:
    """The sorted set counting exactly `statuses` (one code, a class, or every error), kept at
    write time so that the top of several codes is one bounded read, not a merge of whole sets."""
    if len(statuses) == 1:
        return keys.logs_ips_for_status(statuses[0]) if kind == "ips" else keys.logs_paths_for_status(statuses[0])
    if q.status_class is not None:
        return keys.logs_ips_for_class(q.status_class) if kind == "ips" else keys.logs_paths_for_class(q.status_class)
    return keys.LOGS_ERROR_IPS if kind == "ips" else keys.LOGS_ERROR_PATHS


def _log_covers(s: aggregates.Stats) -> dict[str, Any]:
    days = list(s.by_day)
    return {
        "entries": s.total,
        "first_seen": _iso(s.first_ts),
        "last_seen": _iso(s.last_ts),
        "days": [days[0], days[-1]] if days else [],
        "aggregated_by": ["status", "client ip", "path", "method", "day", "latency"],
    }


def _log_gap(q: intents.LogQuery, s: aggregates.Stats) -> str | None:
    """Why the aggregates cannot answer what the question restricts to, or None."""
    days = list(s.by_day)
    span = f"{days[0]} to {days[-1]}" if days else "no days"
    held = f"The logs I hold cover {span} ({s.total} requests)"
    for year in q.years:
        in_year = [d for d in days if d.startswith(str(year))]
        if not in_year:
            return f"{held}: nothing in {year}, so I cannot answer for {year}."
        if len(in_year) != len(days):
            return f"{held}; they are aggregated by day only in total, so I cannot break {year} out."
    if q.sites:
        return (
            f"{held}, aggregated by status, client IP, path, method and day: not by site "
            f"({', '.join(q.sites)}). Ask about a path such as /api/devices/metrics/site/{q.sites[0]}."
        )
    if q.kind == "latency" and (q.status is not None or q.status_class is not None or q.ip or q.path):
        return (
            f"{held}; latency is aggregated over all requests only (mean, maximum, percentiles), "
            "not per status, IP or path."
        )
    return None


def _sig(value: float | None, digits: int = 3) -> float | None:
    """Round to `digits` significant digits: 971.712115999992 -> 972.0, 0.51234 -> 0.512."""
    if value is None or value == 0:
        return value
    return float(f"{value:.{digits}g}")


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:g}"


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
