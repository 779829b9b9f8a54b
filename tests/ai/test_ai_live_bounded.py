"""The live answers read bounded on a 100,000-device fleet (issue 23's size; issue 17: every
aggregate read is bounded): counts from the per-site counters, at most `live.SCAN_LIMIT` devices
read for what no counter keeps, at most `live.LIST_LIMIT` devices named, and no whole-hash or
whole-set read (the per-site counters by HMGET of the fields the contract names, not HGETALL; the
sites by SSCAN, at most `live.MAX_SITES`, and a sample said to be one). Every Redis command of a
question is captured with MONITOR (the real server's own record) and the figures are checked
against the fleet computed here.
"""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from tier0_services.ai import live
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings
from tier0_testing import api as api_testing

pytestmark = [pytest.mark.integration]
FLEET = api_testing.fleet(100_000)
LIVE_KEYS = ("devices:", "users:", "sites", "site:")
WHOLE_READS = ("HGETALL", "HKEYS", "HVALS", "SMEMBERS", "ZRANGE", "SUNION", "SINTER", " -1")
"""Commands (or a range to the end) that read a whole hash, set or sorted set of the live telemetry."""
SITES = sorted({d.site_id for d in FLEET})


@pytest.fixture
async def app(redis_port: int) -> AsyncIterator[FastAPI]:
    redis = Redis(port=redis_port)
    try:
        await api_testing.write_devices(redis, FLEET, time.time())
    finally:
        await redis.aclose()
    settings = Settings(redis_url=f"redis://127.0.0.1:{redis_port}/0", api_token=SecretStr("t"), ai_rate_limit="")
    application = create_app(settings)
    application.state.ai_settings = AISettings(provider="local", load_samples=False, record_access_log=False)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30) as manager:
        yield manager.app  # type: ignore[misc]


async def _ask(app: FastAPI, redis_port: int, question: str) -> tuple[dict[str, Any], list[str]]:
    """The answer and every Redis command run while it was computed."""
    monitor_conn = Redis(port=redis_port)
    commands: list[str] = []
    try:
        async with monitor_conn.monitor() as m:

            async def collect() -> None:
                async for event in m.listen():
                    commands.append(str(event["command"]))

            task = asyncio.create_task(collect())
            await asyncio.sleep(0.05)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as c:
                body = (await c.post("/api/diagnostics/query", json={"question": question})).json()
            await asyncio.sleep(0.1)
            task.cancel()
    finally:
        await monitor_conn.aclose()
    return body, [c for c in commands if "diagnostics" not in c]


def _bounded(commands: list[str]) -> None:
    live_reads = [c for c in commands if any(f" {k}" in c for k in LIVE_KEYS)]
    assert live_reads, f"no live read captured: {commands[:5]}"
    whole = [c for c in live_reads if any(w in c for w in WHOLE_READS)]
    assert not whole, f"whole reads: {whole[:5]}"
    read = sum(1 for c in commands if c.startswith(("HSCAN devices:state", "ZREVRANGE devices:alerts")))
    assert read <= live.SCAN_LIMIT // live.PAGE + 1, f"{read} pages read"
    counters = sum(1 for c in commands if c.startswith("HMGET site:"))
    assert counters <= 2 * live.MAX_SITES, f"{counters} site counters read"


async def test_counts_come_from_the_counters(app: FastAPI, redis_port: int) -> None:
    states = Counter(d.state.value for d in FLEET)
    body, commands = await _ask(app, redis_port, "How many devices are in WARN state right now?")
    assert body["mode"] == "aggregation" and body["data"]["count"] == states["WARN"], body
    assert body["data"]["of_devices"] == len(FLEET) and f"% of the {len(FLEET)})" in body["answer"], body
    _bounded(commands)
    assert not any(c.startswith("HSCAN") for c in commands), "a counted figure read devices"

    site = FLEET[0].site_id
    at_site = sum(1 for d in FLEET if d.site_id == site)
    body, commands = await _ask(app, redis_port, f"How many devices does {site} have?")
    assert body["data"]["device_count"] == at_site and str(at_site) in str(body["answer"]), body
    _bounded(commands)


async def test_listing_is_bounded_and_says_how_many_exist(app: FastAPI, redis_port: int) -> None:
    site = FLEET[0].site_id
    alerting = sorted(d.device_id for d in FLEET if d.site_id == site and d.state.value == "ALERT")
    assert len(alerting) > live.LIST_LIMIT
    body, commands = await _ask(app, redis_port, f"Which devices are in ALERT at {site}?")
    data = body["data"]
    assert data["count"] == len(alerting) and f"{len(alerting)} devices" in body["answer"], body
    assert len(data["devices"]) == live.LIST_LIMIT and set(data["devices"]) <= set(alerting)
    _bounded(commands)


async def test_a_count_no_counter_keeps_is_a_bounded_lower_bound(app: FastAPI, redis_port: int) -> None:
    exact = sum(1 for d in FLEET if d.device_type.value == "turbine" and d.state.value == "WARN")
    body, commands = await _ask(app, redis_port, "How many turbines are in WARN state?")
    data = body["data"]
    assert data["complete"] is False and 0 < data["count"] <= exact, body
    assert data["devices_read"] <= live.SCAN_LIMIT + live.PAGE and "at least" in body["answer"]
    _bounded(commands)


@pytest.mark.parametrize(
    "question",
    [
        "Which sites are reporting telemetry?",
        "Which site has the most devices in ALERT?",
        "Which site has the fewest devices?",
        f"What is the current state of the devices at {SITES[1]}?",
        "How many devices are sending telemetry right now?",
        f"How many turbines does {SITES[2]} have?",
        "How many devices are in ALERT?",
        "List the devices in WARN state",
    ],
)
async def test_every_live_read_is_bounded(app: FastAPI, redis_port: int, question: str) -> None:
    body, commands = await _ask(app, redis_port, question)
    assert body["mode"] == "aggregation" and body["evidence"]["source"] == "live", body
    _bounded(commands)


async def test_more_sites_than_read_is_said_to_be_a_sample(
    app: FastAPI, redis_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_SITES", 3)
    body, commands = await _ask(app, redis_port, "Which sites are reporting telemetry?")
    data = body["data"]
    assert data["count"] == len(SITES) and len(data["sites"]) == 3 and data["complete"] is False, body
    assert set(data["sites"]) <= set(SITES) and "(the first 3 read)" in body["answer"], body
    _bounded(commands)

    body, commands = await _ask(app, redis_port, "Which site has the most devices in WARN state?")
    assert body["data"]["complete"] is False and len(body["data"]["sites"]) == 3, body
    assert f"of the region's {len(SITES)} sites read, not all: a sample" in body["answer"], body
    assert sum(1 for c in commands if c.startswith("HMGET site:")) == 3, commands

    # A site beyond the ones read is still the region's: the set is asked, not the sample.
    beyond = next(s for s in SITES if s not in data["sites"])
    at_site = sum(1 for d in FLEET if d.site_id == beyond)
    body, commands = await _ask(app, redis_port, f"How many devices does {beyond} have?")
    assert body["mode"] == "aggregation" and body["data"]["device_count"] == at_site, body
    assert f"SISMEMBER sites {beyond}" in commands, commands
