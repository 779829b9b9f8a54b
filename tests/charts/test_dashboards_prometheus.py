"""The dashboards against real programs: PromQL that parses, metrics that exist, queries that answer.

What is tested:
- every panel query parses as PromQL (`promtool check rules` on the queries written as recording
  rules; promtool 2.42 has no standalone expression parser);
- every tier0 metric a panel uses is exported by a running tier0 component: the region APIs, the
  ingest workers, the activity consumers, both simulators and the operator are started for real (two redis-servers,
  mosquitto, the local kube-apiserver with a RegionPair) and their /metrics are read; the
  rabbitmq_* metrics likewise from a real rabbitmq-server with its Prometheus plugin. The module
  owns its brokers (its simulators publish for as long as it runs, its workers keep persistent
  sessions): nothing it starts can reach the session's brokers, which other tests observe, and
  every process it started is checked to be gone when it ends;
- a real Prometheus (Debian package) scraping all of them returns data for every panel query that
  reads tier0 or RabbitMQ metrics, after real traffic: device messages through MQTT, user activity
  through RabbitMQ, API requests and one switchover requested through the API (so the transition
  and failover panels have data too).
Queries on EMQX and redis_exporter metrics are only parsed here (neither program is installed);
their metrics are listed in dashboards.EXTERNAL_METRICS and scraped for real on a cluster (kind).
"""

import json
import re
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tier0_dev import procs, programs
from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import ROOT, Process, find_program, free_port, port_open
from tier0_services.access import mqtt as mqtt_access
from tier0_testing import operator as testing

pytestmark = pytest.mark.controlplane

DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b((?:tier0|emqx|rabbitmq|redis)_[a-z0-9_]+)\b")
NAMESPACE_LABEL = "tier0-local"
TOKEN = "dashboards-test-token"
RATE_WINDOW = "20s"  # stands in for $__rate_interval at a 1 s scrape interval


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard/panel title, expr) of every panel target."""
    out = []
    for path in DASHBOARDS:
        model = json.loads(path.read_text())
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{model['uid']}/{panel['title']}", target["expr"]))
    return out


def concrete(expr: str) -> str:
    """The query as Grafana sends it with every variable on All and the rate interval resolved."""
    expr = expr.replace("$__rate_interval", RATE_WINDOW)
    return re.sub(r"\$(namespace|region|route|pair)\b", ".*", expr)


def run(argv: list[str]) -> tuple[int, str]:
    import subprocess

    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def test_every_panel_query_parses(tmp_path: Path) -> None:
    queries = panel_queries()
    assert len(queries) > 30
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"tier0:panel_{i}", "expr": concrete(e)} for i, (_, e) in enumerate(queries)],
            }
        ]
    }
    path = tmp_path / "panels.rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    code, output = run([find_program("promtool"), "check", "rules", str(path)])
    assert code == 0, output
    assert f"SUCCESS: {len(queries)} rules found" in output


@dataclass
class Stack:
    """The running components: scrape jobs (job -> [(port, labels)]) and the Prometheus port;
    `servers` (Redis, brokers) stop after `processes` (their clients)."""

    jobs: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    servers: list[Process] = field(default_factory=list)
    prometheus_port: int = 0

    def stop(self) -> None:
        """Clients first, all at once, then the servers they used, all at once (so no client
        spends its shutdown reconnecting); fails if a process is still running afterwards."""
        left = procs.stop_all(self.processes) + procs.stop_all(self.servers)
        assert not left, f"still running after the stack stopped: {left}"

    def metrics_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/metrics" for targets in self.jobs.values() for port, _ in targets]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def start(stack: Stack, name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> Process:
    proc = Process(name, argv, log_dir / f"{name}.log", env=env).start()
    stack.processes.append(proc)
    return proc


def prometheus_config(stack: Stack) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NAMESPACE_LABEL, **labels}}
                    for port, labels in targets
                ],
            }
            for job, targets in stack.jobs.items()
        ],
    }


@pytest.fixture(scope="module")
def stack(
    control_plane: ControlPlane,
    kubectl: list[str],
    local_secrets: programs.Secrets,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """Two regions, an operator, the ingest workers and a simulator on a broker of their own,
    scraped by a real Prometheus."""
    logs = tmp_path_factory.mktemp("dashboards-stack")
    s = Stack()
    py = sys.executable
    try:
        mosquitto_port = free_port()
        s.servers.append(programs.mosquitto(mosquitto_port, logs / "mosquitto", local_secrets))
        redis_ports = {}
        for region in ("region1", "region2"):
            port = free_port()
            s.servers.append(programs.redis(port, logs / f"redis-{region}"))
            redis_ports[region] = port

        ns = f"dash-{uuid.uuid4().hex[:6]}"
        testing.run_kubectl(kubectl, "apply", "-f", str(ROOT / "crds" / "regionpairs.tier0.dev.yaml"))
        testing.run_kubectl(
            kubectl, "wait", "--for=condition=Established", "crd/regionpairs.tier0.dev", "--timeout=30s"
        )
        testing.run_kubectl(kubectl, "create", "namespace", ns)
        service = testing.service_manifest("region-api", owner="og-field")
        testing.run_kubectl(kubectl, "-n", ns, "apply", "-f", "-", stdin=json.dumps(service))

        api_ports = {region: free_port() for region in redis_ports}
        for region, port in api_ports.items():
            env = {
                "TIER0_REGION": region,
                "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_ports[region]}/0",
                "TIER0_API_TOKEN": TOKEN,
                "TIER0_KUBECONFIG": str(control_plane.kubeconfig),
                "TIER0_REGIONPAIR_NAME": "og-field",
                "TIER0_REGIONPAIR_NAMESPACE": ns,
            }
            start(s, f"api-{region}", [py, "-m", "tier0_services.api", "--port", str(port)], logs, env)
            s.jobs.setdefault("region-api", []).append((port, {"region": region}))
        for port in api_ports.values():
            wait_http(f"http://127.0.0.1:{port}/health")

        health = {r: f"http://127.0.0.1:{p}/health" for r, p in api_ports.items()}
        pair = testing.pair_manifest("og-field", redis_ports, health_urls=health)
        testing.run_kubectl(kubectl, "-n", ns, "apply", "-f", "-", stdin=json.dumps(pair))
        op, op_port = testing.start_operator(control_plane.kubeconfig, ns, logs / "operator.log")
        s.processes.append(op)
        s.jobs["operator"] = [(op_port, {})]

        for region, port in redis_ports.items():
            metrics_port = free_port()
            env = {
                "TIER0_REGION": region,
                "TIER0_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "TIER0_MQTT_HOST": "127.0.0.1",
                "TIER0_MQTT_PORT": str(mosquitto_port),
                "TIER0_METRICS_PORT": str(metrics_port),
                **local_secrets.mqtt_env(mqtt_access.INGEST),
            }
            start(s, f"ingest-{region}", [py, "-m", "tier0_services.ingest"], logs, env)
            s.jobs.setdefault("ingest", []).append((metrics_port, {"region": region}))

        # RabbitMQ with its Prometheus plugin: the broker panels' rabbitmq_* metrics are checked for real.
        rabbit = programs.RabbitPorts(amqp=free_port(), dist=free_port(), prometheus=free_port())
        s.servers.append(programs.rabbitmq(rabbit, logs / "rabbitmq", local_secrets))
        assert rabbit.prometheus is not None
        s.jobs["rabbitmq"] = [(rabbit.prometheus, {})]
        amqp = local_secrets.amqp_env(rabbit.amqp)
        for region, port in redis_ports.items():
            metrics_port = free_port()
            env = {
                **amqp,
                "TIER0_REDIS_URL": f"redis://127.0.0.1:{port}/0",
                "TIER0_METRICS_PORT": str(metrics_port),
                "TIER0_REGION": region,
            }
            start(s, f"activity-{region}", [py, "-m", "tier0_services.activity"], logs, env)
            s.jobs.setdefault("activity", []).append((metrics_port, {"region": region}))
        users_port = free_port()
        users_argv = [py, "-m", "tier0_simulators.users", "--interval", "1", "--min-users", "20", "--max-users", "40"]
        start(s, "user-simulator", users_argv, logs, {**amqp, "TIER0_METRICS_PORT": str(users_port)})
        s.jobs["user-simulator"] = [(users_port, {})]

        sim_port = free_port()
        sim_argv = [
            py,
            "-m",
            "tier0_simulators.devices",
            "--devices",
            "300",
            "--metrics-port",
            str(sim_port),
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(mosquitto_port),
            "--report-every",
            "2",
        ]
        start(s, "device-simulator", sim_argv, logs, local_secrets.mqtt_env(mqtt_access.GATEWAY))
        s.jobs["simulator"] = [(sim_port, {})]
        for url in s.metrics_urls():
            wait_http(url)

        s.prometheus_port = free_port()
        config = logs / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(s)))
        prom_argv = [
            find_program("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={logs / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{s.prometheus_port}",
            "--log.level=warn",
        ]
        prom = start(s, "prometheus", prom_argv, logs, {})
        prom.wait_ready(lambda: port_open(s.prometheus_port), timeout=30)
        wait_http(f"http://127.0.0.1:{s.prometheus_port}/-/ready")

        # Traffic: API reads on both regions, then one switchover requested through the API.
        with httpx.Client(timeout=70) as client:
            for _ in range(3):
                for port in api_ports.values():
                    for path in ("/api/status", "/api/devices/active", "/health", "/api/devices/metrics/site/NOPE"):
                        client.get(f"http://127.0.0.1:{port}{path}")
            deadline = time.monotonic() + 30
            while True:  # the operator needs a few probes before the pair is Healthy
                answer = client.post(
                    f"http://127.0.0.1:{api_ports['region1']}/api/failover/simulate",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                if answer.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert answer.status_code == 200, answer.text
            for port in api_ports.values():
                client.get(f"http://127.0.0.1:{port}/api/status")
        time.sleep(int(RATE_WINDOW.rstrip("s")) + 2)  # enough samples for every rate window
        yield s
    finally:
        s.stop()


def exported_names(urls: list[str]) -> set[str]:
    names: set[str] = set()
    for url in urls:
        text = httpx.get(url, timeout=5).text
        for family in text_string_to_metric_families(text):
            names.update(sample.name for sample in family.samples)
            # A labelled metric no event has touched yet (e.g. errors by kind) is declared, sample-less.
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    return names


def test_every_tier0_and_rabbitmq_metric_a_panel_uses_is_exported(stack: Stack) -> None:
    used = {m for _, expr in panel_queries() for m in METRIC.findall(expr) if m.startswith(("tier0_", "rabbitmq_"))}
    exported = exported_names(stack.metrics_urls())
    missing = sorted(used - exported)
    assert not missing, f"panels use metrics no running tier0 component exports: {missing}"


def test_prometheus_returns_data_for_every_tier0_and_rabbitmq_panel_query(stack: Stack) -> None:
    empty = []
    queries = [(title, expr) for title, expr in panel_queries() if "tier0_" in expr or "rabbitmq_" in expr]
    for title, expr in queries:
        q = urllib.parse.urlencode({"query": concrete(expr)})
        body = httpx.get(f"http://127.0.0.1:{stack.prometheus_port}/api/v1/query?{q}", timeout=10).json()
        assert body["status"] == "success", (title, body)
        if not body["data"]["result"]:
            empty.append(f"{title}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
