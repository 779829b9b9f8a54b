"""The local process stack behind `python -m tier0_dev up|down|status`.

Each component starts detached, with its pid (its process group) in `.run/pids/` and its log in
`.run/logs/`, so `down` stops exactly what `up` started and nothing else. Ports are the fixed ones
of docs/DESIGN.md. Components are started in list order and stopped in reverse. `up` also starts a
supervisor (tier0_dev.supervise) that restarts a crashed component with backoff; `status` shows
each component's pid, restarts and uptime, the Redis roles as `INFO replication` reports them and
the RegionPair's phase. Re-running `up` never changes a live RegionPair or its Service.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tier0_contract import regionpair as rp
from tier0_dev import controlplane, procs, programs, supervise
from tier0_dev.procs import ROOT, Process, find_program, group_alive, port_open, stop_group
from tier0_kube import client as kube_client
from tier0_kube import errors as kube_errors
from tier0_services.access import mqtt as mqtt_access
from tier0_services.access import redis as redis_access

RUN = Path(os.environ.get("TIER0_RUN_DIR", ROOT / ".run"))
PIDS = RUN / "pids"
LOGS = RUN / "logs"
SECRETS = RUN / "secrets"
"""Generated once per checkout (programs.Secrets): Redis, MQTT and RabbitMQ users, the API token;
every component reads its credential from a file here, none from argv or an environment value."""


def secrets() -> programs.Secrets:
    return programs.Secrets.generate(SECRETS)


SUPERVISOR_STATE = RUN / "supervisor" / "state.json"
PYTHON = sys.executable
PAIR_NAME, PAIR_NAMESPACE = "og-field", "default"


@dataclass(frozen=True)
class Component:
    name: str
    where: str  # what `make up` prints: how to reach it
    port: int
    start: Callable[[], list[Process]]


def python_module(name: str, module: str, args: list[str], env: dict[str, str]) -> Process:
    """A tier0 component run from this checkout's interpreter."""
    return Process(name, [PYTHON, "-m", module, *args], LOGS / f"{name}.log", env=env).start()


def _redis(region: str, port: int, replica_of: int | None) -> Callable[[], list[Process]]:
    def start() -> list[Process]:
        replicaof = ("--replicaof", "127.0.0.1", str(replica_of)) if replica_of else ()
        extra = (*replicaof, *programs.PAIR_WRITE_GUARD)
        # search=True: redis-stack-server (RediSearch), so the AI vector index runs its KNN path.
        return [
            programs.redis(port, RUN / f"redis-{region}", persistent=True, extra=extra, search=True, secrets=secrets())
        ]

    return start


def _region_api(region: str, port: int, redis_port: int, peer_port: int) -> Callable[[], list[Process]]:
    def start() -> list[Process]:
        env = {
            "TIER0_REGION": region,
            "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            **secrets().redis_env(),
            # Failover endpoints act on the RegionPair in the local control plane; the token is
            # generated into .run/secrets/api/token (`make stack-up` prints where).
            "TIER0_KUBECONFIG": str(RUN / "controlplane" / "kubeconfig"),
            "TIER0_API_TOKEN_FILE": str(SECRETS / "api" / "token"),
            # The console's overview asks the other region's API for its status.
            "TIER0_PEER_API_URL": f"http://127.0.0.1:{peer_port}",
            # AI: the labelled samples go into an empty primary at first start (images, corpus, log).
            "TIER0_AI_LOAD_SAMPLES": os.environ.get("TIER0_AI_LOAD_SAMPLES", "true"),
        }
        proc = python_module(f"region-api-{region}", "tier0_services.api", ["--port", str(port)], env)
        return [proc.wait_ready(procs.http_ok(f"http://127.0.0.1:{port}/health"), timeout=30)]

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
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "crd/regionpairs.tier0.dev"], check=True, capture_output=True
    )
    # Create, never apply: re-applying would reset spec.activeRegion and the Service selector of a
    # live pair, i.e. an unrequested switchover.
    create_redis_secret(kubectl, PAIR_NAMESPACE, secrets())
    create_if_absent(kubectl, ROOT / "operator" / "examples" / "regionpair-local.yaml")
    env = {"KUBECONFIG": str(kubeconfig), "TIER0_OPERATOR_METRICS_PORT": "8080"}
    proc = python_module("operator", "tier0_operator", [], env)
    return [proc.wait_ready(procs.http_ok("http://127.0.0.1:8080/metrics"), timeout=30)]


