"""The local answerer: the sentence, item or row of the documents that answers, chosen by the
late-interaction reader (`rag.reader`) and copied with its citation number.

It never writes a fact of its own: the answer is the passages' own sentences, so its numbers are
the corpus's numbers. Used as the answerer of the local provider (with the routing, slots and
corpus statistics `diagnostics` gives it) and as the fallback when Cohere chat is unavailable
(`answer`, the `Answerer` protocol: only the passages).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tier0_services.ai.local_model import WordVectors
from tier0_services.ai.providers import Answer, Passage, Vectors
from tier0_services.ai.rag import reader, slots, text


class LocalEncoder(Protocol):
    @property
    def name(self) -> str: ...

    def encode(self, texts: list[str]) -> tuple[Vectors, list[WordVectors]]: ...

    def encode_query(self, text: str) -> tuple[Vectors, WordVectors]: ...

    def encode_query_with(self, text: str, others: list[str]) -> tuple[Vectors, WordVectors, Vectors]: ...


@dataclass(frozen=True)
class Reading:
    """What the reader found for one question: every scored unit (best first) and the ones that
    answer ([] = abstain)."""

    question: reader.Question
    scored: list[reader.Scored]
    chosen: list[reader.Scored]


class SentenceReader:
    def __init__(
        self, encoder: LocalEncoder, model: reader.Model | None = None, max_rows: int = reader.MAX_WORD_VECTORS
    ) -> None:
        self.encoder = encoder
        self.model = model or reader.load_model()
        self.index = reader.UnitIndex(encoder, max_rows)

    @property
    def name(self) -> str:
        return f"reader/{self.encoder.name}"

    def prime(self, passages: Sequence[Any]) -> None:
        """Read every unit of these passages now (start-up, a new document), not on a question."""
        for start in range(0, len(passages), 256):
            self.index.get(passages[start : start + 256])

    def read(
        self,
        question: str,
        found: slots.Slots,
        ranked: Sequence[Any],
        idf: dict[str, float],
        doc_words: dict[str, frozenset[str]],
    ) -> Reading:
        vector, words = self.encoder.encode_query(question)
        q = reader.question(question, vector, words, found, idf)
        units = self.index.get(ranked)
        scored = reader.score_units(q, [p.passage_id for p in ranked], units, doc_words, self.model)
        return Reading(q, scored, reader.answer_units(scored, self.model, entities=q.entities))

    def answer(self, question: str, passages: list[Passage]) -> Answer:
        if not passages:
            return Answer(text="", abstained=True)
        doc_words: dict[str, frozenset[str]] = {}
        for p in passages:
            doc_words[p.doc_id] = doc_words.get(p.doc_id, frozenset()) | frozenset(text.words(f"{p.title} {p.text}"))
        reading = self.read(question, slots.extract(question), passages, {}, doc_words)
        if not reading.chosen:
            return Answer(text="", abstained=True)
        ref_of = {p.passage_id: p.ref for p in passages}
        return Answer(
            text=compose(reading.chosen, ref_of), cited=sorted({ref_of[s.unit.passage_id] for s in reading.chosen})
        )


def compose(chosen: Sequence[reader.Scored], ref_of: dict[str, int]) -> str:
    body = " ".join(f"{s.unit.text} [{ref_of[s.unit.passage_id]}]" for s in chosen)
    return f"According to the documents: {body}"
