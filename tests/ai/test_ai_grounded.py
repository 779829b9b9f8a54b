"""Grounded answers, end to end: the region API started on an empty Redis with the query engine
loads the labelled samples itself (images, corpus, a 12,000-line access log), live telemetry is
written through the ingest worker's own store, and every reproduction of issue 13 behaves:
abstentions that say what the data holds, per-status paths, computed percentiles, live counts,
complete lists. Real local model, real redis-stack-server.
"""

import time
from collections import Counter
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
from tier0_services.ai.logs import sample
from tier0_services.ai.providers import Providers
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings
from tier0_testing import api as api_testing

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
LOG = sample.generate(12_000, seed=7)
FLEET = api_testing.fleet(1000)


@pytest.fixture(scope="module")
def model() -> MiniLMEmbedder:
    m = MiniLMEmbedder()
    m.load()
    return m


@pytest.fixture(scope="module")
def search_redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    proc = programs.redis(port, tmp_path_factory.mktemp("redis-grounded"), search=True)
    yield port
    proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(search_redis_port: int, model: MiniLMEmbedder) -> AsyncIterator[httpx.AsyncClient]:
    redis = Redis(port=search_redis_port)
    await api_testing.write_devices(redis, FLEET, time.time())
    await api_testing.write_activity(redis, api_testing.activity_message(42, time.time()))
    await redis.aclose()
    app: FastAPI = create_app(
        Settings(redis_url=f"redis://127.0.0.1:{search_redis_port}/0", api_token=SecretStr("t"), ai_rate_limit="")
    )
    app.state.ai_settings = AISettings(provider="local", load_samples=True, record_access_log=False)
    app.state.ai_providers = Providers(kind="local", embedder=model, answerer=SentenceReader(model))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        await app.state.ai.ready.wait()
        assert app.state.ai.loaded == ["images", "corpus", "logs"]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://r") as c:
            yield c


