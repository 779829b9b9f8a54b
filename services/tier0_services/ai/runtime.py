"""The AI features' share of the region API lifespan: build once, keep on `app.state.ai`, stop.

`start()` never fails because Redis is down (the API must come up and answer 503 meanwhile): the
RediSearch probe is repeated on first use and the sample/folder loading runs in a background task
that waits for Redis (in a cluster the API often starts before its Redis answers) and logs a
failure. With `load_samples` the labelled samples (images, corpus, a 12,000-line access log) go
into whichever of those was empty when the first region API found the dataset on a primary; that
plan is kept in Redis (`keys.AI_SAMPLES`) and replicates with the data, so the API of whichever
region is primary finishes it, across a transition in the middle of the loading. The access-log
recorder starts after that judgement, as its first entry would make the logs look loaded. The
local model is run once before `start()` returns, and the caches are warmed after the first
loading pass, so the first request costs what the others do. `ready` is set then (on a replica,
after its first answer: the loading goes on in the background until the plan is complete).
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tier0_contract import keys
from tier0_services import aio, rediserrors
from tier0_services.ai import images as images_mod
from tier0_services.ai import local_model
from tier0_services.ai.diagnostics import Diagnostics
from tier0_services.ai.documents import DocumentReader, Relevance
from tier0_services.ai.live import LiveData
from tier0_services.ai.logs import sample as logs_sample
from tier0_services.ai.logs.recorder import AccessLogRecorder
from tier0_services.ai.logs.store import AccessLogs
from tier0_services.ai.provider_choice import build_providers
from tier0_services.ai.providers import Providers, ProviderUnavailableError
from tier0_services.ai.rag import corpus as corpus_mod
from tier0_services.ai.rag import router as router_mod
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings
from tier0_services.ai.vector_index import CatalogFullError, VectorIndex, redisearch_available

log = logging.getLogger(__name__)
SAMPLE_LOG_ENTRIES = 12_000
LOADING_RETRY_FIRST_S = 0.5
LOADING_RETRY_MAX_S = 5.0
REPLICA_POLL_S = 2.0
"""How often a replica region's API checks whether it was promoted before the samples were complete."""
WARM_UP_QUESTIONS = (
    "warm up",
    "How is the retrieval path warmed up before the first request?",
    "Which documents describe the operations, the safety rules and the error codes of the sites, and what "
    "do they say about inspections, hard hats and failover?",
)


