"""The Grafana dashboards follow the rules every panel must keep (read from the JSON files themselves).

What is tested: each file is valid JSON with a unique uid; a `datasource` variable and a `namespace`
variable exist and every query uses the datasource variable and filters by namespace; every
rate()/increase() uses `$__rate_interval`; every panel has a description and one of Grafana's own units
(`mps`, not a custom suffix; the strict schema check is tests/charts/test_dashboards_schema.py);
every metric is either a tier0 metric (checked against real /metrics in
tests/charts/test_dashboards_prometheus.py) or one of dashboards.EXTERNAL_METRICS (EMQX, RabbitMQ, redis_exporter).
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tier0_dev import dashboards
from tier0_dev.procs import ROOT

pytestmark = pytest.mark.unit

FILES = sorted((ROOT / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b((?:tier0|emqx|rabbitmq|redis)_[a-z0-9_]+)\b")


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in model["panels"] if p["type"] != "row"]


def exprs(model: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(model) for t in p["targets"]]


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    models = [json.loads(f.read_text()) for f in FILES]
    uids = [m["uid"] for m in models]
    assert sorted(uids) == ["tier0-brokers", "tier0-failover", "tier0-fleet", "tier0-regions"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_rules(path: Path) -> None:
    model = json.loads(path.read_text())
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "namespace" in variables
    for panel in panels(model):
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit and not unit.startswith("suffix:"), f"{panel['title']}: use a Grafana unit (e.g. mps), not {unit!r}"
        assert panel.get("description"), f"{panel['title']} has no description"
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'namespace=~"$namespace"' in expr, f"{panel['title']}: not filtered by namespace: {expr}"
            for window in re.findall(r"(?:rate|increase)\([^\[]+\[([^\]]+)\]", expr):
                assert window == "$__rate_interval", f"{panel['title']}: {expr}"
    # Grid: no panel sticks out of the 24 columns.
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in model["panels"])


def test_every_metric_is_tier0_or_a_listed_exporter_metric() -> None:
    used = {m for f in FILES for e in exprs(json.loads(f.read_text())) for m in METRIC.findall(e)}
    foreign = {m for m in used if not m.startswith("tier0_")}
    assert foreign <= set(dashboards.EXTERNAL_METRICS), foreign - set(dashboards.EXTERNAL_METRICS)
    assert set(dashboards.EXTERNAL_METRICS) <= used, "EXTERNAL_METRICS lists metrics no panel uses"
    # The planned tier0 metrics the issue names all appear somewhere.
    for name in (
        "tier0_api_request_duration_seconds",
        "tier0_ingest_messages_total",
        "tier0_simulator_messages_published_total",
        "tier0_operator_transitions_total",
        "tier0_operator_transition_duration_seconds",
        "tier0_operator_region_healthy",
        "tier0_operator_replication_lag_bytes",
        "tier0_activity_messages_total",
    ):
        assert any(m.startswith(name) for m in used), name
