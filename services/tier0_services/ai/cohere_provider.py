"""Cohere (SDK v2 `ClientV2`) behind the provider interfaces: embed, rerank, chat with documents.

Every call goes through `_call`, which turns the SDK's and httpx's failures (429, timeouts,
5xx, connection errors) into `ProviderUnavailableError` with a short reason; the services then
fall back (rerank -> fused order, chat -> local extractive answer) or answer 503 with the reason
(embeddings: vectors of two models never mix). The SDK's own retries are off so that a rate limit
answers quickly. Embedding requests carry at most 96 inputs (Cohere's limit per call).
"""

from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import numpy as np

from tier0_services.ai.providers import Answer, InputType, Passage, ProviderUnavailableError, Vectors

EMBED_BATCH = 96
T = TypeVar("T")


def make_client(api_key: str, timeout_s: float, httpx_client: httpx.Client | None = None) -> Any:
    """The real SDK client; tests pass an `httpx.Client(transport=httpx.MockTransport(...))`."""
    import cohere

    return cohere.ClientV2(
        api_key=api_key,
        timeout=timeout_s,
        httpx_client=httpx_client or httpx.Client(timeout=timeout_s),
        log_warning_experimental_features=False,
    )


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    if status == 429:
        return "rate limited (HTTP 429)"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return f"unreachable ({type(exc).__name__})"
    if status is not None:
        return f"HTTP {status}"
    return f"{type(exc).__name__}: {exc}"[:200]


class _Cohere:
    def __init__(self, client: Any, what: str) -> None:
        self._client = client
        self._what = what

    def _call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return fn(**kwargs, request_options={"max_retries": 0})
        except Exception as exc:  # the SDK raises ApiError subclasses, httpx its own
            raise ProviderUnavailableError(f"cohere {self._what}", _reason(exc)) from exc


class CohereEmbedder(_Cohere):
    def __init__(self, client: Any, model: str = "embed-v4.0") -> None:
        super().__init__(client, "embed")
        self.model = model

    @property
    def name(self) -> str:
        return f"cohere/{self.model}"

    @property
    def supports_images(self) -> bool:
        return True

    def embed_texts(self, texts: list[str], input_type: InputType) -> Vectors:
        return self._embed(texts, lambda batch: {"texts": batch, "input_type": input_type})

    def embed_images(self, data_uris: list[str]) -> Vectors:
        return self._embed(data_uris, lambda batch: {"images": batch, "input_type": "image"})

    def _embed(self, items: list[str], args: Callable[[list[str]], dict[str, Any]]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(items), EMBED_BATCH):
            batch = items[start : start + EMBED_BATCH]
            response = self._call(self._client.embed, model=self.model, embedding_types=["float"], **args(batch))
            got = response.embeddings.float_ or []
            if len(got) != len(batch):
                raise ProviderUnavailableError("cohere embed", f"{len(got)} vectors for {len(batch)} inputs")
            rows.extend(got)
        out = np.asarray(rows, dtype=np.float32).reshape(len(items), -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: Vectors = out / np.clip(norms, 1e-12, None)
        return result


class CohereReranker(_Cohere):
    def __init__(self, client: Any, model: str = "rerank-v3.5") -> None:
        super().__init__(client, "rerank")
        self.model = model

    @property
    def name(self) -> str:
        return f"cohere/{self.model}"

    def rerank(self, query: str, documents: list[str], top_n: int) -> list[tuple[int, float]]:
        if not documents:
            return []
        response = self._call(self._client.rerank, model=self.model, query=query, documents=documents, top_n=top_n)
        return [(r.index, float(r.relevance_score)) for r in response.results]


class CohereAnswerer(_Cohere):
    """Chat grounded on the passages (`documents`), citations mapped back to passage refs."""

    SYSTEM = (
        "Answer only from the provided documents, briefly. If they do not contain the answer, "
        "say that the documents do not say. Never state a number that is not in the documents."
    )

    def __init__(self, client: Any, model: str = "command-r-plus-08-2024") -> None:
        super().__init__(client, "chat")
        self.model = model

    @property
    def name(self) -> str:
        return f"cohere/{self.model}"

    def answer(self, question: str, passages: list[Passage]) -> Answer:
        documents = [{"id": f"ref-{p.ref}", "data": {"title": p.title, "snippet": p.text}} for p in passages]
        response = self._call(
            self._client.chat,
            model=self.model,
            messages=[
                {"role": "system", "content": self.SYSTEM},
                {"role": "user", "content": question},
            ],
            documents=documents,
            temperature=0.0,
        )
        message = response.message
        text = "".join(getattr(c, "text", "") or "" for c in (message.content or [])).strip()
        cited: list[int] = []
        for citation in message.citations or []:
            for source in citation.sources or []:
                sid = str(getattr(source, "id", "") or "")
                if sid.startswith("ref-") and sid[4:].isdigit() and int(sid[4:]) not in cited:
                    cited.append(int(sid[4:]))
        # No citation means the model did not ground its reply: treat as an abstention.
        return Answer(text=text, cited=sorted(cited), abstained=not cited)
