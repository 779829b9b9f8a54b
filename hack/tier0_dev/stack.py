"""The local stack behind `make up` / `make down` / `make status`.

Each component starts detached, with its pid (its process group) in `.run/pids/` and its log in
`.run/logs/`, so `make down` stops exactly what `make up` started and nothing else. Ports are the
fixed ones of DESIGN.md. Components are started in list order and stopped in reverse.
"""

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tier0_dev import controlplane, programs
from tier0_dev.procs import ROOT, Process, find_program, port_open, stop_group

RUN = Path(os.environ.get("TIER0_RUN_DIR", ROOT / ".run"))
PIDS = RUN / "pids"
LOGS = RUN / "logs"
PYTHON = sys.executable


@dataclass(frozen=True)
class Component:
    name: str
    where: str  # what `make up` prints: how to reach it
    port: int
    start: Callable[[], list[Process]]


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    return check


def python_module(name: str, module: str, args: list[str], env: dict[str, str]) -> Process:
    """A tier0 component run from this checkout's interpreter."""
    return Process(name, [PYTHON, "-m", module, *args], LOGS / f"{name}.log", env=env).start()


def _redis(region: str, port: int, replica_of: int | None) -> Callable[[], list[Process]]:
    def start() -> list[Process]:
        extra = ("--replicaof", "127.0.0.1", str(replica_of)) if replica_of else ()
        # search=True: redis-stack-server (RediSearch), so the AI vector index runs its KNN path.
        return [programs.redis(port, RUN / f"redis-{region}", persistent=True, extra=extra, search=True)]

    return start


def _region_api(region: str, port: int, redis_port: int) -> Callable[[], list[Process]]:
    def start() -> list[Process]:
        env = {
            "TIER0_REGION": region,
            "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            # Failover endpoints act on the RegionPair in the local control plane; the token is a
            # local-only default (export TIER0_API_TOKEN to choose another).
            "TIER0_KUBECONFIG": str(RUN / "controlplane" / "kubeconfig"),
            "TIER0_API_TOKEN": os.environ.get("TIER0_API_TOKEN", "tier0-local-dev-token"),
            # AI: the labelled samples go into an empty primary at first start (images, corpus, log).
            "TIER0_AI_LOAD_SAMPLES": os.environ.get("TIER0_AI_LOAD_SAMPLES", "true"),
        }
        proc = python_module(f"region-api-{region}", "tier0_services.api", ["--port", str(port)], env)
        return [proc.wait_ready(_http_ok(f"http://127.0.0.1:{port}/health"), timeout=30)]

    return start


def _controlplane() -> list[Process]:
    cp = controlplane.start(RUN / "controlplane", port=6443, etcd_port=2379)
    return cp.processes


def _operator() -> list[Process]:
    """The RegionPair operator on the local control plane, with the CRD and the local pair applied."""
    kubeconfig = RUN / "controlplane" / "kubeconfig"
    kubectl = [find_program("kubectl"), "--kubeconfig", str(kubeconfig)]
    crd = ROOT / "crds" / "regionpairs.tier0.dev.yaml"
    subprocess.run([*kubectl, "apply", "-f", str(crd)], check=True, capture_output=True)
    subprocess.run([*kubectl, "wait", "--for=condition=Established", "crd/regionpairs.tier0.dev"], check=True,
                   capture_output=True)  # fmt: skip
    sample = ROOT / "operator" / "examples" / "regionpair-local.yaml"
    subprocess.run([*kubectl, "apply", "-f", str(sample)], check=True, capture_output=True)
    env = {"KUBECONFIG": str(kubeconfig), "TIER0_OPERATOR_METRICS_PORT": "8080"}
    proc = python_module("operator", "tier0_operator", [], env)
    return [proc.wait_ready(_http_ok("http://127.0.0.1:8080/metrics"), timeout=30)]


def _metric_ready(port: int, line: str) -> Callable[[], bool]:
    """Ready when the component's /metrics has a sample line starting with `line`."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.5) as r:
                return any(row.startswith(line) for row in r.read().decode().splitlines())
        except OSError:
            return False

    return check


def _ingest(region: str, redis_port: int, metrics_port: int) -> Callable[[], list[Process]]:
    """MQTT ingest worker of one region; region2's pauses while its Redis is the replica."""

    def start() -> list[Process]:
        env = {"TIER0_REGION": region, "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
               "TIER0_MQTT_PORT": "1883", "TIER0_METRICS_PORT": str(metrics_port)}  # fmt: skip
        proc = python_module(f"ingest-{region}", "tier0_services.ingest", [], env)
        return [proc.wait_ready(_metric_ready(metrics_port, "tier0_ingest_mqtt_connected 1"), timeout=30)]

    return start


def _activity() -> list[Process]:
    env = {"TIER0_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F", "TIER0_REDIS_URL": "redis://127.0.0.1:6379/0",
           "TIER0_METRICS_PORT": "9102"}  # fmt: skip
    proc = python_module("activity-consumer", "tier0_services.activity", [], env)
    return [proc.wait_ready(_metric_ready(9102, "tier0_activity_broker_connected 1"), timeout=30)]


