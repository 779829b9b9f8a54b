"""Log diagnostics over a real redis-server: a seeded 12,000-line log imported through the API and
the CLI, every aggregate checked against counts computed independently here, the "most frequent IP
for error 400" question answered exactly, and the region API's own requests recorded.
"""

import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai.logs import sample
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"}
LOG = sample.generate(12_000, seed=11)


@pytest.fixture
async def app(redis_port: int) -> AsyncIterator[FastAPI]:
    settings = Settings(region="region1", redis_url=f"redis://127.0.0.1:{redis_port}/0", api_token=SecretStr(TOKEN))
    application = create_app(settings)
    # Own requests are not recorded here, so the imported log is all the aggregates hold.
    application.state.ai_settings = AISettings(provider="local", record_access_log=False)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30) as manager:
        yield manager.app  # type: ignore[misc]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://region1") as c:
        yield c


async def import_sample(client: httpx.AsyncClient) -> dict[str, Any]:
    body = "\n".join(LOG.combined_lines()) + "\nthis is not a log line\n"
    resp = await client.post("/api/diagnostics/logs/import", content=body, headers=AUTH)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def test_import_needs_the_token_and_counts_bad_lines(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/diagnostics/logs/import", content="x", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 401
    result = await import_sample(client)
    assert result["imported"] == 12_000 and result["rejected"] == 1
    assert result["errors"] == ["line 12001: not a combined/common log format line"]


async def test_aggregates_equal_independent_counts(client: httpx.AsyncClient) -> None:
    await import_sample(client)
    stats = (await client.get("/api/diagnostics/logs/stats")).json()
    entries = LOG.entries
    by_status = Counter(e.status for e in entries)
    assert stats["total_entries"] == len(entries)
    assert stats["by_status"] == {str(k): v for k, v in sorted(by_status.items())}
    assert stats["by_method"] == dict(sorted(Counter(e.method for e in entries).items()))
    days = Counter(datetime.fromtimestamp(int(e.ts), UTC).date().isoformat() for e in entries)
    assert stats["by_day"] == dict(sorted(days.items()))
    assert stats["unique_ips"] == len({e.ip for e in entries})
    errors = sum(n for s, n in by_status.items() if s >= 400)
    assert stats["error_entries"] == errors
    assert stats["error_rate_pct"] == round(100 * errors / len(entries), 2)
    classes = Counter(f"{e.status // 100}xx" for e in entries)
    assert stats["by_class"] == dict(sorted(classes.items()))
    latencies = [e.latency_ms for e in entries if e.latency_ms is not None]
    assert stats["latency_ms"]["count"] == len(latencies)
    assert stats["latency_ms"]["max"] == pytest.approx(max(latencies))
    assert stats["latency_ms"]["mean"] == pytest.approx(sum(latencies) / len(latencies), abs=1e-3)

    for code in (400, 404, 500):
        found = (await client.get(f"/api/diagnostics/logs/errors/{code}", params={"limit": 3})).json()
        expected = sorted(LOG.count(code).items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert found["status_code"] == code and found["total"] == by_status[code]
        assert [(r["ip"], r["count"]) for r in found["top_ips"]] == expected

    summary = (await client.get("/api/diagnostics/logs/summary")).json()
    error_codes = sorted(((s, n) for s, n in by_status.items() if s >= 400), key=lambda kv: (-kv[1], kv[0]))
    assert [(r["status_code"], r["count"]) for r in summary["top_error_codes"]] == error_codes[:5]
    error_paths = Counter(e.path for e in entries if e.status >= 400)
    top_paths = sorted(error_paths.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(r["path"], r["count"]) for r in summary["top_error_paths"]] == top_paths
    assert len(summary["recent_errors"]) == 5 and all(r["status"] >= 400 for r in summary["recent_errors"])


async def test_most_frequent_ip_for_error_400(client: httpx.AsyncClient) -> None:
    await import_sample(client)
    question = "Give me the most frequent IP devices generating error 400"
    body = (await client.post("/api/diagnostics/query", json={"question": question})).json()
    top_ip = LOG.expected_top_ip(400)
    assert top_ip == LOG.noisy_ips[0]
    assert body["mode"] == "aggregation" and body["question"] == question
    assert body["data"]["top_ips"][0] == {"ip": top_ip, "count": LOG.count(400)[top_ip]}
    assert body["data"]["total"] == sum(LOG.count(400).values())
    assert top_ip in body["answer"] and str(LOG.count(400)[top_ip]) in body["answer"]

    count = (await client.post("/api/diagnostics/query", json={"question": "How many requests got a 404?"})).json()
    assert count["mode"] == "aggregation" and count["data"]["count"] == LOG.count(404).total()


@pytest.mark.parametrize(
    ("question", "statuses", "kind"),
    [
        ("Which clients got the most 5xx responses?", range(500, 600), "ip"),
        ("which IPs have the most errors", range(400, 600), "ip"),
        ("top ten endpoints with errors", range(400, 600), "path"),
        ("top 7 IPs", range(100, 600), "ip"),
    ],
)
async def test_questions_over_several_codes_equal_independent_counts(
    client: httpx.AsyncClient, question: str, statuses: range, kind: str
) -> None:
    await import_sample(client)
    body = (await client.post("/api/diagnostics/query", json={"question": question})).json()
    assert body["mode"] == "aggregation", body
    assert ("top_ips" if kind == "ip" else "top_paths") in body["data"], body
    rows = body["data"]["top_ips" if kind == "ip" else "top_paths"]
    counts = Counter(e.ip if kind == "ip" else e.path for e in LOG.entries if e.status in statuses)
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: len(rows)]
    assert len(rows) in (5, 7, 10) and [(r[kind], r["count"]) for r in rows] == expected


async def test_sorted_sets_keep_their_most_frequent_members(client: httpx.AsyncClient, redis_port: int) -> None:
    """An import of more distinct IPs than a set keeps: the set stops at the cap, the heavy hitters
    stay with exact counts."""
    many = keys.LOGS_MAX_MEMBERS + 500
    lines = [
        json.dumps({"ip": f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", "status": 404, "ts": 1.0}) for i in range(many)
    ]
    lines += [json.dumps({"ip": "192.0.2.1", "status": 404, "ts": 2.0, "path": "/" + "p" * 8000})] * 30
    resp = await client.post("/api/diagnostics/logs/import", content="\n".join(lines), headers=AUTH)
    assert resp.json()["imported"] == many + 30
    redis = Redis(port=redis_port)
    try:
        assert await redis.zcard(keys.logs_ips_for_status(404)) == keys.LOGS_MAX_MEMBERS
        assert await redis.zcard(keys.LOGS_IPS) == keys.LOGS_MAX_MEMBERS
        longest = max(len(m) for m in await redis.zrange(keys.logs_paths_for_status(404), 0, -1))
        assert longest <= keys.LOGS_MEMBER_MAX_CHARS * 3  # UTF-8 bytes of the cut path
    finally:
        await redis.aclose()
    found = (await client.get("/api/diagnostics/logs/errors/404", params={"limit": 1})).json()
    assert found["total"] == many + 30 and found["top_ips"] == [{"ip": "192.0.2.1", "count": 30}]
    stats = (await client.get("/api/diagnostics/logs/stats")).json()
    assert stats["unique_ips"] == keys.LOGS_MAX_MEMBERS


async def test_json_lines_and_empty_logs(client: httpx.AsyncClient) -> None:
    empty = (await client.post("/api/diagnostics/query", json={"question": "top 3 IPs with error 500"})).json()
    assert empty["mode"] == "abstain" and "No access-log entries" in empty["answer"]
    assert empty["evidence"]["source"] == "logs" and empty["evidence"]["covers"]["entries"] == 0
    lines = [
        json.dumps({"ip": "10.9.9.9", "status": 500, "ts": "2024-05-01T10:00:00Z", "path": "/api/x", "latency_ms": 7}),
        json.dumps(
            {"client_ip": "10.9.9.8", "status_code": 500, "timestamp": 1714557600, "request": "GET /a HTTP/1.1"}
        ),
        json.dumps({"ip": "10.9.9.9", "status": 500, "ts": 1714557601}),
        json.dumps({"ip": "10.9.9.9", "status": 999, "ts": 1714557601}),
    ]
    resp = await client.post("/api/diagnostics/logs/import", content="\n".join(lines), headers=AUTH)
    assert resp.json()["imported"] == 3 and resp.json()["rejected"] == 1
    found = (await client.get("/api/diagnostics/logs/errors/500")).json()
    assert found["top_ips"] == [{"ip": "10.9.9.9", "count": 2}, {"ip": "10.9.9.8", "count": 1}]
    assert (await client.get("/api/diagnostics/logs/errors/999")).status_code == 422


async def test_the_api_records_its_own_requests(redis_port: int) -> None:
    settings = Settings(region="region1", redis_url=f"redis://127.0.0.1:{redis_port}/0")
    application = create_app(settings)
    application.state.ai_settings = AISettings(provider="local", record_access_log=True)
    async with LifespanManager(application, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("10.1.2.3", 5555))
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as c:
            for _ in range(3):
                await c.get("/health")
            await c.get("/api/images/site/NOWHERE")
            await application.state.ai.recorder.flush()
            stats = (await c.get("/api/diagnostics/logs/stats")).json()
            assert stats["by_status"] == {"200": 3, "404": 1}
            found = (await c.get("/api/diagnostics/logs/errors/404")).json()
            assert found["top_ips"] == [{"ip": "10.1.2.3", "count": 1}]
            assert stats["latency_ms"]["count"] == 4


def test_cli_generates_and_imports(tmp_path: Path, redis_port: int) -> None:
    out = tmp_path / "sample.log"
    cli = [sys.executable, "-m", "tier0_services.ai", "--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
    gen = subprocess.run(
        [*cli, "logs", "generate", "--out", str(out), "--entries", "10500", "--seed", "3"],
        capture_output=True,
        text=True,
        check=True,
    )
    generated = json.loads(gen.stdout)
    assert generated["entries"] == 10_500 and len(out.read_text().splitlines()) == 10_500
    imp = subprocess.run([*cli, "logs", "import", str(out)], capture_output=True, text=True, check=True)
    assert json.loads(imp.stdout)["imported"] == 10_500
    ask = subprocess.run([*cli, "ask", "which IP has the most 400 errors?"], capture_output=True, text=True, check=True)
    answer = json.loads(ask.stdout)
    assert answer["mode"] == "aggregation"
    assert answer["data"]["top_ips"][0]["ip"] == sample.generate(10_500, seed=3).expected_top_ip(400)