@dataclass
class AIRuntime:
    redis: Redis
    settings: AISettings
    providers: Providers
    images: images_mod.ImageCatalog
    corpus: corpus_mod.Corpus
    logs: AccessLogs
    """Log import and the log endpoints' reads."""
    documents: DocumentReader
    """Adding documents, answering from them."""
    diagnostics: Diagnostics
    """Questions: routed to the documents, the logs or the live telemetry."""
    recorder: AccessLogRecorder | None
    vector_backend: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    loaded: list[str] = field(default_factory=list)
    """What the start-up loading put into an empty Redis (`images`, `corpus`, `logs`)."""

    async def _startup_loading(self) -> None:
        try:
            await self._load_until_complete()
        except (RedisError, OSError, ProviderUnavailableError, CatalogFullError) as exc:
            log.warning("AI start-up loading failed (retry with the CLI or the API): %s", rediserrors.reason(exc))
        finally:
            self.ready.set()

    async def _load_until_complete(self) -> None:
        """Carry out the dataset's sample plan (`keys.AI_SAMPLES`) whenever this region's Redis is
        the primary, until it is complete. Tried again with backoff while Redis does not answer or
        refuses writes (a primary whose replica has not connected yet answers NOREPLICAS). On a
        replica it waits: the primary's API finishes the plan and replication brings it, or this
        Redis is promoted first (a transition in the middle of loading) and this API finishes it.
        `ready` is set after the first pass that got an answer (loaded, or a replica), warmed."""
        delay = LOADING_RETRY_FIRST_S
        warned = said_replica = False
        folder_loaded = self.settings.corpus_dir is None
        while True:
            try:
                primary = await _is_primary(self.redis)
                plan = await self._plan(primary)
                if self.recorder is not None and plan is not None:
                    # Only into a dataset that has a plan: the entries a replica's recorder keeps go to
                    # the primary on promotion, and before the plan they would make the logs look loaded.
                    self.recorder.start()
                if primary and plan is not None and plan.missing:
                    for kind in plan.missing:
                        await self._load(kind)
                        self.loaded.append(kind)
                    log.info("AI samples loaded into this region's Redis: %s", ", ".join(plan.missing))
                    plan = await self._plan(primary)
                if primary and not folder_loaded and self.settings.corpus_dir is not None:
                    for doc in corpus_mod.folder_documents(self.settings.corpus_dir):
                        await self.corpus.add(doc)
                    folder_loaded = True
                if not self.ready.is_set():
                    await self._warm_once()
                if plan is not None and plan.complete and folder_loaded:
                    return
                if not primary and not said_replica:
                    log.info("AI start-up loading: this region's Redis is a replica; the samples come from the primary")
                    said_replica = True
                delay = REPLICA_POLL_S
            except (RedisError, OSError) as exc:
                if not warned:
                    log.warning(
                        "AI start-up loading waits for a writable Redis (%s); retrying every %g s at most",
                        rediserrors.reason(exc),
                        LOADING_RETRY_MAX_S,
                    )
                    warned = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, LOADING_RETRY_MAX_S)

    async def _warm_once(self) -> None:
        """Warm the caches, then `ready`; a failure is logged, not retried (the first request pays)."""
        try:
            await self.warm_caches()
        except (RedisError, OSError, ProviderUnavailableError) as exc:
            log.warning("AI warm-up failed (the first request loads what it needs): %s", rediserrors.reason(exc))
        self.ready.set()

    async def _plan(self, primary: bool) -> "SamplePlan | None":
        """The dataset's plan: judged once per dataset, by the first API to find it on a primary
        without one (what is empty then gets the samples); None on a replica whose primary has made
        none yet."""
        if not self.settings.load_samples:
            return NOTHING_PLANNED
        fields = await self.redis.hgetall(keys.AI_SAMPLES)  # type: ignore[misc]
        if b"plan" not in fields:
            if not primary:
                return None
            empty = await _empty_kinds(self.redis)
            await self.redis.hsetnx(keys.AI_SAMPLES, "plan", ",".join(empty))  # type: ignore[misc]
            fields = await self.redis.hgetall(keys.AI_SAMPLES)  # type: ignore[misc]
        return SamplePlan.from_fields(fields)

    async def _load(self, kind: str) -> None:
        """One kind of sample, then its mark. Images and documents are keyed by id, so loading them
        again after a cut is harmless; the log sample and its mark are one transaction."""
        mark = (keys.AI_SAMPLES, kind, datetime.now(UTC).isoformat())
        if kind == "images":
            await self.images.ingest_samples()
        elif kind == "corpus":
            for doc in corpus_mod.sample_documents():
                await self.corpus.add(doc)
        else:
            log_sample = logs_sample.generate(SAMPLE_LOG_ENTRIES, seed=7)
            await self.logs.import_entries(log_sample.entries, atomic_marker=mark)
            return
        await self.redis.hset(*mark)  # type: ignore[misc]

    async def warm_caches(self) -> None:
        """Load what the first question and search would otherwise load (BM25 statistics, the
        vector snapshot or the RediSearch index check), so the first request costs what the rest do.
        Local providers only: with Cohere it would spend API calls."""
        if not self.settings.warm_up or self.providers.kind != "local":
            return
        passages = await self.corpus.all_passages()
        await asyncio.to_thread(self.documents.local.prime, passages)
        # Questions of a few lengths: onnxruntime plans each new input shape on its first run.
        for question in WARM_UP_QUESTIONS:
            await self.diagnostics.query(question)
        await self.images.search("warm up the image search", 1)

    async def stop(self) -> None:
        for task in self._tasks:
            await aio.cancel_and_wait(task)
        if self.recorder is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.recorder.stop()


