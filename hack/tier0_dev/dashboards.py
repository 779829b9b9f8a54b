"""Generate tier0's Grafana dashboards: `python -m tier0_dev.dashboards` (what `make dashboards` runs).

The dashboards are plain Grafana JSON models written by this code rather than edited by hand, so
that every panel follows the same rules: the Prometheus datasource is a variable, rates use
`$__rate_interval`, every panel has a unit, and every query is filtered by the `namespace` (and,
where the metric has it, `region`) template variables. The output goes to `dashboards/` and to the
chart's copy in `charts/tier0/dashboards/` (tests fail when either differs from this code).

`EXTERNAL_METRICS` lists the metrics panels take from EMQX, RabbitMQ and redis_exporter; every
other metric must be exported by a tier0 component (tests check both).
"""

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIRS = (ROOT / "dashboards", ROOT / "charts" / "tier0" / "dashboards")

DS = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
NS_REGION = 'namespace=~"$namespace", region=~"$region"'
RI = "$__rate_interval"

# Metrics that come from the brokers' and Redis's own exporters, by source (not from tier0 code).
EXTERNAL_METRICS: dict[str, str] = {
    "emqx_connections_count": "EMQX /api/v5/prometheus/stats",
    "emqx_messages_received": "EMQX /api/v5/prometheus/stats",
    "emqx_messages_sent": "EMQX /api/v5/prometheus/stats",
    "emqx_messages_dropped": "EMQX /api/v5/prometheus/stats",
    "rabbitmq_queue_messages_ready": "RabbitMQ rabbitmq_prometheus plugin",
    "rabbitmq_queue_messages_unacked": "RabbitMQ rabbitmq_prometheus plugin",
    "rabbitmq_global_messages_received_total": "RabbitMQ rabbitmq_prometheus plugin",
    "rabbitmq_global_messages_delivered_total": "RabbitMQ rabbitmq_prometheus plugin",
    "rabbitmq_consumers": "RabbitMQ rabbitmq_prometheus plugin",
    "redis_up": "redis_exporter",
    "redis_connected_clients": "redis_exporter",
    "redis_memory_used_bytes": "redis_exporter",
    "redis_commands_processed_total": "redis_exporter",
    "redis_connected_slaves": "redis_exporter",
}


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[Target, ...]
    unit: str
    description: str  # required: every panel says what it shows (Grafana shows it as the panel's help)
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    stack: bool = False
    extra_defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    region_variable: bool = True
    tags: tuple[str, ...] = ("tier0",)


def p(title: str, unit: str, *targets: Target, **kw: Any) -> Panel:
    return Panel(title=title, targets=targets, unit=unit, **kw)


def t(expr: str, legend: str = "") -> Target:
    return Target(expr=expr, legend=legend)


MSG_S = "mps"  # Grafana's built-in unit for messages per second

