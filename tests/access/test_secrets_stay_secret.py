"""No generated secret in any log line, error message, argv or environment (issue 17, "secrets stay
secret"), with every component running as the charts run them: generated credentials in files,
ACL users on both Redis, the MQTT broker's users and topic rules, RabbitMQ's application user, the
operator on the real kube-apiserver reading its Redis password from a Secret.

What happens while the logs are written: the pipeline flows (devices -> broker -> ingest workers ->
Redis; user activity -> RabbitMQ -> consumer -> Redis), a switchover through the API moves the
primary (every worker logs the endpoint it follows: the lines that carried `redis://:PASSWORD@`),
a component given the wrong password fails and says so, a Secret annotated for generation is filled
by the operator, and everything stops. Then the logs of every process started here, their
/proc/<pid>/cmdline and /proc/<pid>/environ (children included), and the HTTP answers are searched
for each secret value.
"""

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tier0_dev import programs, stack
from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import Process, free_port, port_open
from tier0_operator import secrets as generated
from tier0_services.access import mqtt as mqtt_access
from tier0_services.access import redis as redis_access
from tier0_testing import operator as testing

pytestmark = pytest.mark.controlplane

PY = sys.executable


class Started:
    """Every process this test starts, with what it saw of the world before it stopped."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[Process] = []
        self.seen: dict[str, bytes] = {}  # "<name> cmdline/environ of pid" -> bytes

    def add(self, proc: Process) -> Process:
        self.procs.append(proc)
        return proc

    def python(self, name: str, module: str, args: list[str], env: dict[str, str]) -> Process:
        return self.add(Process(name, [PY, "-m", module, *args], self.logs / f"{name}.log", env=env).start())

    def snapshot(self) -> None:
        """argv and environment of every process of every group started here, while they run."""
        groups = {p.pid: p.name for p in self.procs if p.alive()}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[2]) not in groups:
                    continue
                name = groups[int(stat[2])]
                for what in ("cmdline", "environ"):
                    self.seen[f"{name} {what} of pid {entry}"] = Path(f"/proc/{entry}/{what}").read_bytes()
            except (OSError, IndexError, ValueError):
                continue

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=15)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    s = Started(tmp_path / "logs")
    yield s
    s.stop()


def wait(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_no_generated_secret_is_logged_or_passed_in_argv_or_environment(
    control_plane: ControlPlane, kubectl: list[str], regionpair_crd: Path, tmp_path: Path, started: Started
) -> None:
    secrets = programs.Secrets.generate(tmp_path / "secrets")
    values = secrets.values()
    assert len(values) == 11 and all(len(v) >= 24 for v in values)
    token = (secrets.dir("api") / "token").read_text()
    ns = f"sec-{uuid.uuid4().hex[:6]}"

    # Servers, as the chart configures them.
    redis_ports = {"region1": free_port(), "region2": free_port()}
    for region, port in redis_ports.items():
        started.add(
            programs.redis(port, tmp_path / f"redis-{region}", extra=programs.PAIR_WRITE_GUARD, secrets=secrets)
        )
    mqtt_port = free_port()
    started.add(programs.mosquitto(mqtt_port, tmp_path / "mosquitto", secrets))
    rabbit = programs.RabbitPorts(amqp=free_port(), dist=free_port())
    started.add(programs.rabbitmq(rabbit, tmp_path / "rabbitmq", secrets))

    # The pair on the control plane; the operator's password in a Secret, as the chart renders it.
    testing.run_kubectl(kubectl, "create", "namespace", ns)
    service = testing.service_manifest("region-api", owner="og-field")
    testing.run_kubectl(kubectl, "-n", ns, "apply", "-f", "-", stdin=json.dumps(service))
    stack.create_redis_secret(kubectl, ns, secrets)
    api_ports = {"region1": free_port(), "region2": free_port()}
    health = {r: f"http://127.0.0.1:{p}/health" for r, p in api_ports.items()}
    pair = testing.pair_manifest("og-field", redis_ports, health_urls=health, interval=0.5)
    for region in pair["spec"]["regions"]:
        region["redis"]["username"] = redis_access.OPERATOR
        region["redis"]["passwordSecretRef"] = {"name": "tier0-redis", "key": "operator-password"}
    pair["spec"]["generatedSecrets"] = ["generated"]  # the operator reads the Secrets a pair names
    testing.run_kubectl(kubectl, "-n", ns, "apply", "-f", "-", stdin=json.dumps(pair))
    op_env = {"KUBECONFIG": str(control_plane.kubeconfig), "TIER0_OPERATOR_METRICS_PORT": str(free_port())}
    op_env |= {"TIER0_OPERATOR_METRICS_HOST": "127.0.0.1", "TIER0_OPERATOR_LEASE_NAMESPACE": ns}
    started.python("operator", "tier0_operator", ["--namespace", ns], op_env)

    # A Secret for the operator to fill (the chart's generated Secrets).
    annotated = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "generated", "annotations": {generated.GENERATE_ANNOTATION: "password"}},
    }
    testing.run_kubectl(kubectl, "-n", ns, "apply", "-f", "-", stdin=json.dumps(annotated))

    # The components, with credentials from files.
    for region, port in api_ports.items():
        env = {
            "TIER0_REGION": region,
            "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_ports[region]}/0",
            **secrets.redis_env(),
            "TIER0_API_TOKEN_FILE": str(secrets.dir("api") / "token"),
            "TIER0_KUBECONFIG": str(control_plane.kubeconfig),
            "TIER0_REGIONPAIR_NAME": "og-field",
            "TIER0_REGIONPAIR_NAMESPACE": ns,
            "TIER0_AI_LOAD_SAMPLES": "false",
        }
        started.python(f"api-{region}", "tier0_services.api", ["--port", str(port)], env)
    for region, port in redis_ports.items():
        other = next(p for r, p in redis_ports.items() if r != region)
        common = {
            "TIER0_REGION": region,
            "TIER0_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "TIER0_PEER_REDIS_URLS": f'["redis://127.0.0.1:{other}/0"]',
            **secrets.redis_env(),
            "TIER0_METRICS_PORT": "0",
        }
        mqtt = {"TIER0_MQTT_PORT": str(mqtt_port), **secrets.mqtt_env(mqtt_access.INGEST)}
        started.python(f"ingest-{region}", "tier0_services.ingest", [], {**common, **mqtt})
        started.python(f"activity-{region}", "tier0_services.activity", [], {**common, **secrets.amqp_env(rabbit.amqp)})
    sim = ["--devices", "200", "--mqtt-port", str(mqtt_port), "--metrics-port", "0", "--report-every", "2"]
    started.python("device-simulator", "tier0_simulators.devices", sim, secrets.mqtt_env(mqtt_access.GATEWAY))
    users = ["--interval", "0.5", "--min-users", "5", "--max-users", "10"]
    started.python("user-simulator", "tier0_simulators.users", users, secrets.amqp_env(rabbit.amqp))
    # One given a password that is not its own: refused, and it must say so without the value.
    wrong = {
        **secrets.mqtt_env(mqtt_access.INGEST),
        "TIER0_MQTT_PASSWORD_FILE": str(secrets.dir("mqtt") / "gateway-password"),
    }
    started.python(
        "ingest-wrong-password", "tier0_services.ingest", [], {**common, "TIER0_MQTT_PORT": str(mqtt_port), **wrong}
    )
    wrong_api = free_port()
    wrong_env = {
        "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_ports['region1']}/0",
        **secrets.redis_env(),
        "TIER0_REDIS_PASSWORD_FILE": str(secrets.dir("redis") / "operator-password"),
        "TIER0_AI_LOAD_SAMPLES": "false",
    }
    started.python("api-wrong-password", "tier0_services.api", ["--port", str(wrong_api)], wrong_env)

    answers: list[str] = []
    with httpx.Client(timeout=70) as client:
        api = f"http://127.0.0.1:{api_ports['region1']}"
        wait("both region APIs", lambda: all(port_open(p) for p in (*api_ports.values(), wrong_api)))
        wait("the pair Healthy", lambda: client.get(f"{api}/api/failover/status").json()["phase"] == "Healthy")
        wait("device data", lambda: client.get(f"{api}/api/devices/active").json()["active_devices"] > 0)
        wait("user activity", lambda: client.get(f"{api}/api/users/activity").json()["history"])
        wait(
            "the generated Secret",
            lambda: (
                "password"
                in testing.run_kubectl(kubectl, "-n", ns, "get", "secret", "generated", "-o", "jsonpath={.data}")
            ),
        )
        started.snapshot()
        switch = client.post(f"{api}/api/failover/simulate", headers={"Authorization": f"Bearer {token}"})
        assert switch.status_code == 200, switch.text
        answers.append(switch.text)
        wait(
            "the workers on region2's Redis",
            lambda: _logged(started, f"primary: redis://127.0.0.1:{redis_ports['region2']}/0", 4),
        )
        refused = client.get(f"http://127.0.0.1:{wrong_api}/api/status")
        assert refused.status_code == 503
        answers.append(refused.text)
        answers.append(client.post(f"{api}/api/failover/simulate", headers={"Authorization": "Bearer no"}).text)
        wait("the refused worker's log", lambda: _logged(started, "mqtt connect refused by the broker", 1))
    started.snapshot()
    started.stop()

    searched = {f"log {p.log_path.name}": p.log_path.read_bytes() for p in started.procs if p.log_path.exists()}
    searched |= {f"server log {f}": f.read_bytes() for f in _server_logs(tmp_path)}
    searched |= started.seen
    searched |= {f"HTTP answer {i}": a.encode() for i, a in enumerate(answers)}
    assert len(started.seen) >= 2 * len(started.procs)
    assert any(b"primary: redis://" in text for text in searched.values())
    leaks = [
        (where, value[:4] + "...") for where, text in searched.items() for value in values if value.encode() in text
    ]
    generated_value = testing.run_kubectl(
        kubectl, "-n", ns, "get", "secret", "generated", "-o", "jsonpath={.data.password}"
    )
    leaks += [(where, "generated Secret") for where, text in searched.items() if generated_value.encode() in text]
    assert leaks == [], f"secrets found: {leaks}"
    testing.run_kubectl(kubectl, "delete", "namespace", ns, "--wait=false", check=False)


def _logged(started: Started, text: str, times: int) -> bool:
    return (
        sum(p.log_path.read_text(errors="replace").count(text) for p in started.procs if p.log_path.exists()) >= times
    )


def _server_logs(root: Path) -> list[Path]:
    """The servers' own log files (redis.log, mosquitto.log, rabbitmq's) under the test's folders."""
    return [p for p in root.rglob("*.log") if p.is_file() and "logs" not in p.parts]
