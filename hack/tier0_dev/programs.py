"""How each real program tier0 depends on is started on loopback.

Every function takes the port(s) and a state directory, starts the program, waits until it serves
and returns the `Process`. Tests pass free ports; `make up` passes the fixed ports of DESIGN.md.
"""

import os
import pwd
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tier0_contract import keys
from tier0_dev.procs import MissingProgramError, Process, find_program, free_port, port_open

SEARCH_REDIS = "redis-stack-server"
"""Redis with the query engine (RediSearch), from `hack/install-tools.sh --redis-stack`."""

PAIR_WRITE_GUARD = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2")
"""Redis options of a pair member (the local stack's and the chart's): a primary refuses writes
(NOREPLICAS) once its replica has not acknowledged for 2 s, so an isolated old primary cannot keep
acknowledging; a replica ignores them until it is promoted. The operator lowers
min-replicas-to-write to 0 when the pair's policy is to keep accepting with the standby down."""


REDIS_MAXMEMORY = "768mb"
"""`maxmemory` of every Redis started here (the stack's, the tests' and the benches'): the chart's
default, 75% of its 1 GiB container limit. A full Redis evicts only what `keys.MAXMEMORY_POLICY`
allows (keys with a TTL) and refuses other writes, as in the chart."""


def redis_binary(search: bool | None = False) -> str:
    """redis-server, or with `search=True` the RediSearch-capable server (MissingProgramError with
    the install command when absent); `search=None` takes it when installed, redis-server otherwise."""
    if search is False:
        return find_program("redis-server")
    try:
        return find_program(SEARCH_REDIS)
    except MissingProgramError:
        if search:
            raise
        return find_program("redis-server")


def redis(
    port: int,
    state_dir: Path,
    *,
    persistent: bool = False,
    extra: tuple[str, ...] = (),
    search: bool | None = False,
    maxmemory: str = REDIS_MAXMEMORY,
) -> Process:
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_binary(search),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(state_dir),
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        # Replicas of a pair must serve reads while the operator drives replication.
        "--replica-serve-stale-data",
        "yes",
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
        "--save",
        "",
        "--appendonly",
        "yes" if persistent else "no",
        "--maxmemory",
        maxmemory,
        "--maxmemory-policy",
        keys.MAXMEMORY_POLICY,
        *extra,
    ]
    proc = Process(f"redis-{port}", argv, state_dir / "redis.log").start()
    return proc.wait_ready(lambda: _redis_ping(port), timeout=20)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def mosquitto(port: int, state_dir: Path) -> Process:
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        # Sessions and their queued messages survive a restart (saved at exit and every 5 s), as
        # in the chart's broker: a message acknowledged to a device is never only in memory
        # across a broker restart.
        f"persistence true\npersistence_location {state_dir}/\nautosave_interval 5\n"
        # Started as root, mosquitto would switch to the `mosquitto` user, which cannot write (or
        # even reach, under pytest's 0700 folders) the state directory: it keeps the caller's user.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        # QoS 1 messages for a paused ingest worker queue here instead of being dropped
        # (EMQX's equivalent is its session message queue).
        "max_queued_messages 1000000\n"
        "max_inflight_messages 1000\n"
        "log_type error\nlog_type warning\n"
    )
    proc = Process(f"mosquitto-{port}", [find_program("mosquitto"), "-c", str(conf)], state_dir / "mosquitto.log")
    return proc.start().wait_ready(lambda: port_open(port), timeout=15)


@dataclass(frozen=True)
class RabbitPorts:
    amqp: int
    dist: int
    management: int | None = None
    prometheus: int | None = None


def rabbitmq(ports: RabbitPorts, state_dir: Path) -> Process:
    """A RabbitMQ node of its own (own node name, data dir and ports) beside any other."""
    state_dir.mkdir(parents=True, exist_ok=True)
    plugins = state_dir / "enabled_plugins"
    conf = state_dir / "rabbitmq.conf"
    enabled = []
    lines = ["loopback_users = none", "log.console = false", "log.file.level = warning"]
    if ports.management:
        enabled.append("rabbitmq_management")
        lines.append(f"management.tcp.port = {ports.management}")
        lines.append("management.tcp.ip = 127.0.0.1")
    if ports.prometheus:
        enabled.append("rabbitmq_prometheus")
        lines.append(f"prometheus.tcp.port = {ports.prometheus}")
        lines.append("prometheus.tcp.ip = 127.0.0.1")
    plugins.write_text(f"[{','.join(enabled)}].\n")
    conf.write_text("\n".join(lines) + "\n")
    env = {
        "RABBITMQ_NODENAME": f"tier0-{ports.amqp}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(ports.amqp),
        "RABBITMQ_DIST_PORT": str(ports.dist),
        "RABBITMQ_MNESIA_BASE": str(state_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(state_dir / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONFIG_FILE": str(conf.with_suffix("")),
        "RABBITMQ_PID_FILE": str(state_dir / "rabbitmq.pid"),
        "HOME": os.environ.get("HOME", str(state_dir)),
    }
    # The Debian wrapper in /usr/sbin switches to the rabbitmq user; the real script does not.
    real = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    binary = str(real) if real.exists() else find_program("rabbitmq-server")
    proc = Process(f"rabbitmq-{ports.amqp}", [binary], state_dir / "rabbitmq.log", env=env)
    return proc.start().wait_ready(lambda: _amqp_handshake(ports.amqp), timeout=90)


def _amqp_handshake(port: int) -> bool:
    """True once the node answers the AMQP protocol header with connection.start."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1)[:1] == b"\x01"
    except OSError:
        return False


def etcd(client_port: int, state_dir: Path) -> Process:
    state_dir.mkdir(parents=True, exist_ok=True)
    peer = free_port()
    argv = [
        find_program("etcd"),
        "--name",
        "tier0",
        "--data-dir",
        str(state_dir / "data"),
        "--listen-client-urls",
        f"http://127.0.0.1:{client_port}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{client_port}",
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-cluster",
        f"tier0=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync",  # loopback test cluster: durability is not what is under test
        "--log-level",
        "warn",
    ]
    proc = Process(f"etcd-{client_port}", argv, state_dir / "etcd.log").start()
    return proc.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{client_port}/health"), timeout=30)


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def openssl(*args: str) -> None:
    subprocess.run([find_program("openssl"), *args], check=True, capture_output=True)
