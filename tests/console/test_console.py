"""The console, clicked through in chromium: the status panel, the seed's four buttons, Simulate
High Traffic behind the token prompt, image search, questions (cited, aggregated, abstained), a
switchover seen live, and Redis killed. Screenshots: `.run/screenshots/console-*.png`."""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tier0_dev.controlplane import ControlPlane
from tier0_testing import api as testing

from .conftest import TOKEN, ApiServer, ServiceProxy, import_sample_log, wait_ai_ready

pytestmark = pytest.mark.browser

Shot = Callable[..., Any]
FAST = "?poll=500"


async def test_status_panel_buttons_search_and_questions(
    page: Page, api_server: ApiServer, redis_port: int, feeder: None, shot: Shot
) -> None:
    _, url = api_server(redis_port)
    await wait_ai_ready(url)
    await import_sample_log(url)
    await page.goto(url, wait_until="domcontentloaded")
    assert page.url.endswith("/console"), page.url  # the redirect of `/` for browsers
    await page.goto(f"{url}/console{FAST}")
    await expect(page.locator("#poll-state")).to_have_attribute("data-state", "ok", timeout=15_000)

    # Both regions side by side; this one answered; the peer is what the API can say about it.
    region1 = page.locator('.region[data-region="region1"]')
    await expect(region1).to_contain_text("primary")
    await expect(region1).to_contain_text("v1.0.0057_region1")
    await expect(region1).to_have_class("region active answering")
    await expect(page.locator('.region[data-region="region2"]')).to_contain_text("kubernetes API not configured")
    await expect(page.locator("#answered-by")).to_contain_text("answered by region1")
    await expect(region1).to_contain_text("400")  # active devices, from the feeder
    # Charts: messages per second is a drawn line once two polls saw the counter move.
    await expect(page.locator('#chart-mps polyline[data-series="msg/s"]')).to_have_count(1, timeout=10_000)
    await expect(page.locator('#chart-states polyline[data-series="OK"]')).to_have_count(1)
    await expect(page.locator('#chart-latency polyline[data-series="poll ms"]')).to_have_count(1)
    await shot(page, "console-overview")

    # The seed's four buttons.
    result = page.locator("#action-result")
    await page.click("#btn-users")
    await expect(result).to_contain_text("Active Users")
    await expect(result).to_contain_text("user-0000")
    await expect(result).to_contain_text("answered by region1")
    await page.click("#btn-devices")
    await expect(result).to_contain_text("known devices")
    await expect(result).to_contain_text("ALERT")
    await page.click("#btn-version")
    await expect(result).to_contain_text("v1.0.0057_region1")
    await expect(result).to_contain_text("unknown (404")  # region2 recorded no version here
    await page.click("#btn-status")
    await expect(result).to_contain_text("startup_time")
    await expect(result).to_contain_text("primary")
    await shot(page, "console-button-status")

    # Image search with result cards (picture, site, type, score).
    await page.fill("#search-query", "workers without hard hats")
    await page.click("#search-go")
    cards = page.locator("#search-results .card")
    await expect(cards.first).to_be_visible(timeout=15_000)
    assert await cards.count() >= 3
    first = cards.first
    await expect(first).to_contain_text("score")
    await expect(first.locator("img")).to_have_js_property("complete", True)
    assert await first.locator("img").evaluate("img => img.naturalWidth") > 0
    await shot(page, "console-search")

    # Questions: a quick query answered from the documents with citations.
    await page.click("#quick-queries .chip >> nth=1")
    answer = page.locator("#answer .answer")
    await expect(answer).to_have_attribute("data-mode", "retrieval", timeout=30_000)
    await expect(page.locator("#citations li").first).to_be_visible()
    await shot(page, "console-answer-cited")
    # An aggregate, with the data behind it.
    await page.click("#quick-queries .chip >> nth=2")
    await expect(answer).to_have_attribute("data-mode", "aggregation", timeout=30_000)
    await expect(page.locator("#answer-data")).to_contain_text("Data behind this answer")
    await shot(page, "console-answer-aggregate")
    # An honest "I don't know".
    await page.fill("#ask-question", "What is the airspeed velocity of an unladen swallow?")
    await page.click("#ask-go")
    await expect(answer).to_have_attribute("data-mode", "abstain", timeout=30_000)
    await expect(page.locator("#abstain")).to_have_text("I don't know")
    await shot(page, "console-answer-abstain")


