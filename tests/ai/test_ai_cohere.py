"""The Cohere providers through the real `cohere` SDK, its HTTP answered by `httpx.MockTransport`:
request shapes (input types, data URIs, documents), batching at 96, and 429s and timeouts turned
into `ProviderUnavailableError` with a reason, without the SDK's retries."""

import numpy as np
import pytest
from pydantic import SecretStr

from tier0_services.ai import cohere_provider
from tier0_services.ai.provider_choice import build_providers
from tier0_services.ai.providers import Passage, ProviderUnavailableError
from tier0_services.ai.sample_images import data_uri, load_catalog, render
from tier0_services.ai.settings import AISettings
from tier0_testing.ai import FakeCohere

pytestmark = pytest.mark.unit


@pytest.fixture
def fake() -> FakeCohere:
    return FakeCohere()


def client(fake: FakeCohere) -> object:
    return cohere_provider.make_client("test-key", 5.0, fake.client())


def test_texts_are_embedded_in_batches_of_at_most_96(fake: FakeCohere) -> None:
    embedder = cohere_provider.CohereEmbedder(client(fake), "embed-v4.0")
    texts = [f"passage {i}" for i in range(200)]
    vectors = embedder.embed_texts(texts, "search_document")
    assert vectors.shape == (200, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    calls = fake.calls("embed")
    assert [len(c["texts"]) for c in calls] == [96, 96, 8]
    assert [t for c in calls for t in c["texts"]] == texts
    assert all(c["model"] == "embed-v4.0" and c["input_type"] == "search_document" for c in calls)
    assert all(c["embedding_types"] == ["float"] for c in calls)
    _, _, headers = fake.requests[0]
    assert headers["authorization"] == "Bearer test-key"
    embedder.embed_texts(["workers without hard hats"], "search_query")
    assert fake.calls("embed")[-1]["input_type"] == "search_query"


def test_images_are_sent_as_data_uris(fake: FakeCohere) -> None:
    embedder = cohere_provider.CohereEmbedder(client(fake))
    sample = load_catalog()[0]
    uri = data_uri(render(sample))
    assert embedder.supports_images
    assert embedder.embed_images([uri]).shape == (1, 32)
    call = fake.calls("embed")[0]
    assert call["input_type"] == "image" and "texts" not in call
    assert call["images"] == [uri] and uri.startswith("data:image/png;base64,iVBORw0KGgo")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [(429, "rate limited (HTTP 429)"), ("timeout", "timed out (ReadTimeout)"), (500, "HTTP 500")],
)
def test_failures_become_provider_unavailable_without_retries(
    fake: FakeCohere, failure: int | str, reason: str
) -> None:
    fake.fail["embed"] = failure
    embedder = cohere_provider.CohereEmbedder(client(fake))
    with pytest.raises(ProviderUnavailableError) as info:
        embedder.embed_texts(["x"], "search_query")
    assert info.value.provider == "cohere embed" and info.value.reason == reason
    assert len(fake.calls("embed")) == 1


def test_rerank_request_and_result(fake: FakeCohere) -> None:
    reranker = cohere_provider.CohereReranker(client(fake), "rerank-v3.5")
    docs = ["turbine vibration limits", "hard hat policy for workers", "sourdough bread"]
    ranked = reranker.rerank("hard hat workers", docs, top_n=2)
    call = fake.calls("rerank")[0]
    assert call == {"model": "rerank-v3.5", "query": "hard hat workers", "documents": docs, "top_n": 2}
    assert ranked[0][0] == 1 and len(ranked) == 2 and 0.0 <= ranked[0][1] <= 1.0
    assert reranker.rerank("q", [], 3) == [] and len(fake.calls("rerank")) == 1


def test_chat_sends_documents_and_maps_citations(fake: FakeCohere) -> None:
    answerer = cohere_provider.CohereAnswerer(client(fake), "command-r-plus-08-2024")
    passages = [
        Passage(1, "doc-a#0", "doc-a", "Incidents", "In 2024 there were 9 incidents.", 0.8),
        Passage(2, "doc-b#0", "doc-b", "Policy", "Hard hats are mandatory.", 0.5),
    ]
    answer = answerer.answer("How many incidents in 2024?", passages)
    call = fake.calls("chat")[0]
    assert call["model"] == "command-r-plus-08-2024" and call["temperature"] == 0.0
    assert call["documents"] == [
        {"id": "ref-1", "data": {"title": "Incidents", "snippet": "In 2024 there were 9 incidents."}},
        {"id": "ref-2", "data": {"title": "Policy", "snippet": "Hard hats are mandatory."}},
    ]
    assert [m["role"] for m in call["messages"]] == ["system", "user"]
    assert call["messages"][1]["content"] == "How many incidents in 2024?"
    assert answer.text == "In 2024 there were 9 incidents." and answer.cited == [1] and not answer.abstained

    fake.chat_reply = lambda body: {
        "id": "x",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "I don't know."}]},
    }
    ungrounded = answerer.answer("?", passages)
    assert ungrounded.abstained and ungrounded.cited == []


def test_provider_choice_follows_the_key() -> None:
    assert build_providers(AISettings(provider="auto", cohere_api_key=None)).kind == "local"
    keyed = build_providers(AISettings(provider="auto", cohere_api_key=SecretStr("k")), FakeCohere().client())
    assert keyed.kind == "cohere" and keyed.reranker is not None and keyed.fallback_answerer is not None
    assert keyed.embedder.name == "cohere/embed-v4.0"
    assert build_providers(AISettings(provider="local", cohere_api_key=SecretStr("k"))).kind == "local"
    with pytest.raises(ValueError, match="COHERE_API_KEY"):
        build_providers(AISettings(provider="cohere", cohere_api_key=None))


def test_cohere_api_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHERE_API_KEY", "from-env")
    settings = AISettings()
    assert settings.cohere_api_key is not None and settings.cohere_api_key.get_secret_value() == "from-env"
