"""Admission's decisions: which class a path is in, when an in-flight cap refuses, the rate
windows per client (`limits` in process), Retry-After, the settings' rate strings, and the
middleware on a bare ASGI app: 429 with a JSON reason and Retry-After before the app runs, probes
never limited, the console's own burst not counted, rejections in the metrics."""

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import generate_latest
from pydantic import ValidationError

from tier0_services.api import admission
from tier0_services.api.metrics import ApiMetrics
from tier0_services.api.settings import Settings

pytestmark = pytest.mark.unit

POLICY = Settings().admission_policy()


def policy(**changes: Any) -> admission.Policy:
    base = {
        "rates": admission.parse_rates("5/second"),
        "ai_rates": admission.parse_rates("2/second"),
        "max_in_flight": 3,
        "max_ai_in_flight": 1,
        "exempt_paths": frozenset({"/health", "/ready", "/metrics"}),
        "ai_prefixes": ("/api/images", "/api/diagnostics"),
    }
    return admission.Policy(**{**base, **changes})


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/health", "exempt"),
        ("/ready", "exempt"),
        ("/metrics", "exempt"),
        ("/health/", "api"),
        ("/api/images/search", "ai"),
        ("/api/diagnostics", "ai"),
        ("/api/diagnostics/logs/stats", "ai"),
        ("/api/imagesearch", "api"),
        ("/api/status", "api"),
        ("/" + "x" * 8192, "api"),
    ],
)
def test_classify(path: str, kind: str) -> None:
    assert admission.classify(path, POLICY) == kind


def test_default_settings_are_tighter_for_ai() -> None:
    assert POLICY.rates and POLICY.ai_rates
    assert POLICY.ai_rates[0].amount < POLICY.rates[0].amount
    assert POLICY.max_ai_in_flight < POLICY.max_in_flight
    assert {"/health", "/ready", "/metrics"} <= POLICY.exempt_paths


def test_rate_strings_are_checked_when_settings_load() -> None:
    assert Settings(rate_limit="").admission_policy().rates == ()
    assert len(Settings(rate_limit="10/second;100/minute").admission_policy().rates) == 2
    with pytest.raises(ValidationError, match="couldn't parse rate limit string"):
        Settings(ai_rate_limit="lots")


def test_in_flight_caps() -> None:
    p = policy()
    assert admission.over_capacity("api", 2, 0, p) is None
    full = admission.over_capacity("api", 3, 0, p)
    assert full is not None and full.reason == "concurrency" and full.retry_after == 1
    ai = admission.over_capacity("ai", 1, 1, p)
    assert ai is not None and ai.reason == "ai_concurrency"
    assert admission.over_capacity("api", 1, 1, p) is None  # AI work does not hold back the rest


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert admission.retry_after(100.2, 100.0) == 1
    assert admission.retry_after(99.0, 100.0) == 1
    assert admission.retry_after(130.5, 100.0) == 31


def test_rates_are_per_client_and_ai_counts_against_both() -> None:
    limiter = admission.RateLimiter(policy())
    assert [limiter.hit("ai", "a") for _ in range(2)] == [None, None]
    refused = limiter.hit("ai", "a")
    assert refused is not None and refused.reason == "ai_rate_limit" and refused.retry_after >= 1
    assert "2 per 1 second" in refused.detail
    assert limiter.hit("ai", "b") is None  # another client has its own windows
    # a's AI requests also counted against its general limit (5): 3 hits so far.
    assert [limiter.hit("api", "a") for _ in range(2)] == [None, None]
    general = limiter.hit("api", "a")
    assert general is not None and general.reason == "rate_limit"


async def app_holding(release: asyncio.Event, seen: list[str]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        if "slow" in scope["path"]:
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def call(
    mw: Any, path: str, client: str = "192.0.2.1", scope: dict[str, Any] | None = None
) -> tuple[int, dict[bytes, bytes], Any]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw({"type": "http", "method": "GET", "path": path, "client": (client, 1), **(scope or {})}, None, send)
    start, body = sent
    body_json = orjson.loads(body["body"]) if start["status"] == 429 else None
    return start["status"], dict(start["headers"]), body_json


async def test_middleware_refuses_before_the_app_and_spares_the_probes() -> None:
    metrics = ApiMetrics("region1", "v0")
    seen: list[str] = []
    mw = admission.AdmissionMiddleware(await app_holding(asyncio.Event(), seen), policy(), metrics, "region1")
    statuses = [(await call(mw, f"/nowhere/{i}"))[0] for i in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    status, headers, body = await call(mw, "/nowhere/again")
    assert status == 429 and int(headers[b"retry-after"]) >= 1 and headers[b"x-tier0-region"] == b"region1"
    assert body["reason"] == "rate_limit" and "5 per 1 second" in body["detail"]
    assert len(seen) == 5  # refused requests never reached the app
    assert [(await call(mw, "/health"))[0] for _ in range(50)] == [200] * 50
    assert (await call(mw, "/api/status", client="192.0.2.2"))[0] == 200
    assert (await call(mw, "/api/status", scope={admission.INTERNAL: True}))[0] == 200  # the console's burst
    text = generate_latest(metrics.registry).decode()
    assert 'tier0_api_requests_rejected_total{reason="rate_limit"} 4.0' in text


async def test_middleware_in_flight_caps_answer_at_once() -> None:
    release = asyncio.Event()
    mw = admission.AdmissionMiddleware(await app_holding(release, []), policy(rates=()), ApiMetrics("r", "v"))
    slow_ai = asyncio.create_task(call(mw, "/api/images/slow", client="10.0.0.1"))
    await asyncio.sleep(0)
    status, _, body = await call(mw, "/api/diagnostics/logs/stats", client="10.0.0.2")
    assert status == 429 and body["reason"] == "ai_concurrency"
    slow = [asyncio.create_task(call(mw, f"/slow/{i}", client=f"10.0.1.{i}")) for i in range(2)]
    await asyncio.sleep(0)
    status, _, body = await call(mw, "/api/status", client="10.0.0.3")
    assert status == 429 and body["reason"] == "concurrency"
    assert (await call(mw, "/health"))[0] == 200  # exempt from the cap too
    release.set()
    assert [(await t)[0] for t in (slow_ai, *slow)] == [200, 200, 200]
    assert (mw.in_flight, mw.ai_in_flight) == (0, 0)
    assert (await call(mw, "/api/status"))[0] == 200


def test_chart_values_are_the_settings_defaults() -> None:
    import json
    import re

    import yaml

    from tier0_dev.procs import ROOT

    chart = ROOT / "charts" / "tier0"
    values = yaml.safe_load((chart / "values.yaml").read_text())["regionApi"]["admission"]
    defaults = Settings()
    assert values == {
        "rateLimit": defaults.rate_limit,
        "aiRateLimit": defaults.ai_rate_limit,
        "maxConcurrentRequests": defaults.max_concurrent_requests,
        "maxConcurrentAIRequests": defaults.max_concurrent_ai_requests,
    }
    schema = json.loads((chart / "values.schema.json").read_text())
    pattern = re.compile(
        schema["properties"]["regionApi"]["properties"]["admission"]["properties"]["rateLimit"]["pattern"]
    )
    for good in ("200/second", "100/second;3000/minute", "5 per minute", "10/2 seconds", ""):
        assert pattern.match(good) and (good == "" or admission.parse_rates(good)), good
    for bad in ("lots", "200", "/second", "200/fortnight"):
        assert not pattern.match(bad), bad
