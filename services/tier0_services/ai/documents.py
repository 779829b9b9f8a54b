"""The documents reader: add a document (and read its sentences then, not on a question), and
answer a question from the corpus, cited.

Local provider: passages are retrieved (BM25 + embeddings, RRF) and read a sentence, list item or
table row at a time (`rag.reader` through `rag.extractive.SentenceReader`); the answer is the
sentence(s) that answer; enumerations return every item of the section(s) asked for. With no
sentence that answers, the answer abstains and says what the closest documents lack. With Cohere,
passages are reranked and Cohere chat answers from them under the same coverage check
(`rag.grounding`); a rerank or chat failure falls back (fused order, the local reader) and says so
in `fallback`; an embedding failure raises `ProviderUnavailableError` (a 503).
"""

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from tier0_services.ai.answers import Citation, Evidence, QueryResult, abstain_text
from tier0_services.ai.providers import Answer, Passage, Providers, ProviderUnavailableError
from tier0_services.ai.rag import grounding, reader, slots
from tier0_services.ai.rag.corpus import Candidate, Corpus, Document, Snapshot, StoredPassage
from tier0_services.ai.rag.extractive import Reading, SentenceReader, compose

READ_PASSAGES = 6
"""Passages the local reader reads per question (the retrieval's best)."""


@dataclass(frozen=True)
class Relevance:
    """The bar a passage must clear to be used on the Cohere path (else the question is abstained on)."""

    min_cosine: float = 0.35
    min_rerank: float = 0.15
    max_passages: int = 4
    weak_cosine: float = 0.2
    """A passage between `weak_cosine` and `min_cosine` is used only if it also matches the
    question's words (BM25 at least `min_bm25`): "HTTP 503" is a short query embeddings undersell."""
    min_bm25: float = 2.0

    def accepts(self, c: Candidate) -> bool:
        return c.cosine >= self.min_cosine or (c.cosine >= self.weak_cosine and c.bm25 >= self.min_bm25)


class DocumentReader:
    def __init__(self, providers: Providers, corpus: Corpus, relevance: Relevance, local: SentenceReader) -> None:
        self.providers = providers
        self.corpus = corpus
        self.relevance = relevance
        self.local = local
        """The local reader: it answers on the local provider, reads enumerations on any, and its
        model routes every question."""

    async def add(self, doc: Document) -> tuple[int, bool]:
        """Add (or replace) a document, and read its sentences now rather than on a question."""
        count, changed = await self.corpus.add(doc)
        if changed:
            passages = [p for p in await self.corpus.all_passages() if p.doc_id == doc.doc_id]
            await asyncio.to_thread(self.local.prime, passages)
        return count, changed

    async def answer(
        self, question: str, found: slots.Slots, top_k: int, wants_list: bool
    ) -> tuple[QueryResult, float]:
        """The answer and the reader's probability for its best sentence (0 on the Cohere path)."""
        if isinstance(self.providers.answerer, SentenceReader):
            return await self._read(question, found, top_k, wants_list)
        return await self._retrieve(question, found, top_k, wants_list), 0.0

    async def _read(self, question: str, found: slots.Slots, top_k: int, wants_list: bool) -> tuple[QueryResult, float]:
        """The local path: retrieve passages, read them a sentence at a time."""
        snap = await self.corpus.snapshot()
        docs = _doc_titles(snap.passages)
        if not snap.passages:
            return QueryResult(question, abstain_text(docs), "abstain", evidence=Evidence("none", None, docs)), 0.0
        candidates = await self.corpus.retrieve(question, k=max(READ_PASSAGES, top_k))
        ranked = [c.passage for c in candidates]
        reading = await asyncio.to_thread(self.local.read, question, found, ranked, snap.bm25.idf, snap.doc_words)
        best = next((s.probability for s in reading.scored if reader.can_answer(s.features)), 0.0)
        if wants_list and reading.scored:
            listed = await self._list(question, reading, snap.passages)
            if listed is not None:
                return listed, best
        if not reading.chosen:
            linked = await self._hop(reading, snap)
            if linked:
                return _cited(question, linked, snap.passages), linked[0].probability
            short = reader.shortfall(reading.question, reading.scored, snap.doc_words)
            titles = [s.unit.title for s in reading.scored[:3]]
            text_ = reader.explain(short, titles) if reading.scored else abstain_text(docs)
            return QueryResult(question, text_, "abstain", evidence=Evidence("none", None, docs)), best
        return _cited(question, reading.chosen, snap.passages), best

    async def _hop(self, reading: Reading, snap: Snapshot) -> list[reader.Scored]:
        """When the best sentence is about what is asked but only names the setting that holds
        the answer ("... fails `failureThreshold` consecutive probes"), the sentence elsewhere that
        gives that setting's value ("`failureThreshold` (3)"), read after it; [] when none does."""
        found = reader.bridge(reading.scored, self.local.model)
        if found is None:
            return []
        via, names = found
        low = [n.lower() for n in names]
        passages = [
            p for p in snap.passages if p.passage_id != via.unit.passage_id and any(n in p.text.lower() for n in low)
        ]
        if not passages:
            return []
        units = await asyncio.to_thread(self.local.index.get, passages)
        scored = reader.score_units(
            reading.question, [p.passage_id for p in passages], units, snap.doc_words, self.local.model
        )
        other = reader.hop(via, names, scored)
        return [via, other] if other is not None else []

    async def _list(self, question: str, reading: Reading, passages: list[StoredPassage]) -> QueryResult | None:
        """Every item of the section(s) of the best document that the question asks for; None when
        the best sentence does not clear the bar (the question is then read as a plain one)."""
        best = next((s for s in reading.scored if reader.can_answer(s.features)), None)
        if best is None or best.probability < self.local.model.threshold:
            return None
        doc_passages = [p for p in passages if p.doc_id == best.unit.doc_id]
        units = await asyncio.to_thread(self.local.index.get, doc_passages)
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
        return _cited(question, chosen, passages, data)

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
                self.local.read, question, found, ranked_passages, snap.bm25.idf, snap.doc_words
            )
            if reading.scored:
                listed = await self._list(question, reading, snap.passages)
                if listed is not None:
                    return replace(listed, fallback=fallback)
        scored = scored[: min(top_k, self.relevance.max_passages)]
        if not scored:
            return QueryResult(
                question, abstain_text(docs), "abstain", fallback=fallback, evidence=Evidence("none", None, docs)
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
                question, abstain_text(docs), "abstain", fallback=fallback, evidence=Evidence("none", None, docs)
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


def _cited(
    question: str,
    chosen: list[reader.Scored],
    passages: list[StoredPassage],
    data: dict[str, Any] | None = None,
) -> QueryResult:
    """The chosen sentences as the answer, each with its passage's citation number; with `data`
    (an enumeration) every item numbered."""
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


def _doc_titles(passages: list[StoredPassage]) -> dict[str, Any]:
    return {"documents": sorted({p.title for p in passages})}