SAMPLE_KINDS = ("images", "corpus", "logs")


@dataclass(frozen=True)
class SamplePlan:
    """`keys.AI_SAMPLES` read back: the kinds planned and those already loaded."""

    wanted: tuple[str, ...]
    done: frozenset[str]

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> "SamplePlan":
        wanted = tuple(k for k in fields.get(b"plan", b"").decode().split(",") if k in SAMPLE_KINDS)
        return cls(wanted=wanted, done=frozenset(k.decode() for k in fields if k.decode() in SAMPLE_KINDS))

    @property
    def missing(self) -> list[str]:
        return [k for k in self.wanted if k not in self.done]

    @property
    def complete(self) -> bool:
        return not self.missing


NOTHING_PLANNED = SamplePlan(wanted=(), done=frozenset())


async def _is_primary(redis: Redis) -> bool:
    info = await redis.info("replication")
    return bool(info.get("role") == "master")


async def _empty_kinds(redis: Redis) -> list[str]:
    """Which of images, corpus and logs hold nothing yet."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.scard(keys.IMAGE_IDS)
        pipe.scard(keys.DOCUMENT_IDS)
        pipe.exists(keys.LOGS_TOTAL)
        counts = await pipe.execute()
    return [kind for kind, n in zip(SAMPLE_KINDS, counts, strict=True) if n == 0]


def _local_reader(providers: Providers, settings: AISettings) -> SentenceReader:
    """The local reader the providers hold (the local answerer, or Cohere's fallback), else one
    on the shared local model: it also routes every question."""
    for answerer in (providers.answerer, providers.fallback_answerer):
        if isinstance(answerer, SentenceReader):
            return answerer
    return SentenceReader(local_model.shared(settings.local_threads))


def _warm_model(runtime: "AIRuntime") -> None:
    """Load the local model, run it once (onnxruntime's first run costs ~1 s: graph optimisation,
    allocations) and embed the routing examples, so none of it lands on the first request."""
    runtime.diagnostics.router.prime()
    if runtime.providers.kind == "local":
        runtime.providers.embedder.embed_texts(["warm up the local model"], "search_query")


async def start(redis: Redis, settings: AISettings, providers: Providers | None = None) -> AIRuntime:
    providers = providers or build_providers(settings)
    try:
        use_ft: bool | None = await redisearch_available(redis)
    except (RedisError, OSError):
        use_ft = None  # probed again on first use
    model = providers.embedder.name
    image_index = VectorIndex(redis, images_mod.SPEC, use_ft, model=model, max_items=settings.images_max)
    passage_index = VectorIndex(redis, corpus_mod.SPEC, use_ft, model=model, max_items=settings.passages_max)
    corpus = corpus_mod.Corpus(redis, providers.embedder, passage_index)
    relevance = Relevance(min_cosine=settings.min_cosine, min_rerank=settings.min_rerank)
    local_reader = _local_reader(providers, settings)
    route_by = router_mod.Router(local_reader.encoder)
    recorder = AccessLogRecorder(redis, max_days=settings.logs_max_days) if settings.record_access_log else None
    documents = DocumentReader(providers, corpus, relevance, local_reader)
    runtime = AIRuntime(
        redis=redis,
        settings=settings,
        providers=providers,
        images=images_mod.ImageCatalog(redis, providers.embedder, image_index),
        corpus=corpus,
        logs=AccessLogs(redis, max_days=settings.logs_max_days),
        documents=documents,
        diagnostics=Diagnostics(redis, route_by, documents, LiveData(redis)),
        recorder=recorder,
        vector_backend=image_index.backend,
    )
    if settings.warm_up:
        await asyncio.to_thread(_warm_model, runtime)
    runtime._tasks.append(asyncio.create_task(runtime._startup_loading(), name="ai-startup-loading"))
    return runtime


async def get_ai(request: Request) -> AIRuntime:
    # async: a plain def dependency would run in FastAPI's thread pool on every request.
    runtime: AIRuntime = request.app.state.ai
    return runtime


AIDep = Annotated[AIRuntime, Depends(get_ai)]