def create_redis_secret(kubectl: list[str], namespace: str, local: programs.Secrets) -> None:
    """The Secret the local RegionPair's passwordSecretRef names (tier0-redis, key operator-password),
    from the generated file (kubectl reads the file: the value is in no argv)."""
    password = local.dir("redis") / redis_access.SECRET_KEYS[redis_access.OPERATOR]
    argv = [*kubectl, "-n", namespace, "create", "secret", "generic", "tier0-redis"]
    res = subprocess.run([*argv, f"--from-file=operator-password={password}"], capture_output=True, text=True)
    if res.returncode != 0 and "AlreadyExists" not in res.stderr:
        raise subprocess.CalledProcessError(res.returncode, res.args, res.stdout, res.stderr)


def create_if_absent(kubectl: list[str], manifest: Path) -> list[str]:
    """Create the objects of `manifest` that do not exist; leave existing ones exactly as they are.
    Returns what was created (`regionpair.tier0.dev/og-field`, ...)."""
    res = subprocess.run([*kubectl, "create", "-f", str(manifest), "-o", "name"], capture_output=True, text=True)
    errors = [line for line in res.stderr.splitlines() if line.strip() and "AlreadyExists" not in line]
    if res.returncode != 0 and errors:
        raise subprocess.CalledProcessError(res.returncode, res.args, res.stdout, res.stderr)
    return res.stdout.split()


def _metric_ready(port: int, line: str) -> Callable[[], bool]:
    """Ready when the component's /metrics has a sample line starting with `line`."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.5) as r:
                return any(row.startswith(line) for row in r.read().decode().splitlines())
        except OSError:
            return False

    return check


def _peer_redis(redis_port: int) -> str:
    """TIER0_PEER_REDIS_URLS of a worker whose own region's Redis listens on `redis_port`."""
    peer = 6380 if redis_port == 6379 else 6379
    return f'["redis://127.0.0.1:{peer}/0"]'


def _ingest(region: str, redis_port: int, metrics_port: int) -> Callable[[], list[Process]]:
    """MQTT ingest worker of one region: both regions' workers share one subscription group and
    write to whichever Redis is the current primary."""

    def start() -> list[Process]:
        env = {
            "TIER0_REGION": region,
            "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "TIER0_PEER_REDIS_URLS": _peer_redis(redis_port),
            **secrets().redis_env(),
            "TIER0_MQTT_PORT": "1883",
            **secrets().mqtt_env(mqtt_access.INGEST),
            "TIER0_METRICS_PORT": str(metrics_port),
        }
        proc = python_module(f"ingest-{region}", "tier0_services.ingest", [], env)
        return [proc.wait_ready(_metric_ready(metrics_port, "tier0_ingest_mqtt_connected 1"), timeout=30)]

    return start


def _activity(region: str, redis_port: int, metrics_port: int) -> Callable[[], list[Process]]:
    """Activity consumer of one region: competing consumers on the one queue, each writing to the
    current primary."""

    def start() -> list[Process]:
        env = {
            "TIER0_REGION": region,
            **secrets().amqp_env(5672),
            "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "TIER0_PEER_REDIS_URLS": _peer_redis(redis_port),
            **secrets().redis_env(),
            "TIER0_METRICS_PORT": str(metrics_port),
        }
        name = "activity-consumer" if region == "region1" else f"activity-consumer-{region}"
        proc = python_module(name, "tier0_services.activity", [], env)
        return [proc.wait_ready(_metric_ready(metrics_port, "tier0_activity_broker_connected 1"), timeout=30)]

    return start