async def test_token_prompt_and_high_traffic(
    page: Page, api_server: ApiServer, redis_port: int, feeder: None, shot: Shot
) -> None:
    _, url = api_server(redis_port)
    await page.goto(f"{url}/console{FAST}")
    await expect(page.locator("#poll-state")).to_have_attribute("data-state", "ok", timeout=15_000)
    # A wrong token: prompted, refused, forgotten.
    await page.click("#btn-traffic")
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible()
    await page.fill("#token-input", "not-the-token")
    await page.click("#token-save")
    await expect(page.locator("#action-result")).to_contain_text("token rejected — 403")
    await expect(page.locator("#token-state")).to_have_text("no token")
    # The right one: kept for the tab, the burst runs and is bounded server-side.
    await page.wait_for_timeout(2000)
    await page.click("#btn-traffic")
    await expect(dialog).to_be_visible()
    await page.fill("#token-input", TOKEN)
    await page.click("#token-save")
    await expect(page.locator("#token-state")).to_have_text("token set (this tab)")
    assert await page.evaluate("sessionStorage.getItem('tier0.apiToken')") == TOKEN
    traffic = page.locator("#traffic-result")
    await expect(traffic).to_contain_text("of 3,000", timeout=10_000)
    await expect(page.locator("#action-result")).to_contain_text("finished", timeout=20_000)
    await expect(traffic).to_contain_text("p99")
    # The burst is a shaded band on the latency chart, with the polls that ran during it. How much
    # slower they were depends on the machine, so it is printed, not asserted.
    await expect(page.locator('#chart-latency rect[data-band="closed"]')).to_have_count(1)
    during, before = await page.evaluate(
        """(() => {
          const [start, end] = state.bursts[state.bursts.length - 1];
          const ms = (keep) => state.latency.filter(([t]) => keep(t)).map(([, v]) => v).sort((a, b) => a - b);
          return [ms((t) => t >= start && t <= end), ms((t) => t < start)];
        })()"""
    )
    assert during, "no console poll ran during the burst"
    print(
        f"console poll latency: median {before[len(before) // 2]:.0f} ms before the burst, "
        f"median {during[len(during) // 2]:.0f} ms and max {during[-1]:.0f} ms during it ({len(during)} polls)"
    )
    await shot(page, "console-high-traffic")
    await page.click("#btn-traffic")
    await expect(dialog).not_to_be_visible()
    await expect(page.locator("#action-result")).to_contain_text("of 3,000", timeout=10_000)


async def test_redis_down_is_shown_and_does_not_hang(
    page: Page, api_server: ApiServer, redis_factory: Any, shot: Shot
) -> None:
    redis_proc, port = redis_factory()
    _, url = api_server(port)
    await page.goto(f"{url}/console{FAST}")
    await expect(page.locator("#poll-state")).to_have_attribute("data-state", "ok", timeout=15_000)
    redis_proc.stop()
    banner = page.locator("#error-banner")
    await expect(banner).to_be_visible(timeout=10_000)
    await expect(banner).to_contain_text("region1 answered: 503: redis unavailable")
    await expect(page.locator("#poll-state")).to_have_attribute("data-state", "error")
    await expect(page.locator('.region[data-region="region1"]')).to_have_class("region active answering stale")
    # The buttons still answer, with the reason, quickly.
    await page.click("#btn-status")
    await expect(page.locator("#action-result")).to_contain_text("503: redis unavailable", timeout=5_000)
    await shot(page, "console-redis-down")