FLEET = Dashboard(
    uid="tier0-fleet",
    title="tier0 / Fleet",
    description="Device telemetry end to end: simulator publish rate, ingest by result, active devices, alerts.",
    rows=(
        Row(
            "Throughput",
            (
                p(
                    "Messages published by the simulators",
                    MSG_S,
                    t(f"sum(rate(tier0_simulator_messages_published_total{{{NS}}}[{RI}]))", "published"),
                    description="Device messages per second the fleet simulators publish to the brokers.",
                ),
                p(
                    "Messages ingested, by result",
                    MSG_S,
                    t(f"sum by (result) (rate(tier0_ingest_messages_total{{{NS_REGION}}}[{RI}]))", "{{result}}"),
                    stack=True,
                    description="Ingested messages per second: stored, stale (older than stored), invalid.",
                ),
            ),
        ),
        Row(
            "Devices",
            (
                p(
                    "Active devices, by region",
                    "short",
                    t(f"max by (region) (tier0_ingest_active_devices{{{NS_REGION}}})", "{{region}}"),
                    description="Devices seen within the activity window, as the ingest workers last wrote it.",
                ),
                p(
                    "Simulated devices, by state",
                    "short",
                    t(f"sum by (state) (tier0_simulator_devices{{{NS}}})", "{{state}}"),
                    stack=True,
                    description="OK / WARN / ALERT as the simulators generate them.",
                ),
                p(
                    "Devices in ALERT",
                    "short",
                    t(f'sum(tier0_simulator_devices{{{NS}, state="ALERT"}})', "ALERT"),
                    kind="stat",
                    width=6,
                    description="Simulated devices whose newest state is ALERT.",
                ),
                p(
                    "Invalid messages (dead-lettered)",
                    MSG_S,
                    t(f'sum(rate(tier0_ingest_messages_total{{{NS_REGION}, result="invalid"}}[{RI}]))', "invalid"),
                    kind="stat",
                    width=6,
                    description="Messages per second that failed validation and went to the dead-letter list.",
                ),
            ),
        ),
        Row(
            "Ingest workers",
            (
                p(
                    "Ingest lag (newest message age at write)",
                    "s",
                    t(f"max by (region) (tier0_ingest_lag_seconds{{{NS_REGION}}})", "{{region}}"),
                    description="Age of the newest message of each batch when it was written to Redis.",
                ),
                p(
                    "Messages waiting for their batch",
                    "short",
                    t(f"sum by (region) (tier0_ingest_pending_messages{{{NS_REGION}}})", "{{region}}"),
                    description="Messages received and not yet written (and so not yet acknowledged).",
                ),
                p(
                    "Writing (region's Redis is primary)",
                    "bool_yes_no",
                    t(f"max by (region) (tier0_ingest_writable{{{NS_REGION}}})", "{{region}}"),
                    kind="stat",
                    width=12,
                    description="Whether the region's ingest workers can write: their Redis is the primary.",
                ),
                p(
                    "Batch write p99",
                    "s",
                    t(
                        f"histogram_quantile(0.99, sum by (le, region) "
                        f"(rate(tier0_ingest_batch_seconds_bucket{{{NS_REGION}}}[{RI}])))",
                        "{{region}}",
                    ),
                    width=12,
                    description="99th percentile of one batch's write to Redis (one Lua call).",
                ),
            ),
        ),
    ),
)

ROUTE = 'route=~"$route"'
API_COUNT = "tier0_api_request_duration_seconds_count"
API_BUCKET = "tier0_api_request_duration_seconds_bucket"
API_RATE = f"sum by (region) (rate({API_COUNT}{{{NS_REGION}}}[{RI}]))"
API_5XX = f'sum by (region) (rate({API_COUNT}{{{NS_REGION}, status=~"5.."}}[{RI}]))'
REGIONS = Dashboard(
    uid="tier0-regions",
    title="tier0 / Regions",
    description="The region APIs: request rate, errors and latency quantiles by endpoint.",
    rows=(
        Row(
            "Traffic",
            (
                p(
                    "Requests, by region",
                    "reqps",
                    t(
                        f"sum by (region) (rate(tier0_api_request_duration_seconds_count{{{NS_REGION}}}[{RI}]))",
                        "{{region}}",
                    ),
                    description="Requests per second each region's API answers.",
                ),
                p(
                    "Requests, by endpoint",
                    "reqps",
                    t(
                        f"sum by (route) (rate({API_COUNT}{{{NS_REGION}, {ROUTE}}}[{RI}]))",
                        "{{route}}",
                    ),
                    description="Requests per second, by route template.",
                ),
                p(
                    "Error ratio (5xx), by region",
                    "percentunit",
                    t(f"({API_5XX} or {API_RATE} * 0) / {API_RATE}", "{{region}}"),
                    description="0 (not empty) while no request fails.",
                ),
                p(
                    "Requests in progress",
                    "short",
                    t(f"sum by (region) (tier0_api_requests_in_progress{{{NS_REGION}}})", "{{region}}"),
                    description="Requests being answered right now.",
                ),
            ),
        ),
        Row(
            "Latency",
            tuple(
                p(
                    f"p{int(q * 100)} latency, by endpoint",
                    "s",
                    t(
                        f"histogram_quantile({q}, sum by (le, route) "
                        f"(rate(tier0_api_request_duration_seconds_bucket{{{NS_REGION}, {ROUTE}}}[{RI}])))",
                        "{{route}}",
                    ),
                    width=8,
                    description=f"{int(q * 100)}th percentile of the response time, by route template.",
                )
                for q in (0.5, 0.95, 0.99)
            )
            + (
                p(
                    "Share of requests under 25 ms",
                    "percentunit",
                    t(
                        f'sum by (region) (rate({API_BUCKET}{{{NS_REGION}, le="0.025"}}[{RI}]))'
                        f" / sum by (region) (rate(tier0_api_request_duration_seconds_count{{{NS_REGION}}}[{RI}]))",
                        "{{region}}",
                    ),
                    description="The latency target is a bucket bound, so this ratio is exact.",
                ),
                p(
                    "Redis errors answered 503",
                    "reqps",
                    t(
                        f"sum by (region, error) (rate(tier0_api_redis_errors_total{{{NS_REGION}}}[{RI}]))"
                        f" or {API_RATE} * 0",
                        "{{region}} {{error}}",
                    ),
                    description="Requests answered 503 because Redis failed, by error.",
                ),
            ),
        ),
    ),
)

