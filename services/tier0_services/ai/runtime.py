"""The AI features' share of the region API lifespan: build once, keep on `app.state.ai`, stop.

`start()` never fails because Redis is down (the API must come up and answer 503 meanwhile): the
RediSearch probe is repeated on first use and the sample/folder loading runs in a background task
that waits for Redis (in a cluster the API often starts before its Redis answers) and logs a
failure. With `load_samples` the labelled samples (images, corpus, a 12,000-line access log) go
into whichever of those is empty on a primary; the access-log recorder starts after that check, as
its first entry would make the logs look loaded. The local model is run once before `start()`
returns, and the caches are warmed after the loading, so the first request costs what the others
do. `ready` is set when loading and warming have finished.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tier0_contract import keys
from tier0_services import rediserrors
from tier0_services.ai import images as images_mod
from tier0_services.ai.diagnostics import Diagnostics, Relevance
from tier0_services.ai.logs import sample as logs_sample
from tier0_services.ai.logs.recorder import AccessLogRecorder
from tier0_services.ai.provider_choice import build_providers
from tier0_services.ai.providers import Providers, ProviderUnavailableError
from tier0_services.ai.rag import corpus as corpus_mod
from tier0_services.ai.settings import AISettings
from tier0_services.ai.vector_index import VectorIndex, redisearch_available

log = logging.getLogger(__name__)
SAMPLE_LOG_ENTRIES = 12_000
LOADING_RETRY_FIRST_S = 0.5
LOADING_RETRY_MAX_S = 5.0
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
    diagnostics: Diagnostics
    recorder: AccessLogRecorder | None
    vector_backend: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    loaded: list[str] = field(default_factory=list)
    """What the start-up loading put into an empty Redis (`images`, `corpus`, `logs`)."""

    async def load_samples(self, empty: "Emptiness | None" = None) -> None:
        """The labelled samples, each only where its data is empty (all of them when `empty` is None)."""
        empty = empty or Emptiness(images=True, corpus=True, logs=True)
        if empty.images:
            await self.images.ingest_samples()
            self.loaded.append("images")
        if empty.corpus:
            for doc in corpus_mod.sample_documents():
                await self.corpus.add(doc)
            self.loaded.append("corpus")
        if empty.logs:
            log_sample = logs_sample.generate(SAMPLE_LOG_ENTRIES, seed=7)
            await self.diagnostics.import_entries(log_sample.entries)
            self.loaded.append("logs")

    async def _startup_loading(self) -> None:
        try:
            await self._load_when_writable()
            await self.warm_caches()
        except (RedisError, OSError, ProviderUnavailableError) as exc:
            log.warning("AI start-up loading failed (retry with the CLI or the API): %s", rediserrors.reason(exc))
        finally:
            self.ready.set()

    async def _load_when_writable(self) -> None:
        """The samples and the corpus folder, tried again with backoff while Redis does not answer or
        refuses writes (a primary whose replica has not connected yet answers NOREPLICAS); nothing
        on a replica, which gets the primary's data by replication. Emptiness is judged once, before
        the recorder writes its first entry; a retry loads only what is still missing."""
        empty: Emptiness | None = None
        delay = LOADING_RETRY_FIRST_S
        while True:
            try:
                primary = await _is_primary(self.redis)
                if primary and empty is None:
                    empty = await _emptiness(self.redis) if self.settings.load_samples else NOTHING_EMPTY
                if self.recorder is not None:
                    self.recorder.start()
                if not primary or empty is None:
                    return
                missing = empty.without(self.loaded)
                if missing.any:
                    await self.load_samples(missing)
                    log.info("AI samples loaded into the empty Redis: %s", ", ".join(self.loaded))
                if self.settings.corpus_dir is not None:
                    for doc in corpus_mod.folder_documents(self.settings.corpus_dir):
                        await self.corpus.add(doc)
                return
            except (RedisError, OSError) as exc:
                if delay == LOADING_RETRY_FIRST_S:
                    log.warning(
                        "AI start-up loading waits for a writable Redis (%s); retrying every %g s at most",
                        exc,
                        LOADING_RETRY_MAX_S,
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, LOADING_RETRY_MAX_S)

    async def warm_caches(self) -> None:
        """Load what the first question and search would otherwise load (BM25 statistics, the
        vector snapshot or the RediSearch index check), so the first request costs what the rest do.
        Local providers only: with Cohere it would spend API calls."""
        if not self.settings.warm_up or self.providers.kind != "local":
            return
        prime = getattr(self.providers.answerer, "prime", None)
        if prime is not None:
            passages = await self.corpus.all_passages()
            await asyncio.to_thread(prime, [p.text for p in passages])
        # Questions of a few lengths: onnxruntime plans each new input shape on its first run.
        for question in WARM_UP_QUESTIONS:
            await self.diagnostics.query(question)
        await self.images.search("warm up the image search", 1)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.recorder is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.recorder.stop()


@dataclass(frozen=True)
class Emptiness:
    images: bool
    corpus: bool
    logs: bool

    @property
    def any(self) -> bool:
        return self.images or self.corpus or self.logs

    def without(self, loaded: list[str]) -> "Emptiness":
        return Emptiness(
            images=self.images and "images" not in loaded,
            corpus=self.corpus and "corpus" not in loaded,
            logs=self.logs and "logs" not in loaded,
        )


NOTHING_EMPTY = Emptiness(images=False, corpus=False, logs=False)


async def _is_primary(redis: Redis) -> bool:
    info = await redis.info("replication")
    return bool(info.get("role") == "master")


async def _emptiness(redis: Redis) -> Emptiness:
    """Which of images, corpus and logs hold nothing yet."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.scard(keys.IMAGE_IDS)
        pipe.scard(keys.DOCUMENT_IDS)
        pipe.exists(keys.LOGS_TOTAL)
        images, docs, logs = await pipe.execute()
    return Emptiness(images=images == 0, corpus=docs == 0, logs=logs == 0)


