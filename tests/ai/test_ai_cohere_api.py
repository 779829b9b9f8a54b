"""The region API with Cohere providers (the real SDK over `httpx.MockTransport`) and a real
redis-server: images embedded as pixels (`"mode": "image"`), answers grounded in chat citations,
a rate-limited chat falling back to the extractive answer, a rate-limited embed answering 503."""

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from tier0_services.ai.provider_choice import build_providers
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings
from tier0_testing.ai import FakeCohere

pytestmark = pytest.mark.integration

TOKEN = "test-token"


@pytest.fixture
def fake() -> FakeCohere:
    return FakeCohere()


@pytest.fixture
async def client(redis_port: int, fake: FakeCohere) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(region="region1", redis_url=f"redis://127.0.0.1:{redis_port}/0", api_token=SecretStr(TOKEN))
    ai_settings = AISettings(cohere_api_key=SecretStr("test-key"), load_samples=True, record_access_log=False)
    app = create_app(settings)
    app.state.ai_settings = ai_settings
    app.state.ai_providers = build_providers(ai_settings, fake.client())
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        await app.state.ai.ready.wait()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://r1") as c:
            yield c


async def test_images_are_embedded_from_pixels(client: httpx.AsyncClient, fake: FakeCohere) -> None:
    image_calls = [c for c in fake.calls("embed") if c["input_type"] == "image"]
    assert sum(len(c["images"]) for c in image_calls) == 16
    assert all(uri.startswith("data:image/png;base64,") for c in image_calls for uri in c["images"])
    body = (await client.post("/api/images/search", json={"query": "workers without hard hats", "top_k": 3})).json()
    assert body["mode"] == "image" and body["model"] == "cohere/embed-v4.0" and body["count"] == 3
    assert fake.calls("embed")[-1] == {
        "model": "embed-v4.0",
        "input_type": "search_query",
        "texts": ["workers without hard hats"],
        "embedding_types": ["float"],
    }
    listed = (await client.get("/api/images/list")).json()
    assert {i["mode"] for i in listed["images"]} == {"image"}


async def test_answers_cite_chat_citations_and_fall_back_on_429(client: httpx.AsyncClient, fake: FakeCohere) -> None:
    question = {"question": "How many safety incidents occurred in BP operations in 2024?"}
    body = (await client.post("/api/diagnostics/query", json=question)).json()
    assert body["mode"] == "retrieval" and body["provider"]["kind"] == "cohere"
    assert body["provider"]["reranker"] == "cohere/rerank-v3.5" and body["fallback"] is None
    assert body["citations"][0]["ref"] == 1 and body["answer"] == body["citations"][0]["text"]
    assert fake.calls("rerank") and fake.calls("chat")

    fake.fail["chat"] = 429
    fake.fail["rerank"] = "timeout"
    fell_back = (await client.post("/api/diagnostics/query", json=question)).json()
    assert fell_back["mode"] == "retrieval" and "9 safety incidents" in fell_back["answer"]
    assert fell_back["fallback"] == (
        "rerank skipped: cohere rerank: timed out (ReadTimeout); "
        "answered extractively: cohere chat: rate limited (HTTP 429)"
    )
    assert fell_back["citations"][0]["doc_id"] == "hse-incidents-2024"


async def test_embedding_rate_limit_is_a_503_with_the_reason(client: httpx.AsyncClient, fake: FakeCohere) -> None:
    fake.fail["embed"] = 429
    resp = await client.post("/api/images/search", json={"query": "turbine"})
    assert resp.status_code == 503
    assert resp.json()["detail"] == "cohere embed: rate limited (HTTP 429)"
    resp = await client.post("/api/diagnostics/query", json={"question": "What are the hard hat rules?"})
    assert resp.status_code == 503 and "rate limited" in resp.json()["detail"]
    # Log questions need no provider at all.
    resp = await client.post("/api/diagnostics/query", json={"question": "top IPs with error 400"})
    assert resp.status_code == 200 and resp.json()["mode"] == "aggregation"


async def test_cohere_answers_go_through_the_same_grounding(client: httpx.AsyncClient, fake: FakeCohere) -> None:
    # The fake chat cites its first document for any question: the coverage check still abstains.
    chats = len(fake.calls("chat"))
    shell = (
        await client.post("/api/diagnostics/query", json={"question": "How many incidents at Shell in 2019?"})
    ).json()
    assert shell["mode"] == "abstain" and shell["citations"] == [] and "Shell" in shell["answer"]
    assert shell["evidence"]["source"] == "none" and len(fake.calls("chat")) >= chats
    listed = (
        await client.post(
            "/api/diagnostics/query", json={"question": "List economic and social sustainability statements"}
        )
    ).json()
    assert listed["mode"] == "retrieval" and listed["data"]["count"] == 5 and listed["provider"]["kind"] == "cohere"
    p99 = (await client.post("/api/diagnostics/query", json={"question": "p99 latency?"})).json()
    assert p99["mode"] == "aggregation" and p99["evidence"]["source"] == "logs"
    search = (await client.post("/api/images/search", json={"query": "turbine"})).json()
    assert search["backend"] == "numpy"  # plain redis-server: the fallback, chosen and reported
