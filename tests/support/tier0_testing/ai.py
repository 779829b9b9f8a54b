"""Test support, never a production default: a tiny deterministic embedder (hashed bag of words)
for unit tests, and an in-memory fake of the Cohere v2 HTTP API for `httpx.MockTransport`.

`provider_choice.build_providers` never returns the embedder; tests construct it explicitly so that
pure logic (fusion, caching, query building) is tested in milliseconds without the model.
"""

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from tier0_services.ai.local_model import WordVectors
from tier0_services.ai.providers import InputType, Vectors

_WORD = re.compile(r"[a-z0-9]+")
_READER_WORD = re.compile(r"[a-z0-9]+(?:[.'_-][a-z0-9]+)*")


class HashingEmbedder:
    def __init__(self, dimension: int = 64) -> None:
        self.dimension = dimension

    @property
    def name(self) -> str:
        return f"test-hashing-{self.dimension}"

    @property
    def supports_images(self) -> bool:
        return False

    def embed_texts(self, texts: list[str], input_type: InputType) -> Vectors:
        del input_type
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dimension] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: Vectors = out / np.clip(norms, 1e-12, None)
        return result

    def embed_images(self, data_uris: list[str]) -> Vectors:
        raise NotImplementedError

    def encode(self, texts: list[str]) -> tuple[Vectors, list[WordVectors]]:
        """The reader's interface: each word's vector is its own hashed one-hot row (a word
        aligns with itself only)."""
        out = []
        for t in texts:
            found = [(m.group(0), m.start()) for m in _READER_WORD.finditer(t.lower())]
            rows = (
                self.embed_texts([w for w, _ in found], "search_document") if found else np.zeros((0, self.dimension))
            )
            out.append(WordVectors([w for w, _ in found], [s for _, s in found], rows.astype(np.float32)))
        return self.embed_texts(texts, "search_document"), out

    def encode_query(self, text: str) -> tuple[Vectors, WordVectors]:
        vectors, words = self.encode([text])
        return vectors[0], words[0]

    def encode_query_with(self, text: str, others: list[str]) -> tuple[Vectors, WordVectors, Vectors]:
        vectors, words = self.encode([text, *others])
        return vectors[0], words[0], vectors[1:]


class FakeCohere:
    """An in-memory Cohere v2 API for `httpx.MockTransport`: records every request, answers embed /
    rerank / chat in the real response shapes, and fails on demand (`fail["embed"] = 429`, or
    `"timeout"`), so tests drive the real SDK through its real HTTP layer."""

    def __init__(self, dimension: int = 32) -> None:
        self.requests: list[tuple[str, dict[str, Any], httpx.Headers]] = []
        self.fail: dict[str, int | str] = {}
        self.embedder = HashingEmbedder(dimension)
        self.chat_reply: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle), base_url="https://api.cohere.com")

    def calls(self, endpoint: str) -> list[dict[str, Any]]:
        return [body for name, body, _ in self.requests if name == endpoint]

    def handle(self, request: httpx.Request) -> httpx.Response:
        endpoint = request.url.path.rsplit("/", 1)[-1]
        body: dict[str, Any] = json.loads(request.content or b"{}")
        self.requests.append((endpoint, body, request.headers))
        failure = self.fail.get(endpoint)
        if failure == "timeout":
            raise httpx.ReadTimeout("fake read timeout", request=request)
        if isinstance(failure, int):
            return httpx.Response(failure, json={"message": f"fake failure {failure}"})
        if endpoint == "embed":
            inputs = body.get("texts") or body.get("images") or []
            vectors = self.embedder.embed_texts([str(x) for x in inputs], "search_document")
            return httpx.Response(
                200,
                json={
                    "id": "fake-embed",
                    "response_type": "embeddings_by_type",
                    "embeddings": {"float": vectors.tolist()},
                    "texts": body.get("texts") or [],
                    "meta": {"api_version": {"version": "2"}},
                },
            )
        if endpoint == "rerank":
            docs = [str(d) for d in body["documents"]]
            query = self.embedder.embed_texts([body["query"]], "search_query")[0]
            scores = self.embedder.embed_texts(docs, "search_document") @ query
            order = sorted(range(len(docs)), key=lambda i: -float(scores[i]))[: body.get("top_n") or len(docs)]
            results = [{"index": i, "relevance_score": max(0.0, min(1.0, float(scores[i])))} for i in order]
            return httpx.Response(200, json={"id": "fake-rerank", "results": results, "meta": {}})
        if endpoint == "chat":
            if self.chat_reply is not None:
                return httpx.Response(200, json=self.chat_reply(body))
            first = body["documents"][0]
            snippet = first["data"]["snippet"]
            return httpx.Response(
                200,
                json={
                    "id": "fake-chat",
                    "finish_reason": "COMPLETE",
                    "message": {
                        "role": "assistant",
                        "content": [{"type": "text", "text": snippet}],
                        "citations": [
                            {
                                "start": 0,
                                "end": len(snippet),
                                "text": snippet,
                                "sources": [{"type": "document", "id": first["id"], "document": first["data"]}],
                            }
                        ],
                    },
                },
            )
        return httpx.Response(404, json={"message": f"no fake for {request.url.path}"})