def _warm_model(providers: Providers) -> None:
    """Load the local model and run it once: onnxruntime's first run costs ~1 s (graph
    optimisation, allocations), which would otherwise land on the first request."""
    if providers.kind == "local":
        providers.embedder.embed_texts(["warm up the local model"], "search_query")


async def start(redis: Redis, settings: AISettings, providers: Providers | None = None) -> AIRuntime:
    providers = providers or build_providers(settings)
    try:
        use_ft: bool | None = await redisearch_available(redis)
    except (RedisError, OSError):
        use_ft = None  # probed again on first use
    model = providers.embedder.name
    image_index = VectorIndex(redis, images_mod.SPEC, use_ft, model=model)
    passage_index = VectorIndex(redis, corpus_mod.SPEC, use_ft, model=model)
    corpus = corpus_mod.Corpus(redis, providers.embedder, passage_index)
    relevance = Relevance(min_cosine=settings.min_cosine, min_rerank=settings.min_rerank)
    recorder = AccessLogRecorder(redis) if settings.record_access_log else None
    runtime = AIRuntime(
        redis=redis,
        settings=settings,
        providers=providers,
        images=images_mod.ImageCatalog(redis, providers.embedder, image_index),
        corpus=corpus,
        diagnostics=Diagnostics(redis, providers, corpus, relevance),
        recorder=recorder,
        vector_backend=image_index.backend,
    )
    if settings.warm_up:
        await asyncio.to_thread(_warm_model, providers)
    runtime._tasks.append(asyncio.create_task(runtime._startup_loading(), name="ai-startup-loading"))
    return runtime


async def get_ai(request: Request) -> AIRuntime:
    # async: a plain def dependency would run in FastAPI's thread pool on every request.
    runtime: AIRuntime = request.app.state.ai
    return runtime


AIDep = Annotated[AIRuntime, Depends(get_ai)]