async def ask(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    resp = await client.post("/api/diagnostics/query", json={"question": question})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["evidence"]["source"] in {"logs", "live", "documents", "none"}
    return body


async def test_samples_loaded_at_first_start_use_the_telemetry_site_ids(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/images/list")).json()
    sites = {i["site_id"] for i in listed["images"]}
    assert listed["count"] == 16 and sites <= set(api_testing.SITES), sites
    for site in sites:  # every image's site answers on the telemetry endpoint too
        assert (await client.get(f"/api/devices/metrics/site/{site}")).status_code == 200, site
    found = (await client.post("/api/images/search", json={"query": "workers without hard hats"})).json()
    assert found["backend"] == "redisearch" and found["count"] > 0
    stats = (await client.get("/api/diagnostics/logs/stats")).json()
    assert stats["total_entries"] == 12_000
    docs = (await client.get("/api/diagnostics/documents")).json()
    assert docs["count"] == 7


@pytest.mark.parametrize(
    ("question", "must_say"),
    [
        ("What is BP's stock price?", ["BP field operations"]),
        ("How many incidents at Shell in 2019?", ["Shell", "2024, not 2019"]),
        ("BP incidents in 2023?", ["2024, not 2023"]),
        ("What was the price of gold in Zurich in 1987?", ["documents I hold"]),
    ],
)
async def test_out_of_scope_questions_abstain_and_say_what_is_held(
    client: httpx.AsyncClient, question: str, must_say: list[str]
) -> None:
    body = await ask(client, question)
    assert body["mode"] == "abstain" and body["citations"] == [], body
    assert "9 safety incidents" not in body["answer"]
    for phrase in must_say:
        assert phrase in body["answer"], body["answer"]


async def test_in_scope_document_question_still_cites(client: httpx.AsyncClient) -> None:
    body = await ask(client, "How many safety incidents occurred in BP operations in 2024?")
    assert body["mode"] == "retrieval" and body["evidence"]["source"] == "documents"
    assert "9 safety incidents" in body["answer"] and body["citations"][0]["doc_id"] == "hse-incidents-2024"


async def test_paths_returning_404_are_the_404_paths(client: httpx.AsyncClient) -> None:
    body = await ask(client, "Which paths return 404 most often?")
    expected = Counter(e.path for e in LOG.entries if e.status == 404)
    top = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert body["mode"] == "aggregation" and body["evidence"]["source"] == "logs"
    assert body["data"]["top_paths"] == [{"path": p, "count": n} for p, n in top]
    assert "logs:paths:404" in body["evidence"]["query"]
    overall = Counter(e.path for e in LOG.entries).most_common(1)[0][0]
    assert [r["path"] for r in body["data"]["top_paths"]] != [overall] * 5


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


async def test_p99_latency_is_computed_and_rounded(client: httpx.AsyncClient) -> None:
    body = await ask(client, "p99 latency?")
    latencies = [e.latency_ms for e in LOG.entries if e.latency_ms is not None]
    assert body["mode"] == "aggregation"
    assert body["data"]["percentiles_ms"] == {"p99": nearest_rank(latencies, 99)}
    assert f"p99 {nearest_rank(latencies, 99):g} ms" in body["answer"]
    assert "mean" not in body["answer"]
    three = await ask(client, "What are the p50, p95 and p99 latencies?")
    assert three["data"]["percentiles_ms"] == {f"p{q}": nearest_rank(latencies, q) for q in (50, 95, 99)}
    mean = await ask(client, "What is the mean latency of requests?")
    assert mean["data"]["mean_ms"] == float(f"{sum(latencies) / len(latencies):.3g}")


async def test_live_questions_answer_from_the_live_keys(client: httpx.AsyncClient) -> None:
    alerts = await ask(client, "How many devices are in alert state right now?")
    in_alert = [d for d in FLEET if d.state.value == "ALERT"]
    assert alerts["mode"] == "aggregation" and alerts["evidence"]["source"] == "live"
    assert alerts["data"]["count"] == len(in_alert) == (await client.get("/api/devices/alerts")).json()["total_alerts"]
    assert f"{len(in_alert)} devices" in alerts["answer"] and keys.DEVICES_ALERTS in alerts["evidence"]["query"]
    site = "WY-ALPHA"
    listed = await ask(client, f"Which turbines are in alert at {site}?")
    expected = sorted(d.device_id for d in in_alert if d.site_id == site and d.device_type.value == "turbine")
    assert sorted(listed["data"]["devices"]) == expected
    active = await ask(client, "How many devices are active?")
    assert active["data"]["active_devices"] == len(FLEET)
    users = await ask(client, "How many users are online right now?")
    assert users["data"]["active_users"] == 42 and users["evidence"]["query"].startswith(f"GET {keys.ACTIVE_USERS}")
    metrics = await ask(client, "How many devices does TX-BRAVO have?")
    assert metrics["data"]["device_count"] == sum(1 for d in FLEET if d.site_id == "TX-BRAVO")
    unknown = await ask(client, "How many devices are in alert at TX-BETA?")
    assert unknown["mode"] == "abstain" and "TX-BRAVO" in unknown["answer"]


async def test_list_questions_return_every_item(client: httpx.AsyncClient) -> None:
    both = await ask(client, "List economic and social sustainability statements")
    assert both["mode"] == "retrieval" and both["data"]["count"] == 5
    assert [i.split(":")[0] for i in both["data"]["items"]] == [
        "Economic statement 1",
        "Economic statement 2",
        "Social statement 1",
        "Social statement 2",
        "Social statement 3",
    ]
    assert {c["doc_id"] for c in both["citations"]} == {"sustainability-statements"}
    social = await ask(client, "List the social sustainability statements")
    assert social["data"]["count"] == 3 and all(i.startswith("Social") for i in social["data"]["items"])


async def test_log_questions_outside_the_logs_span_abstain(client: httpx.AsyncClient) -> None:
    body = await ask(client, "How many requests got a 404 in 2019?")
    assert body["mode"] == "abstain" and "2024-06" in body["answer"] and "2019" in body["answer"]
    held = await ask(client, "How many requests got a 404 in 2024?")
    assert held["mode"] == "aggregation" and held["data"]["count"] == LOG.count(404).total()
