"""`POST /api/diagnostics/query` and the log endpoints, over the aggregates, the live telemetry and
the corpus.

Grounded by construction: every answer carries its `Evidence`. A question is routed by meaning
(`rag.router`: its closest labelled examples under the shipped MiniLM) to the documents, an
access-log aggregate or a live-telemetry read, with the slots it names (`rag.slots`: status code,
percentile, IP, path, year, day, site, device type, state, top N) as filters. When the best routes
of two families are close, or no route is confidently close, each is tried and the grounded answer
is kept: an aggregate is grounded when its data exists and it honours every slot (a year the logs
cover, a site the region has, no company name the logs cannot know); a document answer when the
reader (`rag.reader`) finds the sentence that answers. Documents win a close call only with a
sentence the reader is fairly sure of, and only against an aggregate route that is not clearly
meant.

Documents: passages are retrieved (BM25 + embeddings, RRF) and read a sentence, list item or table
row at a time; the answer is the sentence(s) that answer, cited; enumerations return every item of
the section(s) asked for. With no sentence that answers, the answer abstains and says what the
closest documents lack. With Cohere, passages are reranked and Cohere chat answers from them under
the same coverage check (`rag.grounding`); a rerank or chat failure falls back (fused order, the
local reader) and says so in `fallback`; an embedding failure is a 503 (ProviderUnavailable).
"""

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.live import LiveData
from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs import questions as log_questions
from tier0_services.ai.logs.parse import LogEntry, LogParseError, parse_line
from tier0_services.ai.providers import Answer, Passage, Providers, ProviderUnavailableError
from tier0_services.ai.rag import grounding, intents, reader, router, slots
from tier0_services.ai.rag.corpus import Candidate, Corpus, Document, StoredPassage
from tier0_services.ai.rag.extractive import SentenceReader, compose

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
    route: dict[str, Any] | None = None
    """How the question was routed (`router.Router.describe`, the families tried, the one kept)."""


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


@dataclass(frozen=True)
class Routing:
    """When to try more than the closest family, and which grounded answer to keep (fitted on the
    development split with `data/reader.json`; see tests/ai/README.md)."""

    margin: float = router.MARGIN
    confident: float = 0.55
    """An aggregate or live route scoring at least this is clearly meant: a document answer does not
    displace it."""
    min_aggregate: float = 0.43
    """An aggregate or live route scoring below this is not grounded (nothing like it was asked)."""
    docs_close: float = 0.60
    """Below `confident`, a document answer the reader gives at least this probability displaces a
    grounded aggregate (the question's words were the aggregate's, its meaning the documents')."""


@dataclass(frozen=True)
class Attempt:
    family: str
    result: QueryResult
    grounded: bool
    confidence: float
    strong_abstention: bool = False
    """The family is the right one and its data says no (a year the logs lack, an unknown site):
    this abstention, not another family's, is the answer when nothing is grounded."""
    unavailable: ProviderUnavailableError | None = None
    """The provider failed while answering (raised again when no other family answers)."""


_pct = log_questions.pct
LOG_VOCABULARY = frozenset(
    """http https api apis ip ips url urls uri get post put patch delete head options json rest id ids utc gmt
    ok created accepted no content not modified bad request unauthorized forbidden found too many requests
    internal server error service unavailable gateway timeout""".split()
)
"""Proper names and acronyms the access logs can honour: what a request is, its status's reason
phrase ("Bad Request"), UTC. Another name ("BP", "CEO") is something the logs know nothing of."""
LIVE_VOCABULARY = frozenset("ok warn warning alert alerts id ids mqtt iot cpu ram gb mb ms".split())
"""... and what the live telemetry can honour: device states, the activity sample's metric names."""
READ_PASSAGES = 6


