"""The local answerer: an extractive answer composed of sentences copied from the cited passages.

It never writes a fact of its own: every sentence of the answer is a sentence of a retrieved
passage, chosen for its similarity to the question (embeddings plus shared content words), tagged
with the passage's citation number. Numbers in the answer are therefore the corpus's numbers.
"""

from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from tier0_services.ai.providers import Answer, Embedder, Passage, Vectors
from tier0_services.ai.rag import text

MAX_SENTENCES = 3
_BROAD = frozenset({"list", "describe", "summarize", "summarise", "explain", "overview"})


class ExtractiveAnswerer:
    def __init__(self, embedder: Embedder, min_similarity: float = 0.25, cache_size: int = 4096) -> None:
        self.embedder = embedder
        self.min_similarity = min_similarity
        # Corpus sentences are asked about again and again: their vectors are kept (bounded).
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._cache_size = cache_size

    @property
    def name(self) -> str:
        return f"extractive/{self.embedder.name}"

    def _sentence_vectors(self, sentences: list[str]) -> Vectors:
        missing = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        if missing:
            for sentence, vector in zip(missing, self.embedder.embed_texts(missing, "search_document"), strict=True):
                self._cache[sentence] = vector
        for sentence in sentences:
            self._cache.move_to_end(sentence)
        out: Vectors = np.vstack([self._cache[s] for s in sentences])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def prime(self, passage_texts: list[str]) -> None:
        """Embed every sentence of these passages now (start-up), not on the first question."""
        sentences = [s for t in passage_texts for s in text.sentences(t)]
        for start in range(0, len(sentences), 256):
            self._sentence_vectors(sentences[start : start + 256])

    def answer(self, question: str, passages: list[Passage]) -> Answer:
        candidates: list[tuple[int, int, str]] = []  # (passage ref, order, sentence)
        for p in passages:
            for n, sentence in enumerate(text.sentences(p.text)):
                if not sentence.upper().startswith(text.SAMPLE_LABEL):
                    candidates.append((p.ref, n, sentence))
        if not candidates:
            return Answer(text="", abstained=True)
        matrix = self._sentence_vectors([c[2] for c in candidates])
        query = self.embedder.embed_texts([question], "search_query")[0]
        cosine = matrix @ query
        q_terms = set(text.terms(question))
        scored = []
        for (ref, n, sentence), cos in zip(candidates, cosine, strict=True):
            overlap = len(q_terms & set(text.terms(sentence))) / max(len(q_terms), 1)
            scored.append((float(cos) + 0.3 * overlap, ref, n, sentence))
        scored.sort(key=lambda s: -s[0])
        # "List ..." / "Describe ..." questions want several statements, others the closest few.
        wide = bool(text.words(question)[:1] and text.words(question)[0] in _BROAD)
        limit, band = (6, 0.3) if wide else (MAX_SENTENCES, 0.15)
        best = [s for s in scored if s[0] >= self.min_similarity][:limit]
        if not best:
            return Answer(text="", abstained=True)
        # Keep only sentences close to the best one, then restore document order for readability.
        top = best[0][0]
        chosen = sorted((s for s in best if s[0] >= top - band), key=lambda s: (s[1], s[2]))
        body = " ".join(f"{sentence} [{ref}]" for _, ref, _, sentence in chosen)
        cited = sorted({ref for _, ref, _, _ in chosen})
        return Answer(text=f"According to the documents: {body}", cited=cited)
