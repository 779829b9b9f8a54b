"""The node soak's load on a real region API process over a real redis-server (what `make bench
BENCH=nodesoak` does to the active region's API, here on loopback): the console's burst started
with the bearer token and read back when finished, /health timed meanwhile."""

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import soakfaults  # noqa: E402

from tier0_testing.api import start_api  # noqa: E402

pytestmark = pytest.mark.integration

TOKEN = "soak-token-0123456789"


@pytest.fixture
def api(redis_port: int, tmp_path: Path) -> Iterator[str]:
    env = {
        "TIER0_API_TOKEN": TOKEN,
        "TIER0_TRAFFIC_MAX_SECONDS": "2",
        "TIER0_RATE_LIMIT": "3/second",  # as wrk leaves it for the bench's own calls: exhausted
        "HF_HUB_OFFLINE": "1",
    }
    proc, url = start_api(redis_port, tmp_path, env=env)
    yield url
    proc.stop()


def test_the_burst_runs_in_the_api_and_health_is_timed_meanwhile(api: str) -> None:
    with soakfaults.HealthTimer(f"{api}/health", every=0.05) as timer:
        timer.label = "load"
        soakfaults.start_burst(api, TOKEN)
        with pytest.raises(OSError):  # one burst at a time: 409 while it runs
            soakfaults.start_burst(api, TOKEN)
        run = soakfaults.burst_result(api)
    assert run.state == "finished" and run.sent > 0 and run.concurrency == soakfaults.BURST_CONCURRENCY
    assert set(run.by_status) == {"200"}, run.by_status
    cell = soakfaults.burst_cell([run])
    assert cell.startswith(f"{run.sent} sent in ") and f"200: {run.sent}" in cell
    health = soakfaults.health_stats(timer.samples, "load")
    assert health.samples > 5 and health.failed == 0


def test_the_burst_waits_out_the_rate_limit(api: str) -> None:
    """wrk spends the client's share of the rate limit; the bench's next calls wait for room."""
    soakfaults.start_burst(api, TOKEN)
    with httpx.Client() as client:
        assert 429 in {client.get(f"{api}/api/status").status_code for _ in range(10)}
    started = time.monotonic()
    assert soakfaults.burst_result(api).state == "finished"
    assert time.monotonic() - started < 15


def test_the_burst_needs_the_token(api: str) -> None:
    with pytest.raises(OSError, match="403"):  # a wrong token (none at all: 401)
        soakfaults.start_burst(api, "wrong")
    assert soakfaults.burst_result(api).state == "idle"