class Diagnostics:
    def __init__(
        self,
        redis: Redis,
        providers: Providers,
        corpus: Corpus,
        relevance: Relevance,
        route_by: router.Router,
        local_reader: SentenceReader,
        routing: Routing | None = None,
        active_window_seconds: float = keys.ACTIVE_WINDOW_SECONDS,
    ) -> None:
        self.redis = redis
        self.providers = providers
        self.corpus = corpus
        self.relevance = relevance
        self.router = route_by
        self.reader = local_reader
        self.routing = routing or Routing()
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

    async def add_document(self, doc: Document) -> tuple[int, bool]:
        """Add (or replace) a document, and read its sentences now rather than on a question."""
        count, changed = await self.corpus.add(doc)
        if changed:
            passages = [p for p in await self.corpus.all_passages() if p.doc_id == doc.doc_id]
            await asyncio.to_thread(self.reader.prime, passages)
        return count, changed

    # --- questions ----------------------------------------------------------------------------

    async def query(self, question: str, top_k: int = 4) -> QueryResult:
        found = slots.extract(question)
        decision, _, _ = await asyncio.to_thread(self.router.route, question, found, self.routing.margin)
        families = list(decision.tried)
        if "docs" not in families:
            families.append("docs")  # the documents are read too, unless an aggregate clearly answers
        attempts: list[Attempt] = []
        for family in families:
            if family == "docs" and any(
                a.grounded and a.confidence >= self.routing.confident for a in attempts if a.family != "docs"
            ):
                continue  # a clearly meant, grounded aggregate: no document answer would displace it
            attempts.append(await self._attempt(family, decision, question, found, top_k))
        chosen = self._choose(attempts, decision)
        if chosen.unavailable is not None or (not chosen.grounded and any(a.unavailable for a in attempts)):
            raise next(a.unavailable for a in attempts if a.unavailable is not None)
        docs = next((a for a in attempts if a.family == "docs"), None)
        route = {
            **self.router.describe(decision),
            "tried": [a.family for a in attempts],
            "chosen": chosen.family,
            "reader": round(docs.confidence, 4) if docs is not None else None,
        }
        return replace(chosen.result, evidence=replace(chosen.result.evidence, route=route))

    def _choose(self, attempts: list[Attempt], decision: router.Decision) -> Attempt:
        """The grounded answer: documents when they are the closest family, or when the reader is
        fairly sure and no aggregate is clearly meant; else the closest grounded aggregate; with
        none grounded, the most informative abstention."""
        grounded = [a for a in attempts if a.grounded]
        docs = next((a for a in grounded if a.family == "docs"), None)
        others = [a for a in grounded if a.family != "docs"]
        if docs is not None and (
            not others
            or decision.order[0] == "docs"
            or (others[0].confidence < self.routing.confident and docs.confidence >= self.routing.docs_close)
        ):
            return docs
        if others:
            return others[0]
        strong = [a for a in attempts if a.strong_abstention]
        if strong:
            return strong[0]
        return next((a for a in attempts if a.family == "docs"), attempts[0])

    async def _attempt(
        self, family: str, decision: router.Decision, question: str, found: slots.Slots, top_k: int
    ) -> Attempt:
        score = decision.score(family)
        if family == "docs":
            wants_list = decision.best["docs"] == "docs.list"
            try:
                result, confidence = await self._documents(question, found, top_k, wants_list)
            except ProviderUnavailableError as exc:
                # The documents could not be read (Cohere embed failed): another family may still
                # answer; if none does, the query is a 503 with this reason.
                failed = QueryResult(question, str(exc), "abstain", evidence=Evidence("none"))
                return Attempt("docs", failed, False, 0.0, unavailable=exc)
            return Attempt("docs", result, result.mode == "retrieval", confidence)
        confident = score >= self.routing.confident
        if family == "logs":
            log_q = intents.log_query(decision.best["logs"], found)
            result = await self._logs(question, log_q)
            strange = [n for n in found.names if not _log_name(n, found)]
        else:
            sites = await self.live.sites()
            site = _resolve_site(found, sites)
            live_q = intents.live_query(decision.best["live"], found, question, site)
            result = await self._live(question, live_q, found)
            strange = [n for n in found.names if not _live_name(n, site, found)]
        fits = score >= self.routing.min_aggregate and not strange
        grounded = result.mode == "aggregation" and fits
        strong = result.mode == "abstain" and confident and not strange
        if result.mode == "aggregation" and not fits:
            what = "access logs" if family == "logs" else "live telemetry"
            names = f" ({', '.join(strange)})" if strange else ""
            result = QueryResult(
                question,
                f"The {what} cannot answer this: the question names what they do not hold{names}.",
                "abstain",
                evidence=Evidence("none", None, result.evidence.covers),
            )
        return Attempt(family, result, grounded, score, strong)

    async def _live(self, question: str, q: intents.LiveQuery, found: slots.Slots) -> QueryResult:
        when = _past_or_future(found)
        if when:
            sites = await self.live.sites()
            return QueryResult(
                question,
                "The live telemetry holds each device's and user's newest state only, not history or "
                f"forecasts ({when}).",
                "abstain",
                evidence=Evidence("live", None, {"sites": sites}),
            )
        got = await self.live.answer(q)
        evidence = Evidence("live", got.query, got.covers)
        return QueryResult(
            question, got.text, "abstain" if got.abstained else "aggregation", data=got.data, evidence=evidence
        )

    async def _logs(self, question: str, q: intents.LogQuery) -> QueryResult:
        got = await log_questions.answer(self.redis, q)
        evidence = Evidence("logs", got.query, got.covers)
        return QueryResult(
            question, got.text, "abstain" if got.abstained else "aggregation", data=got.data, evidence=evidence
        )

    # --- documents ----------------------------------------------------------------------------

    async def _documents(
        self, question: str, found: slots.Slots, top_k: int, wants_list: bool
    ) -> tuple[QueryResult, float]:
        if isinstance(self.providers.answerer, SentenceReader):
            return await self._read(question, found, top_k, wants_list)
        return await self._retrieve(question, found, top_k, wants_list), 0.0

    async def _read(self, question: str, found: slots.Slots, top_k: int, wants_list: bool) -> tuple[QueryResult, float]:
        """The local path: retrieve passages, read them a sentence at a time."""
        snap = await self.corpus.snapshot()
        docs = _doc_titles(snap.passages)
        if not snap.passages:
            return QueryResult(question, _abstain(docs), "abstain", evidence=Evidence("none", None, docs)), 0.0
        candidates = await self.corpus.retrieve(question, k=max(READ_PASSAGES, top_k))
        ranked = [c.passage for c in candidates]
        reading = await asyncio.to_thread(self.reader.read, question, found, ranked, snap.bm25.idf, snap.doc_words)
        best = next((s.probability for s in reading.scored if reader.can_answer(s.features)), 0.0)
        if wants_list and reading.scored:
            listed = await self._list(question, reading, snap.passages, docs)
            if listed is not None:
                return listed, best
        if not reading.chosen:
            short = reader.shortfall(reading.question, reading.scored, snap.doc_words)
            titles = [s.unit.title for s in reading.scored[:3]]
            text_ = reader.explain(short, titles) if reading.scored else _abstain(docs)
            return QueryResult(question, text_, "abstain", evidence=Evidence("none", None, docs)), best
        return self._cited(question, reading.chosen, snap.passages), best

    def _cited(
        self,
        question: str,
        chosen: list[reader.Scored],
        passages: list[StoredPassage],
        data: dict[str, Any] | None = None,
    ) -> QueryResult:
        by_id = {p.passage_id: p for p in passages}
        refs: dict[str, int] = {}
        for s in chosen:
            refs.setdefault(s.unit.passage_id, len(refs) + 1)
        best_of: dict[str, float] = {}
        for s in chosen:
            best_of[s.unit.passage_id] = max(best_of.get(s.unit.passage_id, 0.0), s.probability)
        citations = [
            Citation(
                ref,
                pid,
                by_id[pid].doc_id,
                by_id[pid].title,
                by_id[pid].source,
                by_id[pid].text,
                round(best_of[pid], 4),
            )
            for pid, ref in refs.items()
            if pid in by_id
        ]
        if data is None:
            answer = compose(chosen, refs)
        else:
            texts = reader.item_texts([c.unit for c in chosen])
            first_of: list[str] = []  # each item's passage, for its citation number
            seen: set[tuple[str, int]] = set()
            for c in chosen:
                key = (c.unit.passage_id, c.unit.line)
                if c.unit.kind != "item" or key not in seen:
                    first_of.append(c.unit.passage_id)
                seen.add(key)
            body = " ".join(
                f"({n}) {t} [{refs[pid]}]" for n, (t, pid) in enumerate(zip(texts, first_of, strict=True), start=1)
            )
            answer = f"The documents list {len(texts)}: {body}"
        evidence = Evidence("documents", None, {"documents": sorted({c.doc_id for c in citations})})
        return QueryResult(question, answer, "retrieval", citations=citations, data=data, evidence=evidence)

    async def _list(
        self, question: str, reading: Any, passages: list[StoredPassage], docs: dict[str, Any]
    ) -> QueryResult | None:
        """Every item of the section(s) of the best document that the question asks for; None when
        the best sentence does not clear the bar (the question is then read as a plain one)."""
        best = next((s for s in reading.scored if reader.can_answer(s.features)), None)
        if best is None or best.probability < self.reader.model.threshold:
            return None
        doc_passages = [p for p in passages if p.doc_id == best.unit.doc_id]
        units = await asyncio.to_thread(self.reader.index.get, doc_passages)
        sections: list[reader.Section] = []
        for p in doc_passages:
            for u in units.get(p.passage_id, []):
                if not sections or sections[-1].heading != u.heading:
                    sections.append(reader.Section(u.doc_id, u.heading, []))
                sections[-1].units.append(u)
        merged: dict[str, reader.Section] = {}
        for sec in sections:
            merged.setdefault(sec.heading, reader.Section(sec.doc_id, sec.heading, [])).units.extend(sec.units)
        picked = reader.enumerate_sections(reading.question, list(merged.values()), best.unit.doc_id)
        if not picked:
            picked = [merged[best.unit.heading]] if best.unit.heading in merged else []
        items = reader.enumerate_items(reading.question, [u for sec in picked for u in sec.units])
        if not items:
            return None
        chosen = [reader.Scored(u, best.features, best.probability) for u in items]
        data = {"items": reader.item_texts(items), "count": len(reader.item_texts(items))}
        return self._cited(question, chosen, passages, data)

    async def _retrieve(self, question: str, found: slots.Slots, top_k: int, wants_list: bool) -> QueryResult:
        """The Cohere path: rerank, chat with the passages, the coverage check on what it cited."""
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
        docs = await self._doc_covers()
        if wants_list and scored:
            snap = await self.corpus.snapshot()
            ranked_passages = [c.passage for c, _ in scored]
            reading = await asyncio.to_thread(
                self.reader.read, question, found, ranked_passages, snap.bm25.idf, snap.doc_words
            )
            if reading.scored:
                listed = await self._list(question, reading, snap.passages, docs)
                if listed is not None:
                    return replace(listed, fallback=fallback)
        scored = scored[: min(top_k, self.relevance.max_passages)]
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
            text_ = grounding.explain(verdict, [p.title for p, _ in used], evidence_text)
            return QueryResult(question, text_, "abstain", fallback=fallback, evidence=Evidence("none", None, docs))
        citations = [
            Citation(p.ref, p.passage_id, p.doc_id, p.title, c.passage.source, p.text, round(p.score, 4))
            for p, c in used
        ]
        evidence = Evidence("documents", None, {"documents": sorted({c.doc_id for c in citations})})
        return QueryResult(
            question, answer.text, "retrieval", citations=citations, fallback=fallback, evidence=evidence
        )

    async def _doc_covers(self) -> dict[str, Any]:
        docs = await self.corpus.documents()
        return {"documents": [str(d["title"]) for d in docs]}


