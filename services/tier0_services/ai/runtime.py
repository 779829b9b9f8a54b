"""The AI features' share of the region API lifespan: build once, keep on `app.state.ai`, stop.

`start()` never fails because Redis is down (the API must come up and answer 503 meanwhile): the
RediSearch probe falls back to the numpy path and the optional sample/folder loading runs in a
background task whose failure is logged. `ready` is set when that loading has finished.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tier0_services.ai import images as images_mod
from tier0_services.ai.diagnostics import Diagnostics, Relevance
from tier0_services.ai.logs.recorder import AccessLogRecorder
from tier0_services.ai.provider_choice import build_providers
from tier0_services.ai.providers import Providers, ProviderUnavailableError
from tier0_services.ai.rag import corpus as corpus_mod
from tier0_services.ai.settings import AISettings
from tier0_services.ai.vector_index import VectorIndex, redisearch_available

log = logging.getLogger(__name__)


@dataclass
class AIRuntime:
    settings: AISettings
    providers: Providers
    images: images_mod.ImageCatalog
    corpus: corpus_mod.Corpus
    diagnostics: Diagnostics
    recorder: AccessLogRecorder | None
    vector_backend: str
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def load_samples(self) -> None:
        await self.images.ingest_samples()
        for doc in corpus_mod.sample_documents():
            await self.corpus.add(doc)

    async def _startup_loading(self) -> None:
        try:
            if self.settings.load_samples:
                await self.load_samples()
            if self.settings.corpus_dir is not None:
                for doc in corpus_mod.folder_documents(self.settings.corpus_dir):
                    await self.corpus.add(doc)
        except (RedisError, OSError, ProviderUnavailableError) as exc:
            log.warning("AI start-up loading failed (retry with the CLI or the API): %s", exc)
        finally:
            self.ready.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.recorder is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.recorder.stop()


async def start(redis: Redis, settings: AISettings, providers: Providers | None = None) -> AIRuntime:
    providers = providers or build_providers(settings)
    try:
        use_ft = await redisearch_available(redis)
    except (RedisError, OSError):
        use_ft = False
    image_index = VectorIndex(redis, images_mod.SPEC, use_ft)
    passage_index = VectorIndex(redis, corpus_mod.SPEC, use_ft)
    corpus = corpus_mod.Corpus(redis, providers.embedder, passage_index)
    relevance = Relevance(min_cosine=settings.min_cosine, min_rerank=settings.min_rerank)
    recorder = AccessLogRecorder(redis) if settings.record_access_log else None
    runtime = AIRuntime(
        settings=settings,
        providers=providers,
        images=images_mod.ImageCatalog(redis, providers.embedder, image_index),
        corpus=corpus,
        diagnostics=Diagnostics(redis, providers, corpus, relevance),
        recorder=recorder,
        vector_backend=image_index.backend,
    )
    if recorder is not None:
        recorder.start()
    if settings.load_samples or settings.corpus_dir is not None:
        runtime._tasks.append(asyncio.create_task(runtime._startup_loading(), name="ai-startup-loading"))
    else:
        runtime.ready.set()
    return runtime


async def get_ai(request: Request) -> AIRuntime:
    # async: a plain def dependency would run in FastAPI's thread pool on every request.
    runtime: AIRuntime = request.app.state.ai
    return runtime


AIDep = Annotated[AIRuntime, Depends(get_ai)]