def _device_simulator() -> list[Process]:
    """10,000 devices by default (laptop-friendly); `DEVICES=100000 make up` for the full fleet, in
    shards of at most 25,000 devices (about what one process publishes per second)."""
    devices = int(os.environ.get("DEVICES", "10000"))
    shards = max(1, -(-devices // 25_000))
    procs = []
    for k in range(shards):
        port = 9103 if k == 0 else 9120 + k
        env = {"DEVICES": str(devices), "SHARD_COUNT": str(shards), "JOB_COMPLETION_INDEX": str(k),
               "MQTT_PORT": "1883", "METRICS_PORT": str(port)}  # fmt: skip
        proc = python_module(f"device-simulator-{k}" if k else "device-simulator", "tier0_simulators.devices", [], env)
        procs.append(proc.wait_ready(_metric_ready(port, "tier0_simulator_messages_published_total"), timeout=30))
    return procs


def _user_simulator() -> list[Process]:
    env = {"TIER0_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F", "TIER0_METRICS_PORT": "9104"}
    proc = python_module("user-simulator", "tier0_simulators.users", [], env)
    return [proc.wait_ready(_metric_ready(9104, "tier0_user_simulator_messages_published_total"), timeout=30)]


COMPONENTS: list[Component] = [
    Component("redis-region1", "redis://127.0.0.1:6379 (primary)", 6379, _redis("region1", 6379, None)),
    Component("redis-region2", "redis://127.0.0.1:6380 (replica of region1)", 6380, _redis("region2", 6380, 6379)),
    Component(
        "mosquitto",
        "mqtt://127.0.0.1:1883 (stand-in for EMQX)",
        1883,
        lambda: [programs.mosquitto(1883, RUN / "mosquitto")],
    ),  # fmt: skip
    Component(
        "rabbitmq",
        "amqp://127.0.0.1:5672, management http://127.0.0.1:15672",
        5672,
        lambda: [programs.rabbitmq(programs.RabbitPorts(5672, 25672, 15672, 15692), RUN / "rabbitmq")],
    ),  # fmt: skip
    Component(
        "controlplane", f"https://127.0.0.1:6443 (KUBECONFIG={RUN}/controlplane/kubeconfig)", 6443, _controlplane
    ),  # fmt: skip
    Component("region-api-region1", "http://127.0.0.1:8000 (docs: /docs)", 8000, _region_api("region1", 8000, 6379)),
    Component("region-api-region2", "http://127.0.0.1:8100 (docs: /docs)", 8100, _region_api("region2", 8100, 6380)),
    Component("operator", "metrics http://127.0.0.1:8080/metrics (kubectl get rp og-field)", 8080, _operator),
    Component(
        "ingest-region1",
        "metrics http://127.0.0.1:9101/metrics (writes redis-region1)",
        9101,
        _ingest("region1", 6379, 9101),
    ),  # fmt: skip
    Component(
        "ingest-region2",
        "metrics http://127.0.0.1:9111/metrics (paused while region2 is the replica)",
        9111,
        _ingest("region2", 6380, 9111),
    ),  # fmt: skip
    Component(
        "activity-consumer",
        "metrics http://127.0.0.1:9102/metrics (webapp_active_users -> redis-region1)",
        9102,
        _activity,
    ),  # fmt: skip
    Component(
        "device-simulator",
        f"metrics http://127.0.0.1:9103/metrics ({os.environ.get('DEVICES', '10000')} "
        "devices, DEVICES=100000 for the full fleet)",
        9103,
        _device_simulator,
    ),  # fmt: skip
    Component(
        "user-simulator", "metrics http://127.0.0.1:9104/metrics (200-500 users, every 5 s)", 9104, _user_simulator
    ),  # fmt: skip
]


def _pidfile(name: str) -> Path:
    return PIDS / f"{name}.pid"


def _running_pids(name: str) -> list[int]:
    path = _pidfile(name)
    if not path.exists():
        return []
    alive = []
    for pid in (int(p) for p in path.read_text().split()):
        try:
            os.killpg(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


def up(only: set[str] | None = None) -> int:
    PIDS.mkdir(parents=True, exist_ok=True)
    for comp in COMPONENTS:
        if only and comp.name not in only:
            continue
        if _running_pids(comp.name):
            print(f"  {comp.name:<22} already running      {comp.where}", flush=True)
            continue
        if port_open(comp.port):
            print(
                f"error: port {comp.port} for {comp.name} is taken by something make up did not start", file=sys.stderr
            )
            return 1
        if sys.stdout.isatty():
            print(f"  {comp.name:<22} starting...", end="\r", flush=True)
        started = time.monotonic()
        procs = comp.start()
        _pidfile(comp.name).write_text(" ".join(str(p.pid) for p in procs))
        print(f"  {comp.name:<22} up in {time.monotonic() - started:4.1f} s  {comp.where}", flush=True)
    print(f"\nlogs: {LOGS} and {RUN}/*/  ·  stop with: make down")
    return 0


def down() -> int:
    for comp in reversed(COMPONENTS):
        pids = _running_pids(comp.name)
        for pid in reversed(pids):
            stop_group(pid)
        if pids:
            print(f"  {comp.name:<22} stopped")
        _pidfile(comp.name).unlink(missing_ok=True)
    return 0


def status() -> int:
    bad = 0
    for comp in COMPONENTS:
        running = bool(_running_pids(comp.name))
        serving = port_open(comp.port)
        state = "up" if running and serving else ("not serving" if running else "down")
        bad += state != "up"
        print(f"  {comp.name:<22} {state:<12} {comp.where}")
    return 1 if bad else 0
