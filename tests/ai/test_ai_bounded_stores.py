"""The AI stores an authenticated client can grow are bounded (issue 21), over a real redis-server
and the real API with small bounds (`TIER0_AI_IMAGES_MAX`, `TIER0_AI_PASSAGES_MAX`,
`TIER0_AI_LOGS_MAX_DAYS`): an upload past the image or passage bound is refused 409 naming the
bound, writes nothing, and replacing a stored id still works when full; the access-log day counts
keep the newest days, sum the older ones, and the answers say so.
"""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IMAGES_MAX = 3
PASSAGES_MAX = 4
MAX_DAYS = 3


@pytest.fixture
async def client(redis_port: int) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        region="region1", redis_url=f"redis://127.0.0.1:{redis_port}/0", api_token=SecretStr(TOKEN), ai_rate_limit=""
    )
    app: FastAPI = create_app(settings)
    app.state.ai_settings = AISettings(
        provider="local",
        load_samples=False,
        record_access_log=False,
        warm_up=False,
        images_max=IMAGES_MAX,
        passages_max=PASSAGES_MAX,
        logs_max_days=MAX_DAYS,
    )
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as c:
            yield c


@pytest.fixture
async def redis(redis_port: int) -> AsyncIterator[Redis]:
    client = Redis(port=redis_port)
    yield client
    await client.aclose()


def image(image_id: str, description: str = "a turbine at dusk") -> dict[str, Any]:
    return {"image_id": image_id, "site_id": "WY-ALPHA", "device_type": "turbine", "description": description}


async def ingest(client: httpx.AsyncClient, *images: dict[str, Any], samples: bool = False) -> httpx.Response:
    return await client.post("/api/images/ingest", json={"images": list(images), "samples": samples}, headers=AUTH)


async def catalog_state(redis: Redis) -> tuple[set[bytes], list[bytes], bytes | None]:
    """The image ids, every image HASH's key and the version counter."""
    ids = await redis.smembers(keys.IMAGE_IDS)  # type: ignore[misc]
    hashes = sorted([k async for k in redis.scan_iter(match=f"{keys.IMAGE_EMBEDDING_PREFIX}*")])
    return ids, hashes, await redis.get(keys.IMAGE_VERSION)


async def test_image_catalog_refuses_uploads_past_its_bound(client: httpx.AsyncClient, redis: Redis) -> None:
    assert (await ingest(client, image("A"), image("B"))).status_code == 200
    before = await catalog_state(redis)
    refused = await ingest(client, image("C"), {**image("D"), "site_id": "OK-DELTA"})
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "image catalog has no room: it holds 2 images" in detail and f"at most {IMAGES_MAX}" in detail, detail
    assert "TIER0_AI_IMAGES_MAX" in detail and "would add 2 more" in detail, detail
    assert await catalog_state(redis) == before  # nothing partial: no id, HASH or version bump

    assert (await ingest(client, image("C"))).status_code == 200  # exactly at the bound
    full = await catalog_state(redis)
    assert full[0] == {b"A", b"B", b"C"}
    for attempt in ([image("D")], [image("A"), image("E")]):  # a new id alone, or beside an update
        refused = await ingest(client, *attempt)
        assert refused.status_code == 409 and "would add 1 more" in refused.json()["detail"], refused.text
        assert await catalog_state(redis) == full
    samples = await ingest(client, image("A"), samples=True)
    assert samples.status_code == 409 and await catalog_state(redis) == full, samples.text

    updated = await ingest(client, image("A", "a turbine with a cracked blade"), image("B"))
    assert updated.status_code == 200, updated.text  # replacing stored ids works when full
    listed = (await client.get("/api/images/list")).json()
    assert listed["count"] == IMAGES_MAX
    assert {i["image_id"]: i["description"] for i in listed["images"]}["A"] == "a turbine with a cracked blade"


async def test_a_site_is_known_while_it_has_images_and_no_longer(client: httpx.AsyncClient, redis: Redis) -> None:
    """Moving every image of a site to others leaves nothing behind for it: the site answers 404 and
    no key grows with the sites ever named (the catalog's bound is the only one needed)."""
    assert (await ingest(client, image("A"), image("B"))).status_code == 200
    assert [i["image_id"] for i in (await client.get("/api/images/site/WY-ALPHA")).json()["images"]] == ["A", "B"]
    for n, site in enumerate(("OK-DELTA", "TX-BRAVO", "CA-ECHO")):
        moved = await ingest(client, {**image("A"), "site_id": site}, {**image("B"), "site_id": site})
        assert moved.status_code == 200, moved.text
        assert (await client.get(f"/api/images/site/{site}")).json()["count"] == 2
        assert (await client.get("/api/images/site/WY-ALPHA")).status_code == 404
        assert len([k async for k in redis.scan_iter(match="image*")]) == 2, n  # images:ids, images:version


def note(*paragraphs: str) -> str:
    return "\n\n".join(paragraphs)


async def add_doc(client: httpx.AsyncClient, doc_id: str, text: str) -> httpx.Response:
    body = {"doc_id": doc_id, "title": f"Note {doc_id}", "text": text}
    return await client.post("/api/diagnostics/documents", json=body, headers=AUTH)