PAIR = 'pair=~"$pair"'
FAILOVER = Dashboard(
    uid="tier0-failover",
    title="tier0 / Failover",
    description="RegionPairs as the operator sees them: active region, health, replication lag, transitions.",
    region_variable=False,
    rows=(
        Row(
            "Regions",
            (
                p(
                    "Primary region",
                    "short",
                    t(
                        f'max by (pair, region) (tier0_operator_region_role{{{NS}, {PAIR}, role="primary"}}) == 1',
                        "{{pair}}: {{region}}",
                    ),
                    kind="stat",
                    width=8,
                    description="The region whose Redis is the primary (the active region).",
                ),
                p(
                    "Region healthy",
                    "bool_yes_no",
                    t(f"max by (pair, region) (tier0_operator_region_healthy{{{NS}, {PAIR}}})", "{{pair}} {{region}}"),
                    kind="stat",
                    width=8,
                    description="1 while the operator's probes of the region (Redis and health URL) succeed.",
                ),
                p(
                    "Operator replica acting (Lease held)",
                    "short",
                    t(f"sum(tier0_operator_leader{{{NS}}})", "leaders"),
                    kind="stat",
                    width=8,
                    description="Must be exactly 1.",
                ),
                p(
                    "Replication lag",
                    "bytes",
                    t(f"max by (pair) (tier0_operator_replication_lag_bytes{{{NS}, {PAIR}}})", "{{pair}}"),
                    description="Bytes the standby is behind the active primary: what a failover now could lose.",
                ),
                p(
                    "Epoch (promotions so far)",
                    "short",
                    t(f"max by (pair) (tier0_operator_epoch{{{NS}, {PAIR}}})", "{{pair}}"),
                    description="status.epoch: grows by one with every promotion.",
                ),
            ),
        ),
        Row(
            "Transitions",
            (
                p(
                    "Transitions, by type and outcome",
                    "short",
                    t(
                        f"sum by (type, outcome) (increase(tier0_operator_transitions_total{{{NS}}}[{RI}]))",
                        "{{type}} {{outcome}}",
                    ),
                    kind="timeseries",
                    stack=True,
                    description="Switchovers and failovers in the interval, by type and outcome.",
                ),
                p(
                    "Transition duration p50 / p99",
                    "s",
                    t(
                        f"histogram_quantile(0.5, sum by (le, type) "
                        f"(rate(tier0_operator_transition_duration_seconds_bucket{{{NS}}}[{RI}])))",
                        "p50 {{type}}",
                    ),
                    t(
                        f"histogram_quantile(0.99, sum by (le, type) "
                        f"(rate(tier0_operator_transition_duration_seconds_bucket{{{NS}}}[{RI}])))",
                        "p99 {{type}}",
                    ),
                    description="From the start of a transition to the Service selector flip.",
                ),
                p(
                    "Probe duration p99",
                    "s",
                    t(
                        f"histogram_quantile(0.99, sum by (le) "
                        f"(rate(tier0_operator_probe_duration_seconds_bucket{{{NS}}}[{RI}])))",
                        "p99",
                    ),
                    description="One probe of one region's Redis and health URL.",
                ),
                p(
                    "Failover requests through the API, p99",
                    "s",
                    t(
                        f"histogram_quantile(0.99, sum by (le, outcome) "
                        f"(rate(tier0_api_failover_duration_seconds_bucket{{{NS}}}[{RI}])))",
                        "{{outcome}}",
                    ),
                    description="POST /api/failover/* latency as clients see it, by outcome.",
                ),
            ),
        ),
    ),
)