def _device_simulator() -> list[Process]:
    """10,000 devices by default (laptop-friendly); `DEVICES=100000 make up` for the full fleet, in
    shards of at most 25,000 devices (about what one process publishes per second)."""
    devices = int(os.environ.get("DEVICES", "10000"))
    shards = max(1, -(-devices // 25_000))
    procs = []
    for k in range(shards):
        port = 9103 if k == 0 else 9120 + k
        env = {
            "TIER0_DEVICES": str(devices),
            "TIER0_SHARD_COUNT": str(shards),
            "TIER0_SHARD_INDEX": str(k),
            "TIER0_MQTT_PORT": "1883",
            **secrets().mqtt_env(mqtt_access.GATEWAY),
            "TIER0_METRICS_PORT": str(port),
        }
        proc = python_module(f"device-simulator-{k}" if k else "device-simulator", "tier0_simulators.devices", [], env)
        procs.append(proc.wait_ready(_metric_ready(port, "tier0_simulator_messages_published_total"), timeout=30))
    return procs


def _user_simulator() -> list[Process]:
    env = {**secrets().amqp_env(5672), "TIER0_METRICS_PORT": "9104"}
    proc = python_module("user-simulator", "tier0_simulators.users", [], env)
    return [proc.wait_ready(_metric_ready(9104, "tier0_user_simulator_messages_published_total"), timeout=30)]


COMPONENTS: list[Component] = [
    # Started as primary / replica; afterwards the operator decides (status shows the real roles).
    Component("redis-region1", "redis://127.0.0.1:6379", 6379, _redis("region1", 6379, None)),
    Component("redis-region2", "redis://127.0.0.1:6380", 6380, _redis("region2", 6380, 6379)),
    # One broker of each kind, shared by both regions (the chart's brokers.perRegion: false), not one
    # per region as the chart runs by default: here no Service moves publishers between brokers
    # (there is no kube-proxy; the operator's selectors route nothing), so a second broker would only
    # hold what nothing publishes to, for a second Erlang VM's memory and start-up. Brokers per region
    # are exercised by the chart (tests/system, BENCH=region) and by the simulators' reconnection test.
    Component(
        "mosquitto",
        "mqtt://127.0.0.1:1883 (stand-in for EMQX)",
        1883,
        lambda: [programs.mosquitto(1883, RUN / "mosquitto", secrets())],
    ),
    Component(
        "rabbitmq",
        "amqp://127.0.0.1:5672, management http://127.0.0.1:15672",
        5672,
        lambda: [programs.rabbitmq(programs.RabbitPorts(5672, 25672, 15672, 15692), RUN / "rabbitmq", secrets())],
    ),
    Component(
        "controlplane", f"https://127.0.0.1:6443 (KUBECONFIG={RUN}/controlplane/kubeconfig)", 6443, _controlplane
    ),
    Component(
        "region-api-region1",
        "http://127.0.0.1:8000 (console: /console, docs: /docs)",
        8000,
        _region_api("region1", 8000, 6379, 8100),
    ),
    Component(
        "region-api-region2",
        "http://127.0.0.1:8100 (console: /console, docs: /docs)",
        8100,
        _region_api("region2", 8100, 6380, 8000),
    ),
    Component("operator", "metrics http://127.0.0.1:8080/metrics (kubectl get rp og-field)", 8080, _operator),
    Component(
        "ingest-region1",
        "metrics http://127.0.0.1:9101/metrics (writes the current primary)",
        9101,
        _ingest("region1", 6379, 9101),
    ),
    Component(
        "ingest-region2",
        "metrics http://127.0.0.1:9111/metrics (writes the current primary)",
        9111,
        _ingest("region2", 6380, 9111),
    ),
    Component(
        "activity-consumer",
        "metrics http://127.0.0.1:9102/metrics (webapp_active_users -> the current primary)",
        9102,
        _activity("region1", 6379, 9102),
    ),
    Component(
        "activity-consumer-region2",
        "metrics http://127.0.0.1:9112/metrics (webapp_active_users -> the current primary)",
        9112,
        _activity("region2", 6380, 9112),
    ),
    Component(
        "device-simulator",
        f"metrics http://127.0.0.1:9103/metrics ({os.environ.get('DEVICES', '10000')} "
        "devices, DEVICES=100000 for the full fleet)",
        9103,
        _device_simulator,
    ),
    Component(
        "user-simulator", "metrics http://127.0.0.1:9104/metrics (200-500 users, every 5 s)", 9104, _user_simulator
    ),
]


def _pidfile(name: str) -> Path:
    return PIDS / f"{name}.pid"


def _running_pids(name: str) -> list[int]:
    path = _pidfile(name)
    if not path.exists():
        return []
    return [pid for pid in (int(p) for p in path.read_text().split()) if group_alive(pid)]


SUPERVISOR = "supervisor"


def _ensure_supervisor() -> None:
    if _running_pids(SUPERVISOR):
        return
    proc = Process(SUPERVISOR, [PYTHON, "-m", "tier0_dev", "supervise"], LOGS / "supervisor.log").start()
    _pidfile(SUPERVISOR).write_text(str(proc.pid))
    print(f"  {SUPERVISOR:<22} started              restarts crashed components (log {LOGS}/supervisor.log)")


def supervisor() -> supervise.Supervisor:
    return supervise.Supervisor(COMPONENTS, PIDS, SUPERVISOR_STATE)


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
    _ensure_supervisor()
    print(f"\nlogs: {LOGS} and {RUN}/*/  ·  status: python -m tier0_dev status  ·  stop: python -m tier0_dev down")
    print(
        f"credentials: {SECRETS}/ (one file per key; the API token: {SECRETS}/api/token, e.g.\n"
        f'  curl -X POST -H "Authorization: Bearer $(cat {SECRETS}/api/token)" localhost:8000/api/failover/simulate)'
    )
    return 0


def down() -> int:
    # The supervisor first: it must not restart what is being stopped (it may be mid-restart).
    for pid in _running_pids(SUPERVISOR):
        stop_group(pid, timeout=60)
    _pidfile(SUPERVISOR).unlink(missing_ok=True)
    SUPERVISOR_STATE.unlink(missing_ok=True)
    for comp in reversed(COMPONENTS):
        pids = _running_pids(comp.name)
        for pid in reversed(pids):
            stop_group(pid)
        if pids:
            print(f"  {comp.name:<22} stopped")
        _pidfile(comp.name).unlink(missing_ok=True)
    return 0


def _resp(*args: str) -> bytes:
    """One command in Redis's protocol (arguments length-prefixed: any bytes are safe)."""
    out = f"*{len(args)}\r\n"
    for arg in args:
        out += f"${len(arg.encode())}\r\n{arg}\r\n"
    return out.encode()


def redis_info(port: int, section: str = "replication") -> dict[str, str]:
    """`INFO <section>` of the Redis on `port` as a dict (empty when it does not answer), as the
    applications' ACL user when the stack's secrets exist."""
    auth = b""
    password = SECRETS / "redis" / redis_access.SECRET_KEYS[redis_access.APP]
    if password.exists():
        auth = _resp("AUTH", redis_access.APP, password.read_text())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s, s.makefile("rb") as f:
            s.sendall(auth + _resp("INFO", section))
            if auth and not f.readline().startswith(b"+OK"):
                return {}
            header = f.readline()
            if not header.startswith(b"$"):
                return {}
            body = f.read(int(header[1:])).decode(errors="replace")
    except (OSError, ValueError):
        return {}
    return dict(line.split(":", 1) for line in body.splitlines() if ":" in line and not line.startswith("#"))


def describe_redis(info: dict[str, str]) -> str:
    """One line about a Redis from its INFO replication (pure)."""
    if not info:
        return "not answering"
    if info.get("role") == "master":
        return f"role master, {info.get('connected_slaves', '0')} replica(s), offset {info.get('master_repl_offset')}"
    link = info.get("master_link_status", "?")
    return (
        f"role replica of {info.get('master_host')}:{info.get('master_port')} (link {link}), "
        f"offset {info.get('slave_repl_offset')}"
    )


def describe_pair(pair: rp.RegionPair | None) -> str:
    """The RegionPair's phase and active region from its status (pure)."""
    if pair is None:
        return "not found"
    st = pair.status
    line = f"phase {st.phase}, active {st.active_region or '?'} (spec {pair.spec.active_region})"
    last = st.last_transition
    if last is not None:
        at = last.completed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        line += f"; last {last.type} {last.from_region}->{last.to_region} at {at}"
    return line


def _regionpair() -> str:
    kubeconfig = RUN / "controlplane" / "kubeconfig"
    if not kubeconfig.exists():
        return "no control plane"
    return asyncio.run(_read_pair(kubeconfig))


async def _read_pair(kubeconfig: Path) -> str:
    try:
        kube = await kube_client.connect(kubeconfig, timeout=2.0)
    except kube_errors.KubeConfigError as exc:
        return f"unreadable: {exc}"
    try:
        return describe_pair(await kube.get_pair(PAIR_NAMESPACE, PAIR_NAME))
    except kube_errors.KubeNotFoundError:
        return describe_pair(None)
    except kube_errors.KubeError as exc:
        return f"unreadable: {str(exc)[:120]}"
    finally:
        await kube.close()


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def status() -> int:
    bad = 0
    states = supervise.load_states(SUPERVISOR_STATE)
    now = time.time()
    print(f"  {'component':<22} {'state':<12} {'pid':>8} {'restarts':>8} {'uptime':>8}  detail")
    for comp in COMPONENTS:
        pids = _running_pids(comp.name)
        serving = port_open(comp.port)
        state = "up" if pids and serving else ("not serving" if pids else "down")
        st = states.get(comp.name, supervise.ComponentState())
        if not pids and st.next_attempt is not None:
            state = "restarting"
        bad += state != "up"
        uptime = _duration(now - _pidfile(comp.name).stat().st_mtime) if pids else "-"
        detail = comp.where
        if comp.name.startswith("redis-"):
            detail = f"{comp.where}  {describe_redis(redis_info(comp.port))}"
        if st.last_exit and state != "up":
            detail += f"  ({st.last_exit})"
        pid = str(pids[0]) if pids else "-"
        print(f"  {comp.name:<22} {state:<12} {pid:>8} {st.restarts:>8} {uptime:>8}  {detail}")
    sup = _running_pids(SUPERVISOR)
    print(f"  {SUPERVISOR:<22} {'up' if sup else 'down':<12} {sup[0] if sup else '-':>8}")
    bad += not sup
    print(f"\n  RegionPair {PAIR_NAMESPACE}/{PAIR_NAME}: {_regionpair()}")
    return 1 if bad else 0