async def corpus_state(redis: Redis) -> dict[str, Any]:
    passage_keys = sorted([k async for k in redis.scan_iter(match=f"{keys.PASSAGE_PREFIX}*")])
    texts = [await redis.hget(k, "text") for k in passage_keys]  # type: ignore[misc]
    return {
        "passages": await redis.smembers(keys.PASSAGE_IDS),  # type: ignore[misc]
        "documents": await redis.smembers(keys.DOCUMENT_IDS),  # type: ignore[misc]
        "hashes": list(zip(passage_keys, texts, strict=True)),
        "doc_hashes": sorted([k async for k in redis.scan_iter(match="rag:doc:*")]),
        "version": await redis.get(keys.CORPUS_VERSION),
    }


async def test_document_corpus_refuses_passages_past_its_bound(client: httpx.AsyncClient, redis: Redis) -> None:
    two = note("Turbines are inspected every six months.", "Gearboxes are inspected every year.")
    first = await add_doc(client, "inspections", two)
    assert first.status_code == 200 and first.json()["passages"] == 2, first.text
    assert (
        await add_doc(client, "safety", note("Hard hats on site.", "Harnesses above two metres."))
    ).status_code == 200
    full = await corpus_state(redis)
    assert len(full["passages"]) == PASSAGES_MAX and full["documents"] == {b"inspections", b"safety"}

    refused = await add_doc(client, "shifts", "Shifts change at six.")
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "document corpus has no room" in detail and f"at most {PASSAGES_MAX}" in detail, detail
    assert "TIER0_AI_PASSAGES_MAX" in detail and "would add 1 more" in detail, detail
    grows = await add_doc(client, "safety", note("Hard hats on site.", "Harnesses above two metres.", "Gloves."))
    assert grows.status_code == 409, grows.text  # an update that grows the corpus counts too
    assert await corpus_state(redis) == full  # nothing partial: no passage, document, HASH or version bump

    changed = await add_doc(client, "inspections", note("Turbines are inspected every three months.", "And pumps."))
    assert changed.status_code == 200 and changed.json()["changed"], changed.text  # an update works when full
    texts = [t for k, t in (await corpus_state(redis))["hashes"] if k == b"rag:passage:inspections#0"]
    assert texts and b"three months" in texts[0]
    shrunk = await add_doc(client, "inspections", "Turbines are inspected every three months.")
    assert shrunk.status_code == 200 and shrunk.json()["passages"] == 1, shrunk.text
    room = await add_doc(client, "shifts", "Shifts change at six.")  # the freed passage is room again
    assert room.status_code == 200, room.text
    after = await corpus_state(redis)
    assert len(after["passages"]) == PASSAGES_MAX and b"inspections#1" not in after["passages"]


def ts(day: str, hour: int = 12) -> float:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").astimezone(UTC).timestamp()


async def import_days(client: httpx.AsyncClient, counts: dict[str, int]) -> None:
    lines = [
        json.dumps({"ip": f"10.0.0.{n % 7}", "status": 200, "ts": ts(day, n % 24)})
        for day, count in counts.items()
        for n in range(count)
    ]
    resp = await client.post(
        "/api/diagnostics/logs/import", content="\n".join(lines), headers={**AUTH, "Content-Type": "text/plain"}
    )
    assert resp.status_code == 200 and resp.json()["imported"] == len(lines), resp.text


async def ask(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    resp = await client.post("/api/diagnostics/query", json={"question": question})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_day_counts_keep_the_newest_days_and_say_what_they_summed(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    # One batch of five days, then an old day again and a new one: the hash keeps MAX_DAYS days.
    await import_days(client, {"2024-06-01": 5, "2024-06-02": 6, "2024-06-03": 7, "2024-06-04": 8, "2024-06-05": 9})
    await import_days(client, {"2024-06-01": 2, "2024-06-06": 4})
    assert await redis.hlen(keys.LOGS_BY_DAY) == MAX_DAYS + 1  # type: ignore[misc]  # the days and `earlier`
    stats = (await client.get("/api/diagnostics/logs/stats")).json()
    assert stats["total_entries"] == 41  # every line counted everywhere else
    assert stats["by_day"] == {"2024-06-04": 8, "2024-06-05": 9, "2024-06-06": 4}
    assert stats["by_day_earlier"] == 5 + 6 + 7 + 2
    assert sum(stats["by_status"].values()) == 41

    kept = await ask(client, "How many requests on 5 June 2024?")
    assert kept["mode"] == "aggregation" and kept["data"]["count"] == 9, kept
    summed = await ask(client, "How many requests on 2 June 2024?")
    assert summed["mode"] == "abstain", summed
    assert "keep the newest 3 days (from 2024-06-04)" in summed["answer"], summed["answer"]
    assert "the 20 requests of earlier days are counted in the totals only" in summed["answer"], summed["answer"]
    busiest = await ask(client, "Which day in the access log had the most requests?")
    assert busiest["mode"] == "aggregation" and busiest["data"]["day"] == "2024-06-05", busiest
    assert busiest["data"]["earlier_days_entries"] == 20 and "counted in the totals only" in busiest["answer"]