async def test_switchover_seen_live(
    page: Page,
    api_server: ApiServer,
    redis_port: int,
    feeder: None,
    control_plane: ControlPlane,
    namespace: str,
    operator: testing.FakeOperator,
    shot: Shot,
) -> None:
    env = {"TIER0_KUBECONFIG": str(control_plane.kubeconfig), "TIER0_REGIONPAIR_NAMESPACE": namespace}
    _, url = api_server(redis_port, **env)
    await page.goto(f"{url}/console{FAST}")
    await expect(page.locator("#pair-phase")).to_have_text("Healthy", timeout=15_000)
    await expect(page.locator("#pair-active")).to_have_text("region1")
    await expect(page.locator('.region[data-region="region2"]')).to_contain_text("regionpair")
    await page.click("#btn-failover")
    await page.fill("#token-input", TOKEN)
    await page.click("#token-save")
    # The status panel follows the operator while the request waits.
    await expect(page.locator("#pair-phase")).to_have_text("SwitchingOver", timeout=5_000)
    await shot(page, "console-switching-over")
    await expect(page.locator("#pair-active")).to_have_text("region2", timeout=15_000)
    await expect(page.locator("#pair-phase")).to_have_text("Healthy")
    await expect(page.locator("#pair-last")).to_contain_text("Switchover region1 → region2, Succeeded")
    result = page.locator("#switch-result")
    await expect(result).to_contain_text("operator's measured duration", timeout=15_000)
    await expect(result).to_contain_text("client-side latency")
    await expect(result).to_contain_text("region1 → region2")
    await expect(page.locator("#chart-transitions rect")).to_have_count(1, timeout=5_000)
    await shot(page, "console-after-switchover")
    # Restore: back home, without asking for the token again.
    await page.click("#btn-restore")
    await expect(page.locator("#pair-active")).to_have_text("region1", timeout=20_000)
    await expect(page.locator("#switch-result")).to_contain_text("region2 → region1", timeout=15_000)
    await expect(page.locator("#chart-transitions rect")).to_have_count(2, timeout=5_000)
    assert operator.switchovers == 2
    await shot(page, "console-after-restore")


async def test_console_follows_the_global_service_across_a_switchover(
    page: Page,
    api_server: ApiServer,
    redis_factory: Any,
    control_plane: ControlPlane,
    namespace: str,
    operator: testing.FakeOperator,
    shot: Shot,
) -> None:
    _, primary = redis_factory()
    _, replica = redis_factory("--replicaof", "127.0.0.1", str(primary))
    env = {"TIER0_KUBECONFIG": str(control_plane.kubeconfig), "TIER0_REGIONPAIR_NAMESPACE": namespace}
    _, url1 = api_server(primary, region="region1", **env)
    _, url2 = api_server(replica, region="region2", **env)
    service = ServiceProxy({"region1": int(url1.rsplit(":", 1)[1]), "region2": int(url2.rsplit(":", 1)[1])}, "region1")
    await service.start()
    follower = asyncio.create_task(service.follow(operator.client, operator.ref))
    try:
        await page.goto(f"http://127.0.0.1:{service.port}/console{FAST}")
        await expect(page.locator("#answered-by")).to_contain_text("answered by region1", timeout=15_000)
        await page.click("#btn-failover")
        await page.fill("#token-input", TOKEN)
        await page.click("#token-save")
        # After the flip the polls are answered by region2; the switch's own answer still arrives.
        await expect(page.locator("#answered-by")).to_contain_text("answered by region2", timeout=20_000)
        await expect(page.locator('.region[data-region="region2"]')).to_have_class(
            "region active answering", timeout=5_000
        )
        await expect(page.locator("#switch-result")).to_contain_text("region1 → region2", timeout=15_000)
        await expect(page.locator("#poll-state")).to_have_attribute("data-state", "ok")
        await shot(page, "console-service-after-switchover")
        await page.click("#btn-restore")
        await expect(page.locator("#answered-by")).to_contain_text("answered by region1", timeout=20_000)
        await expect(page.locator("#switch-result")).to_contain_text("region2 → region1", timeout=15_000)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await service.stop()


async def test_swagger_ui_and_redoc_render_offline(
    page: Page, api_server: ApiServer, redis_port: int, shot: Shot
) -> None:
    """chromium runs without background networking and this machine has no route out: what renders
    was served by the API itself, and nothing else leaves the browser."""
    _, url = api_server(redis_port)
    outside: list[str] = []
    blocked: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((url, "data:", f"blob:{url}")) else outside.append(r.url))
    page.on("requestfailed", lambda r: blocked.append(r.url) if "csp" in (r.failure or "").lower() else None)
    await page.goto(f"{url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("tier0 region API", timeout=15_000)
    await expect(page.locator(".opblock-summary-path").first).to_be_visible()
    await shot(page, "docs-swagger-ui", False)
    await page.goto(f"{url}/redoc")
    await expect(page.locator("h1").first).to_contain_text("tier0 region API", timeout=15_000)
    await shot(page, "docs-redoc", False)
    # ReDoc's bundle links a logo on its CDN: the page's Content-Security-Policy stops it in the browser.
    assert sorted(outside) == sorted(blocked), f"the docs reached out for {set(outside) - set(blocked)}"
