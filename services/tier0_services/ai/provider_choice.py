"""Choose the providers once at start-up: Cohere when keyed, the local ONNX MiniLM otherwise."""

import logging

import httpx

from tier0_services.ai import cohere_provider, local_model
from tier0_services.ai.providers import Providers
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings

log = logging.getLogger(__name__)


def build_providers(settings: AISettings, httpx_client: httpx.Client | None = None) -> Providers:
    """`httpx_client` lets tests put an `httpx.MockTransport` under the real Cohere SDK."""
    key = settings.cohere_api_key.get_secret_value() if settings.cohere_api_key else ""
    if settings.provider == "cohere" and not key:
        raise ValueError("TIER0_AI_PROVIDER=cohere needs COHERE_API_KEY")
    local = local_model.shared(settings.local_threads)
    if settings.provider == "cohere" or (settings.provider == "auto" and key):
        client = cohere_provider.make_client(key, settings.cohere_timeout_seconds, httpx_client)
        log.info(
            "AI providers: Cohere (%s, %s, %s)",
            settings.cohere_embed_model,
            settings.cohere_rerank_model,
            settings.cohere_chat_model,
        )
        return Providers(
            kind="cohere",
            embedder=cohere_provider.CohereEmbedder(client, settings.cohere_embed_model),
            answerer=cohere_provider.CohereAnswerer(client, settings.cohere_chat_model),
            reranker=cohere_provider.CohereReranker(client, settings.cohere_rerank_model),
            # The local reader: answers when Cohere chat fails (from the same passages) and reads
            # enumerations; the local model also routes every question.
            fallback_answerer=SentenceReader(local),
        )
    log.info("AI providers: local %s (no COHERE_API_KEY)", local.name)
    return Providers(kind="local", embedder=local, answerer=SentenceReader(local))