BROKERS = Dashboard(
    uid="tier0-brokers",
    title="tier0 / Brokers and consumers",
    description="EMQX, RabbitMQ and Redis as their exporters report them, beside tier0's consumers.",
    rows=(
        Row(
            "MQTT (EMQX) and ingest",
            (
                p(
                    "EMQX messages in / out",
                    MSG_S,
                    t(f"sum by (region) (rate(emqx_messages_received{{{NS_REGION}}}[{RI}]))", "received {{region}}"),
                    t(f"sum by (region) (rate(emqx_messages_sent{{{NS_REGION}}}[{RI}]))", "sent {{region}}"),
                    t(f"sum by (region) (rate(emqx_messages_dropped{{{NS_REGION}}}[{RI}]))", "dropped {{region}}"),
                    description="Messages per second each region's EMQX receives (from devices, while its region "
                    "is active) and delivers to its ingest workers.",
                ),
                p(
                    "EMQX connections",
                    "short",
                    t(f"sum by (region) (emqx_connections_count{{{NS_REGION}}})", "{{region}}"),
                    description="MQTT connections open on each region's EMQX: the active region's holds the devices'.",
                ),
                p(
                    "Ingest acknowledgements (after the Redis write)",
                    MSG_S,
                    t(f"sum by (region) (rate(tier0_ingest_acks_total{{{NS_REGION}}}[{RI}]))", "{{region}}"),
                    description="PUBACKs per second the ingest workers send, each after its message was written.",
                ),
                p(
                    "Ingest write errors, by kind",
                    "ops",
                    t(
                        f"sum by (region, error) (rate(tier0_ingest_write_errors_total{{{NS_REGION}}}[{RI}]))",
                        "{{region}} {{error}}",
                    ),
                    description="Failed batch writes per second, by error (READONLY, NOREPLICAS, connection).",
                ),
                p(
                    "Ingest MQTT connected",
                    "bool_yes_no",
                    t(f"min by (region) (tier0_ingest_mqtt_connected{{{NS_REGION}}})", "{{region}}"),
                    kind="stat",
                    description="1 while every ingest worker of the region is connected to its broker.",
                ),
                p(
                    "Simulator publish lag",
                    "s",
                    t(f"max(tier0_simulator_publish_lag_seconds{{{NS}}})", "lag"),
                    description="How late the simulators' publishing slots start; above 0 they fall behind.",
                ),
            ),
        ),
        Row(
            "AMQP (RabbitMQ) and the activity consumer",
            (
                p(
                    "Queue depth",
                    "short",
                    t(f"sum by (region) (rabbitmq_queue_messages_ready{{{NS_REGION}}})", "ready {{region}}"),
                    t(f"sum by (region) (rabbitmq_queue_messages_unacked{{{NS_REGION}}})", "unacked {{region}}"),
                    description="Messages ready and unacknowledged in each region's RabbitMQ queues.",
                ),
                p(
                    "RabbitMQ messages in / delivered",
                    MSG_S,
                    t(
                        f"sum by (region) (rate(rabbitmq_global_messages_received_total{{{NS_REGION}}}[{RI}]))",
                        "received {{region}}",
                    ),
                    t(
                        f"sum by (region) (rate(rabbitmq_global_messages_delivered_total{{{NS_REGION}}}[{RI}]))",
                        "delivered {{region}}",
                    ),
                    description="Messages per second each region's RabbitMQ receives and delivers.",
                ),
                p(
                    "Consumers",
                    "short",
                    t(f"sum by (region) (rabbitmq_consumers{{{NS_REGION}}})", "{{region}}"),
                    kind="stat",
                    width=6,
                    description="Consumers attached to each region's RabbitMQ (its own activity consumers).",
                ),
                p(
                    "Activity consumer connected",
                    "bool_yes_no",
                    t(f"min by (region) (tier0_activity_broker_connected{{{NS_REGION}}})", "{{region}}"),
                    kind="stat",
                    width=6,
                    description="1 while the region's activity consumer is connected to RabbitMQ.",
                ),
                p(
                    "User-activity messages published (confirmed)",
                    MSG_S,
                    t(f"sum(rate(tier0_user_simulator_messages_published_total{{{NS}}}[{RI}]))", "published"),
                    description="User-activity messages per second the simulator published with a publisher confirm.",
                ),
                p(
                    "Activity messages handled, by result",
                    MSG_S,
                    t(
                        f"sum by (region, result) (rate(tier0_activity_messages_total{{{NS_REGION}}}[{RI}]))",
                        "{{region}} {{result}}",
                    ),
                    stack=True,
                    description="requeued: the region's Redis is a replica or down; the message waits in the queue.",
                ),
                p(
                    "Activity consumer lag (queue depth)",
                    "short",
                    t(f"max by (region) (tier0_activity_queue_messages{{{NS_REGION}}})", "queued {{region}}"),
                    description="Messages waiting in the activity consumer's queue.",
                ),
                p(
                    "Activity write p99",
                    "s",
                    t(
                        f"histogram_quantile(0.99, sum by (le, region) "
                        f"(rate(tier0_activity_apply_seconds_bucket{{{NS_REGION}}}[{RI}])))",
                        "{{region}}",
                    ),
                    description="99th percentile of one activity message's write to Redis.",
                ),
            ),
        ),
        Row(
            "Redis",
            (
                p(
                    "Redis up",
                    "bool_yes_no",
                    t(f"min by (region) (redis_up{{{NS_REGION}}})", "{{region}}"),
                    kind="stat",
                    description="1 while the Redis exporter reaches the region's Redis.",
                ),
                p(
                    "Commands",
                    "ops",
                    t(f"sum by (region) (rate(redis_commands_processed_total{{{NS_REGION}}}[{RI}]))", "{{region}}"),
                    description="Redis commands processed per second.",
                ),
                p(
                    "Memory used",
                    "bytes",
                    t(f"max by (region) (redis_memory_used_bytes{{{NS_REGION}}})", "{{region}}"),
                    description="Memory Redis uses.",
                ),
                p(
                    "Clients / replicas",
                    "short",
                    t(f"max by (region) (redis_connected_clients{{{NS_REGION}}})", "clients {{region}}"),
                    t(f"max by (region) (redis_connected_slaves{{{NS_REGION}}})", "replicas {{region}}"),
                    description="Connected clients and replicas of the region's Redis.",
                ),
            ),
        ),
    ),
)

