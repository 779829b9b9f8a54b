"""The document corpus: notes split into passages, stored in Redis with their embeddings, and
retrieved by BM25 and embeddings fused with reciprocal rank fusion.

Documents come from the API (`POST /api/diagnostics/documents`), from a folder read at start-up
(`TIER0_AI_CORPUS_DIR`) and from the labelled samples. Re-adding a document with the same text is
a no-op (its sha256 is kept); changed text replaces its passages. BM25 statistics live in process
memory and are rebuilt when the corpus version counter moves.
"""

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai import vectors
from tier0_services.ai.providers import Embedder
from tier0_services.ai.rag import text
from tier0_services.ai.rag.bm25 import BM25, rrf
from tier0_services.ai.vector_index import IndexSpec, VectorIndex

SPEC = IndexSpec(
    prefix=keys.PASSAGE_PREFIX,
    ids_key=keys.PASSAGE_IDS,
    version_key=keys.CORPUS_VERSION,
    index_name=keys.PASSAGE_INDEX,
    tag_fields=("doc_id", "model"),
    max_items=keys.PASSAGES_MAX,
    catalog="document corpus",
    items="passages",
    bound_setting="TIER0_AI_PASSAGES_MAX",
)
DOC_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    body: str
    source: str = "api"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredPassage:
    passage_id: str
    doc_id: str
    title: str
    source: str
    text: str


@dataclass(frozen=True)
class Snapshot:
    """The corpus as of one version: its passages, their BM25 statistics and each document's
    words (the reader's entity checks)."""

    version: bytes | None
    passages: list[StoredPassage]
    bm25: BM25
    doc_words: dict[str, frozenset[str]]


@dataclass(frozen=True)
class Candidate:
    passage: StoredPassage
    fused: float
    cosine: float
    bm25: float


def parse_note(doc_id: str, raw: str, source: str) -> Document:
    """A markdown note: `# Title` first line, optional `tags: a, b` line, then the body."""
    lines = raw.strip().splitlines()
    title = doc_id
    tags: tuple[str, ...] = ()
    if lines and lines[0].startswith("#"):
        title = lines.pop(0).lstrip("#").strip()
    if lines and lines[0].lower().startswith("tags:"):
        tags = tuple(t.strip() for t in lines.pop(0)[5:].split(",") if t.strip())
    return Document(doc_id=doc_id, title=title, body="\n".join(lines).strip(), source=source, tags=tags)


def sample_documents() -> list[Document]:
    folder = resources.files("tier0_services.ai").joinpath("samples/corpus")
    return [
        parse_note(Path(entry.name).stem, entry.read_text(), f"sample:{entry.name}")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".md")
    ]


def folder_documents(folder: Path) -> list[Document]:
    return [
        parse_note(path.stem, path.read_text(encoding="utf-8"), f"file:{path.name}")
        for path in sorted(folder.iterdir())
        if path.suffix in {".md", ".txt"} and DOC_ID.match(path.stem)
    ]