def _doc_titles(passages: list[StoredPassage]) -> dict[str, Any]:
    return {"documents": sorted({p.title for p in passages})}


def _abstain(docs: dict[str, Any]) -> str:
    titles = docs.get("documents") or []
    held = f" The documents I hold are: {'; '.join(titles)}." if titles else " I hold no documents yet."
    return ABSTAIN + held


def _past_or_future(found: slots.Slots) -> str:
    """What of the question the live telemetry (now only) cannot honour: a year, day, month, a past
    window ("last week") or a time to come; '' when nothing."""
    when = [str(y) for y in found.years] + list(found.days) + list(found.months)
    if found.window and not re.search(r"\b(?:today|this)\b", found.window, re.IGNORECASE):
        when.append(found.window)
    if found.future:
        when.append("the future")
    return ", ".join(when)


def _log_name(name: str, found: slots.Slots) -> bool:
    """Can the access logs honour this name? Request vocabulary, a method, a month of a day asked,
    a part of the path asked."""
    low = name.lower()
    if low in LOG_VOCABULARY or low.rstrip("s") in LOG_VOCABULARY or name.upper() == found.method:
        return True
    if (found.days or found.months) and low[:3] in slots.MONTH_NAMES:
        return True
    return bool(found.path and low in found.path.lower())


def _live_name(name: str, site: str | None, found: slots.Slots) -> bool:
    """Can the live telemetry honour this name? A state, the site asked (its ID or its name in
    prose), a device type."""
    low = name.lower()
    if low in LIVE_VOCABULARY or low in slots.STATES or low in slots.DEVICE_TYPES:
        return True
    if site is None:
        return False
    parts = [p for p in re.split(r"[-_]", site.lower()) if p]
    return low == site.lower() or any(low == p or (len(p) < 3 and low.startswith(p)) for p in parts)


def _resolve_site(found: slots.Slots, sites: list[str]) -> str | None:
    """The region's site the question names: as an ID, or in prose ("Wyoming Alpha" is WY-ALPHA)."""
    for s in found.sites:
        return s
    words = frozenset(w.lower() for n in found.names for w in re.split(r"[\s-]+", n))
    for site in sites:
        parts = [p for p in site.lower().split("-") if p]
        if len(parts) >= 2 and all(
            (p in words) if len(p) >= 3 else any(w.startswith(p) and len(w) > len(p) for w in words) for p in parts
        ):
            return site
    return None


def _iso(ts: float | None) -> str | None:
    return log_questions.iso(ts)
