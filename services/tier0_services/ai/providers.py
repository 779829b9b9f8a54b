"""The three provider interfaces the AI features are written against, and their shared errors.

Kept tiny and synchronous on purpose: the local model is CPU-bound and the Cohere SDK client is
synchronous, so callers run them in a worker thread (`asyncio.to_thread`) and never care which
provider they hold.
"""

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

InputType = Literal["search_document", "search_query"]
Vectors = npt.NDArray[np.float32]


class ProviderUnavailableError(Exception):
    """A provider could not answer (rate limited, timed out, unreachable): `reason` says which."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


class Embedder(Protocol):
    """Text (and maybe image) embeddings, L2-normalised float32 rows."""

    @property
    def name(self) -> str:
        """Model identity stored beside every vector (vectors of two models never mix)."""
        ...

    @property
    def supports_images(self) -> bool: ...

    def embed_texts(self, texts: list[str], input_type: InputType) -> Vectors: ...

    def embed_images(self, data_uris: list[str]) -> Vectors:
        """Pixels as `data:image/png;base64,...` URIs; only when `supports_images`."""
        ...


class Reranker(Protocol):
    @property
    def name(self) -> str: ...

    def rerank(self, query: str, documents: list[str], top_n: int) -> list[tuple[int, float]]:
        """(index into `documents`, relevance in [0, 1]) best first."""
        ...


@dataclass(frozen=True)
class Passage:
    """A retrieved corpus passage handed to an answerer; `ref` is its citation number (1-based)."""

    ref: int
    passage_id: str
    doc_id: str
    title: str
    text: str
    score: float


@dataclass(frozen=True)
class Answer:
    text: str
    cited: list[int] = field(default_factory=list)
    """`Passage.ref`s the answer actually used (subset of those given)."""
    abstained: bool = False


class Answerer(Protocol):
    @property
    def name(self) -> str: ...

    def answer(self, question: str, passages: list[Passage]) -> Answer:
        """Answer from `passages` only, citing them; abstain when they do not support an answer."""
        ...


@dataclass(frozen=True)
class Providers:
    """What `provider_choice.build_providers` chose at start-up."""

    kind: Literal["cohere", "local", "test"]
    embedder: Embedder
    answerer: Answerer
    reranker: Reranker | None = None
    fallback_answerer: Answerer | None = None
    """Used when `answerer` is unavailable (e.g. Cohere chat rate limited): the local extractive one."""