class Corpus:
    def __init__(self, redis: Redis, embedder: Embedder, index: VectorIndex) -> None:
        self.redis = redis
        self.embedder = embedder
        self.index = index
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def add(self, doc: Document) -> tuple[int, bool]:
        """Store a document's passages with embeddings: (passages, changed). `CatalogFullError`
        (nothing stored) when its new passages would take the corpus past its bound."""
        if not DOC_ID.match(doc.doc_id):
            raise ValueError(f"bad doc_id {doc.doc_id!r}: letters, digits, '_', '.', '-' only")
        sha = hashlib.sha256(f"{doc.title}\n{doc.body}\n{self.embedder.name}".encode()).hexdigest()
        old_sha, old_count = await self.redis.hmget(keys.document(doc.doc_id), ["sha256", "passages"])  # type: ignore[misc]
        if old_sha is not None and old_sha.decode() == sha:
            return int(old_count or 0), False
        chunks = text.chunk(doc.body) or [doc.title]
        ids = [f"{doc.doc_id}#{n}" for n in range(len(chunks))]
        stale = [f"{doc.doc_id}#{n}" for n in range(len(chunks), int(old_count or 0))]
        # Checked before embedding too (a full corpus costs no provider calls); `upsert` checks
        # again atomically with the write, which also drops the stale passages.
        await self.index.check_room(ids, stale)
        matrix = await asyncio.to_thread(
            self.embedder.embed_texts, [f"{doc.title}. {c}" for c in chunks], "search_document"
        )
        await self.index.upsert(
            [
                (
                    ids[n],
                    {
                        vectors.EMBEDDING_FIELD: vectors.to_bytes(vec),
                        "doc_id": doc.doc_id,
                        "title": doc.title,
                        "source": doc.source,
                        "text": chunk,
                        "model": self.embedder.name,
                    },
                )
                for n, (chunk, vec) in enumerate(zip(chunks, matrix, strict=True))
            ],
            remove=stale,
        )
        await self.redis.hset(
            keys.document(doc.doc_id),
            mapping={
                "title": doc.title,
                "source": doc.source,
                "tags": ",".join(doc.tags),
                "passages": len(chunks),
                "sha256": sha,
                "added_at": time.time(),
            },
        )  # type: ignore[misc]
        await self.redis.sadd(keys.DOCUMENT_IDS, doc.doc_id)  # type: ignore[misc]
        return len(chunks), True

    async def documents(self) -> list[dict[str, str | int]]:
        # Whole reads here and in `snapshot` are fine: the corpus holds at most `index.max_items`
        # passages (`keys.PASSAGES_MAX`), and every document at least one of them.
        ids = sorted(m.decode() for m in await self.redis.smembers(keys.DOCUMENT_IDS))  # type: ignore[misc]
        async with self.redis.pipeline(transaction=False) as pipe:
            for doc_id in ids:
                pipe.hmget(keys.document(doc_id), ["title", "source", "passages"])
            replies = await pipe.execute()
        return [
            {"doc_id": d, "title": t.decode(), "source": s.decode(), "passages": int(p)}
            for d, (t, s, p) in zip(ids, replies, strict=True)
            if t is not None
        ]

    async def snapshot(self) -> Snapshot:
        version = await self.redis.get(keys.CORPUS_VERSION)
        cached = self._snapshot
        if cached is not None and cached.version == version and version is not None:
            return cached
        async with self._lock:
            ids = sorted(m.decode() for m in await self.redis.smembers(keys.PASSAGE_IDS))  # type: ignore[misc]
            async with self.redis.pipeline(transaction=False) as pipe:
                for pid in ids:
                    pipe.hmget(keys.passage(pid), ["doc_id", "title", "source", "text"])
                replies = await pipe.execute()
            passages = [
                StoredPassage(pid, *(v.decode() for v in values))
                for pid, values in zip(ids, replies, strict=True)
                if values[0] is not None
            ]
            bm25 = BM25([f"{p.title} {p.text}" for p in passages])
            words: dict[str, set[str]] = {}
            for p in passages:
                # A document's name is part of what it is about: "hse-incidents-2024" holds HSE.
                known = set(text.words(p.title)) | set(text.words(p.doc_id.replace("-", " ").replace("_", " ")))
                words.setdefault(p.doc_id, known).update(text.words(p.text))
            snap = Snapshot(version, passages, bm25, {d: frozenset(w) for d, w in words.items()})
            self._snapshot = snap
            return snap

    async def _passages(self) -> tuple[list[StoredPassage], BM25]:
        snap = await self.snapshot()
        return snap.passages, snap.bm25

    async def all_passages(self) -> list[StoredPassage]:
        return (await self._passages())[0]

    async def retrieve(self, question: str, k: int = 8, pool: int = 20) -> list[Candidate]:
        """Top `k` passages by RRF of the BM25 and the embedding rankings (each `pool` deep)."""
        passages, bm25 = await self._passages()
        if not passages:
            return []
        position = {p.passage_id: i for i, p in enumerate(passages)}
        lexical = bm25.top(question, pool)
        query = (await asyncio.to_thread(self.embedder.embed_texts, [question], "search_query"))[0]
        dense, _ = await self.index.search(np.asarray(query), pool, {"model": self.embedder.name})
        dense_rank = [position[pid] for pid, _ in dense if pid in position]
        cosine = {position[pid]: score for pid, score in dense if pid in position}
        lex_score = dict(lexical)
        fused = rrf([[i for i, _ in lexical], dense_rank])[:k]
        return [Candidate(passages[i], score, cosine.get(i, 0.0), lex_score.get(i, 0.0)) for i, score in fused]
