"""The ingest worker's, activity consumer's and device simulator's Prometheus metrics pass
`promtool check metrics` (naming, units, help text), with every series populated."""

import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tier0_dev.procs import find_program
from tier0_services.activity.metrics import ActivityMetrics
from tier0_services.ingest.metrics import IngestMetrics
from tier0_simulators.devices import SimulatorMetrics

pytestmark = pytest.mark.integration


def _populated(name: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    if name == "ingest":
        m = IngestMetrics(registry)
        m.messages.labels("stored").inc(3)
        m.batch_seconds.observe(0.004)
        m.batch_size.observe(500)
        m.lag.set(0.2)
        m.write_errors.labels("readonly").inc()
    elif name == "activity":
        a = ActivityMetrics(registry)
        a.messages.labels("stored").inc()
        a.apply_seconds.observe(0.001)
    else:
        s = SimulatorMetrics(registry)
        s.published.inc(1000)
        s.lag.set(0.01)
        s.devices.labels("OK").set(850)
    return registry


@pytest.mark.parametrize("name", ["ingest", "activity", "simulator"])
def test_promtool_check_metrics_is_clean(name: str) -> None:
    text = generate_latest(_populated(name))
    assert name.encode()[:3] in text or b"tier0_" in text
    result = subprocess.run([find_program("promtool"), "check", "metrics"], input=text, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b"", result.stdout + result.stderr
