"""Liveness that sees the loop (issue 17, "liveness sees threads, not the work"): the ingest worker
and the activity consumer, real processes against the real mosquitto / rabbitmq-server and
redis-server, have their loop wedged for real (a blocking sleep on the main thread, see
tier0_testing.wedge) while the test asks the path the tier0 chart's liveness probe asks.

What is tested, for each worker:
- before the wedge the probed path answers 200;
- while the loop is blocked it answers 503 within the maximum age (1 s here) plus a poll, although
  the same HTTP server goes on answering /metrics (what the chart probed before: a wedged worker
  was never restarted);
- once the loop runs again the path answers 200 again, without a restart.
"""

from pathlib import Path

import pytest

from tier0_dev.procs import Process, free_port, http_ok
from tier0_testing import wedge

pytestmark = pytest.mark.integration

MAX_AGE = 1.0
WEDGE_SECONDS = 4.0


@pytest.mark.parametrize("component", ["ingest", "activity"])
def test_a_wedged_worker_loop_fails_its_liveness_probe_then_recovers(
    component: str, mosquitto_port: int, rabbitmq_port: int, redis_port: int, tmp_path: Path
) -> None:
    path = wedge.liveness_path("tier0", "StatefulSet", component)
    port = free_port()
    env = {
        "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TIER0_MQTT_PORT": str(mosquitto_port),
        "TIER0_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/%2F",
        "TIER0_METRICS_PORT": str(port),
        "TIER0_CLIENT_ID": f"liveness-{component}",
        "TIER0_LIVENESS_MAX_AGE": str(MAX_AGE),
        wedge.WEDGE_SECONDS_ENV: str(WEDGE_SECONDS),
    }
    log = tmp_path / f"{component}.log"
    proc = Process(component, wedge.argv(f"tier0_services.{component}"), log, env=env).start()
    try:
        proc.wait_ready(http_ok(f"http://127.0.0.1:{port}/metrics"), timeout=30)
        wedge.assert_liveness_sees_the_loop(proc, f"http://127.0.0.1:{port}", path, MAX_AGE, WEDGE_SECONDS)
    finally:
        proc.stop(timeout=10)