DASHBOARDS = (FLEET, REGIONS, FAILOVER, BROKERS)


def _variables(d: Dashboard) -> list[dict[str, Any]]:
    def query(name: str, label: str, q: str, include_all: bool = True) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": q, "refId": f"{name}-var"},
            "definition": q,
            "refresh": 2,
            "includeAll": include_all,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }

    variables: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {"text": "default", "value": "default"},
            "refresh": 1,
        },
        query("namespace", "Namespace", 'label_values(up{job=~".*"}, namespace)'),
    ]
    if d.region_variable:
        variables.append(query("region", "Region", 'label_values(up{namespace=~"$namespace"}, region)'))
    if d is REGIONS:
        variables.append(
            query("route", "Endpoint", f"label_values(tier0_api_request_duration_seconds_count{{{NS_REGION}}}, route)")
        )
    if d is FAILOVER:
        variables.append(query("pair", "RegionPair", f"label_values(tier0_operator_region_healthy{{{NS}}}, pair)"))
    return variables


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, **panel.extra_defaults}
    options: dict[str, Any]
    if panel.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "textMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
            "percentChangeColorMode": "standard",
            "orientation": "auto",
        }
    else:
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 10,
            "stacking": {"mode": "normal" if panel.stack else "none"},
        }
        options = {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DS,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {"datasource": DS, "expr": tg.expr, "legendFormat": tg.legend or "__auto", "refId": chr(ord("A") + i)}
            for i, tg in enumerate(panel.targets)
        ],
    }


def build(d: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of one dashboard (rows laid out on the 24-column grid)."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in d.rows:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y, x, row_h = pid + 1, y + 1, 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_h = 0, y + row_h, 0
            panels.append(_panel(panel, pid, x, y))
            pid, x, row_h = pid + 1, x + panel.width, max(row_h, panel.height)
        y += row_h
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": list(d.tags),
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "templating": {"list": _variables(d)},
        "annotations": {"list": []},
        "links": [
            {
                "title": "tier0",
                "type": "dashboards",
                "tags": ["tier0"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "tooltip": "The other tier0 dashboards",
                "targetBlank": False,
            }
        ],
        "panels": panels,
    }


def render(d: Dashboard) -> str:
    return json.dumps(build(d), indent=2, sort_keys=False) + "\n"


def files() -> Iterator[tuple[str, str]]:
    """(file name, content) of every dashboard."""
    for d in DASHBOARDS:
        yield f"{d.uid}.json", render(d)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tier0_dev.dashboards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a written dashboard differs (writes nothing)")
    args = parser.parse_args(argv)
    stale = []
    for out in OUTPUT_DIRS:
        for name, content in files():
            path = out / name
            if args.check:
                if not path.exists() or path.read_text() != content:
                    stale.append(path)
                continue
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale (run `make dashboards`): " + ", ".join(str(s.relative_to(ROOT)) for s in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
