"""AI features with the real local model (ONNX MiniLM from its PyPI package) and a real redis-server,
the network blocked: image search ranks the right sample first, questions get cited answers or an
abstention, documents added through the API are retrieved.
"""

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_dev import programs
from tier0_dev.procs import free_port
from tier0_services.ai.local_model import MiniLMEmbedder
from tier0_services.ai.providers import Providers
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def offline_model() -> Iterator[MiniLMEmbedder]:
    """The model loaded and used with HF_HUB_OFFLINE=1 and every non-loopback connection refused
    (loopback stays open for the tests' own redis-server)."""
    attempts: list[Any] = []
    real = socket.create_connection

    def guarded(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] in {"127.0.0.1", "localhost", "::1"}:
            return real(address, *args, **kwargs)
        attempts.append(address)
        raise OSError(f"network blocked in this test: {address}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket, "create_connection", guarded)
        model = MiniLMEmbedder()
        model.load()
        vectors = model.embed_texts(["a turbine", "workers without hard hats"], "search_query")
        assert vectors.shape == (2, 384)
        yield model
        assert attempts == [], f"the local model tried to reach {attempts}"


@pytest.fixture(scope="module")
def module_redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One Redis with the query engine for the module (the RediSearch path, as in the chart): the
    samples are embedded once, tests only read or add."""
    port = free_port()
    proc = programs.redis(port, tmp_path_factory.mktemp("redis-ai"), search=True)
    yield port
    proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(module_redis_port: int, offline_model: MiniLMEmbedder) -> AsyncIterator[httpx.AsyncClient]:
    # No AI rate limit: the module asks dozens of questions a second from one client (admission
    # has its own tests, tests/access/test_api_admission_flood.py).
    settings = Settings(
        region="region1",
        redis_url=f"redis://127.0.0.1:{module_redis_port}/0",
        api_token=SecretStr(TOKEN),
        ai_rate_limit="",
    )
    app: FastAPI = create_app(settings)
    app.state.ai_settings = AISettings(provider="local", load_samples=True)
    app.state.ai_providers = Providers(kind="local", embedder=offline_model, answerer=SentenceReader(offline_model))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        await app.state.ai.ready.wait()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as c:
            yield c


async def search(client: httpx.AsyncClient, query: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post("/api/images/search", json={"query": query, **extra})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_workers_without_hard_hats_rank_that_image_first(client: httpx.AsyncClient) -> None:
    body = await search(client, "workers without hard hats", top_k=3)
    assert body["mode"] == "caption" and body["backend"] == "redisearch"
    assert body["model"] == "all-MiniLM-L6-v2-onnx-int8"
    first = body["results"][0]
    assert "workers without hard hats" in first["tags"]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    turbine = await search(client, "turbine site that has workers without hats", top_k=1)
    assert turbine["results"][0]["image_id"] == "WY-ALPHA_turbine_Turbine1.png"


async def test_engineer_with_tablet_and_filters(client: httpx.AsyncClient) -> None:
    body = await search(client, "engineer holding a tablet", top_k=3)
    assert all("engineer holding a tablet" in r["tags"] for r in body["results"])
    only = await search(client, "engineer holding a tablet", top_k=5, site_id="OK-DELTA")
    assert {r["site_id"] for r in only["results"]} == {"OK-DELTA"}
    assert only["results"][0]["image_id"] == "OK-DELTA_thermal_engine_Engine9.png"
    typed = await search(client, "equipment", top_k=10, device_type="electrical_rotor")
    assert typed["count"] == 4 and {r["device_type"] for r in typed["results"]} == {"electrical_rotor"}


async def test_list_and_site(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/images/list")).json()
    assert listed["count"] == 16
    assert {i["device_type"] for i in listed["images"]} == {
        "turbine",
        "thermal_engine",
        "electrical_rotor",
        "og_sensor",
    }
    site = (await client.get("/api/images/site/WY-ALPHA")).json()
    assert site["count"] == 5 and {i["site_id"] for i in site["images"]} == {"WY-ALPHA"}
    missing = await client.get("/api/images/site/NOWHERE")
    assert missing.status_code == 404 and "NOWHERE" in missing.json()["detail"]
    assert (await client.get("/api/images/site/bad%20id")).status_code == 422
    assert (await client.post("/api/images/search", json={"query": ""})).status_code == 422


async def test_question_answered_from_cited_passages(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/diagnostics/query", json={"question": "How many safety incidents occurred in BP operations in 2024?"}
    )
    body = resp.json()
    assert resp.status_code == 200 and body["mode"] == "retrieval", body
    assert body["citations"] and body["citations"][0]["doc_id"] == "hse-incidents-2024"
    assert "9 safety incidents" in body["answer"]
    for key in ("question", "answer", "timestamp", "provider"):
        assert key in body
    # Every number in the answer is copied from a cited passage.
    cited_text = " ".join(c["text"] for c in body["citations"])
    for token in body["answer"].replace(",", " ").split():
        digits = token.strip(".[]()")
        if digits.isdigit() and not token.startswith("["):
            assert digits in cited_text


async def test_unsupported_question_abstains(client: httpx.AsyncClient) -> None:
    body = (
        await client.post("/api/diagnostics/query", json={"question": "What was the price of gold in Zurich in 1987?"})
    ).json()
    assert body["mode"] == "abstain" and body["citations"] == []
    assert "cannot answer" in body["answer"]


async def test_documents_added_through_the_api_are_retrieved(client: httpx.AsyncClient) -> None:
    doc = {
        "doc_id": "compressor-noise",
        "title": "Compressor station noise survey",
        "text": "# Survey\n\nThe 2025 noise survey at Texas Bravo measured 71 dBA at the fence line "
        "of the compressor station.",
    }
    assert (await client.post("/api/diagnostics/documents", json=doc)).status_code == 401
    added = (await client.post("/api/diagnostics/documents", json=doc, headers=AUTH)).json()
    assert added["passages"] == 1 and added["changed"] is True
    again = (await client.post("/api/diagnostics/documents", json=doc, headers=AUTH)).json()
    assert again["changed"] is False
    body = (
        await client.post("/api/diagnostics/query", json={"question": "What noise level was measured at Texas Bravo?"})
    ).json()
    assert body["mode"] == "retrieval" and body["citations"][0]["doc_id"] == "compressor-noise"
    assert "71 dBA" in body["answer"]
    docs = (await client.get("/api/diagnostics/documents")).json()
    assert "compressor-noise" in {d["doc_id"] for d in docs["documents"]}


async def test_samples_load_once_redis_answers_after_the_api_started(
    tmp_path: Any, offline_model: MiniLMEmbedder
) -> None:
    """In a cluster the API often starts before its Redis answers, and a primary refuses writes until
    its replica connects: the sample loading waits for both instead of giving up, and the access-log
    entries recorded meanwhile do not count as loaded logs."""
    port = free_port()
    settings = Settings(
        region="region1", redis_url=f"redis://127.0.0.1:{port}/0", api_token=SecretStr(TOKEN), ai_rate_limit=""
    )
    app: FastAPI = create_app(settings)
    app.state.ai_settings = AISettings(provider="local", load_samples=True)
    app.state.ai_providers = Providers(kind="local", embedder=offline_model, answerer=SentenceReader(offline_model))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as c:
            assert (await c.get("/api/images/list")).status_code == 503  # Redis not there yet
            await asyncio.sleep(1.0)
            assert not app.state.ai.ready.is_set()
            # Then a primary that refuses writes until its replica connects (NOREPLICAS), as in the chart.
            proc = programs.redis(port, tmp_path / "redis", extra=("--min-replicas-to-write", "1"))
            try:
                await asyncio.sleep(1.5)
                assert not app.state.ai.ready.is_set()
                redis = Redis(port=port)
                await redis.config_set("min-replicas-to-write", 0)
                await redis.aclose()
                await asyncio.wait_for(app.state.ai.ready.wait(), 60)
                listed = (await c.get("/api/images/list")).json()
                assert listed["count"] == 16, listed
                stats = (await c.get("/api/diagnostics/logs/stats")).json()
                assert stats["total_entries"] >= 12_000, stats
                assert app.state.ai.loaded == ["images", "corpus", "logs"]
            finally:
                proc.stop()


async def test_a_promoted_replica_finishes_the_samples_its_old_primary_began(
    tmp_path: Any, offline_model: MiniLMEmbedder
) -> None:
    """Seen on a cold `make up`: the operator adopted the Redis that answered first, its API loaded
    the images and the corpus, and the switchover to spec.activeRegion made it the standby before
    the logs were in; the other API had found a replica and loaded nothing. So the active region's
    logs held only the recorder's entries. The plan in `keys.AI_SAMPLES` replicates with the data:
    the API of the promoted region finishes it, and a restart loads nothing twice."""
    old_port, new_port = free_port(), free_port()
    old_proc = programs.redis(old_port, tmp_path / "old")
    new_proc = programs.redis(new_port, tmp_path / "new")
    old, new = Redis(port=old_port), Redis(port=new_port)
    try:
        # What the old primary's API left: its plan, images and corpus marked loaded, recorder entries.
        plan = {"plan": "images,corpus,logs", "images": "2026-12-01T19:30:41", "corpus": "2026-12-01T19:30:44"}
        await old.hset(keys.AI_SAMPLES, mapping=plan)  # type: ignore[misc]
        await old.incrby(keys.LOGS_TOTAL, 437)
        await new.replicaof("127.0.0.1", old_port)
        for _ in range(100):
            if await new.exists(keys.AI_SAMPLES):
                break
            await asyncio.sleep(0.1)
        settings = Settings(
            region="region2", redis_url=f"redis://127.0.0.1:{new_port}/0", api_token=SecretStr(TOKEN), ai_rate_limit=""
        )
        for restart in (False, True):
            app: FastAPI = create_app(settings)
            app.state.ai_settings = AISettings(provider="local", load_samples=True, record_access_log=False)
            app.state.ai_providers = Providers(
                kind="local", embedder=offline_model, answerer=SentenceReader(offline_model)
            )
            async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
                await asyncio.wait_for(app.state.ai.ready.wait(), 60)
                if not restart:
                    await asyncio.sleep(0.5)
                    assert app.state.ai.loaded == [], "a replica loads nothing"
                    await new.replicaof("no", "one")  # the switchover promotes this region's Redis
                    for _ in range(150):
                        if app.state.ai.loaded:
                            break
                        await asyncio.sleep(0.1)
                    assert app.state.ai.loaded == ["logs"], "only what the plan still missed"
                else:
                    await asyncio.sleep(0.5)
                    assert app.state.ai.loaded == [], "a restart finds the plan complete"
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://region2") as c:
                    stats = (await c.get("/api/diagnostics/logs/stats")).json()
                    assert stats["total_entries"] == 12_000 + 437, stats
            fields = await new.hgetall(keys.AI_SAMPLES)  # type: ignore[misc]
            assert b"logs" in fields and fields[b"images"] == plan["images"].encode(), fields
    finally:
        await old.aclose()
        await new.aclose()
        old_proc.stop()
        new_proc.stop()


async def test_a_replica_records_nothing_into_a_dataset_no_api_has_judged_yet(
    tmp_path: Any, offline_model: MiniLMEmbedder
) -> None:
    """Seen on a cold CI run (2026-12-07): this region's API started on a replica whose primary's API
    had not made the sample plan yet. Its access-log recorder started anyway and kept the requests it
    saw (a replica refuses them); on promotion those entries reached the new primary before the
    plan was made, so the logs looked loaded and the 12,000-line sample never came. The recorder
    starts only once the dataset has a plan, so the promoted region plans the logs and loads them."""
    old_port, new_port = free_port(), free_port()
    old_proc = programs.redis(old_port, tmp_path / "old")
    new_proc = programs.redis(new_port, tmp_path / "new")
    old, new = Redis(port=old_port), Redis(port=new_port)
    try:
        await new.replicaof("127.0.0.1", old_port)  # a primary nobody has planned yet
        settings = Settings(region="region2", redis_url=f"redis://127.0.0.1:{new_port}/0", api_token=SecretStr(TOKEN))
        app: FastAPI = create_app(settings)
        app.state.ai_settings = AISettings(provider="local", load_samples=True, record_access_log=True)
        app.state.ai_providers = Providers(kind="local", embedder=offline_model, answerer=SentenceReader(offline_model))
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
            await asyncio.wait_for(app.state.ai.ready.wait(), 60)
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://region2") as c:
                for _ in range(20):  # the kubelet's and the operator's probes, say
                    assert (await c.get("/health")).status_code == 200
                await asyncio.sleep(1.0)  # several recorder flush intervals while a replica
                await new.replicaof("no", "one")
                for _ in range(300):
                    if "logs" in app.state.ai.loaded:
                        break
                    await asyncio.sleep(0.1)
                assert app.state.ai.loaded == ["images", "corpus", "logs"], app.state.ai.loaded
                stats = (await c.get("/api/diagnostics/logs/stats")).json()
                assert stats["total_entries"] >= 12_000, stats
    finally:
        await old.aclose()
        await new.aclose()
        old_proc.stop()
        new_proc.stop()
