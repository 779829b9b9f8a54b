"""How each real program tier0 depends on is started on loopback.

Every function takes the port(s) and a state directory, starts the program, waits until it serves
and returns the `Process`. Tests pass free ports; `make up` passes the fixed ports of docs/DESIGN.md.
"""

import importlib.util
import os
import pwd
import secrets
import socket
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from tier0_contract import keys, topics
from tier0_dev.procs import ROOT, MissingProgramError, Process, find_program, free_port, port_open
from tier0_services.access import mqtt as mqtt_access
from tier0_services.access import rabbitmq as rabbitmq_access
from tier0_services.access import redis as redis_access

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

MQTT_MAX_PACKET = "64KB"
"""The largest MQTT packet a client may send to a local mosquitto: the chart's `emqx.maxPacketSize`
default, applied as the node's stand-in applies it."""

MOSQUITTO_STANDIN = ROOT / "images" / "standins" / "mosquitto" / "entrypoint.py"
EMQX_ACL = ROOT / "charts" / "tier0" / "files" / "emqx" / "acl.conf"
"""The chart's MQTT topic rules: the local Mosquitto enforces them through the node stand-in's
translation, so what the tests prove is what EMQX is configured with."""
RABBITMQ_ADMIN = "tier0-admin"


@dataclass(frozen=True)
class Secrets:
    """Generated credentials of a local run, laid out as the chart mounts its Secrets: one directory
    per Secret (`redis`, `mqtt`, `rabbitmq`, `api`), one file per key, each readable by its owner only.
    Missing keys are filled once with random values (as the operator fills the chart's)."""

    root: Path

    LAYOUT = {
        "redis": tuple(redis_access.SECRET_KEYS.values()),
        "mqtt": tuple(mqtt_access.SECRET_KEYS.values()),
        "rabbitmq": (rabbitmq_access.ADMIN_PASSWORD_KEY, rabbitmq_access.APP_PASSWORD_KEY),
        "api": ("token",),
    }

    @classmethod
    def generate(cls, root: Path) -> "Secrets":
        for name, names in cls.LAYOUT.items():
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            for key in names:
                _write_once(folder / key, secrets.token_urlsafe(24))
        _write_once(root / "rabbitmq" / rabbitmq_access.ADMIN_USERNAME_KEY, RABBITMQ_ADMIN)
        return cls(root)

    def dir(self, name: str) -> Path:
        return self.root / name

    def values(self) -> list[str]:
        """Every generated secret (what no log line, argv or environment may contain)."""
        return [(self.root / name / key).read_text() for name, names in self.LAYOUT.items() for key in names]

    def redis_env(self, user: str = redis_access.APP) -> dict[str, str]:
        key = redis_access.SECRET_KEYS[user]
        return {"TIER0_REDIS_USERNAME": user, "TIER0_REDIS_PASSWORD_FILE": str(self.root / "redis" / key)}

    def mqtt_env(self, user: str) -> dict[str, str]:
        key = mqtt_access.SECRET_KEYS[user]
        return {"TIER0_MQTT_USERNAME": user, "TIER0_MQTT_PASSWORD_FILE": str(self.root / "mqtt" / key)}

    def mqtt_args(self, user: str) -> list[str]:
        """Command-line flags of a component (`--mqtt-username`, `--mqtt-password-file`)."""
        key = mqtt_access.SECRET_KEYS[user]
        return ["--mqtt-username", user, "--mqtt-password-file", str(self.root / "mqtt" / key)]

    def mqtt_settings(self, user: str) -> dict[str, object]:
        """The same as settings fields (`Settings(**secrets.mqtt_settings(user))`)."""
        return {"mqtt_username": user, "mqtt_password_file": self.root / "mqtt" / mqtt_access.SECRET_KEYS[user]}

    def mosquitto_clients_env(self, user: str) -> dict[str, str]:
        """Environment for `mosquitto_pub`/`mosquitto_sub` to connect as `user`: they read default
        options from $XDG_CONFIG_HOME/mosquitto_pub (and _sub), so the password is not in argv."""
        folder = self.root / "mosquitto-clients" / user
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for tool in ("mosquitto_pub", "mosquitto_sub"):
            (folder / tool).unlink(missing_ok=True)
            _write_once(folder / tool, f"-u {user}\n-P {self.mqtt_password(user)}\n")
        return {"XDG_CONFIG_HOME": str(folder)}

    def mqtt_password(self, user: str) -> str:
        return (self.root / "mqtt" / mqtt_access.SECRET_KEYS[user]).read_text()

    def amqp_env(self, port: int) -> dict[str, str]:
        return {
            "TIER0_AMQP_URL": amqp_url(port),
            "TIER0_AMQP_USERNAME": rabbitmq_access.APP,
            "TIER0_AMQP_PASSWORD_FILE": str(self.root / "rabbitmq" / rabbitmq_access.APP_PASSWORD_KEY),
        }

    def amqp_password(self, admin: bool = False) -> str:
        key = rabbitmq_access.ADMIN_PASSWORD_KEY if admin else rabbitmq_access.APP_PASSWORD_KEY
        return (self.root / "rabbitmq" / key).read_text()


def _write_once(path: Path, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(value)


def amqp_url(port: int) -> str:
    """The activity vhost on a local RabbitMQ (credentials go separately)."""
    return f"amqp://127.0.0.1:{port}/{topics.ACTIVITY_VHOST}"


@cache
def mosquitto_standin() -> ModuleType:
    """The node's EMQX stand-in entrypoint, imported from its file (it is not a package)."""
    spec = importlib.util.spec_from_file_location("tier0_mosquitto_standin", MOSQUITTO_STANDIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    secrets: Secrets | None = None,
) -> Process:
    """A redis-server; with `secrets`, the chart's ACL users (tier0_services.access.redis) from them."""
    state_dir.mkdir(parents=True, exist_ok=True)
    auth: list[str] = []
    if secrets is not None:
        redis_access.write(secrets.dir("redis"), state_dir / "access")
        auth = ["--include", str(state_dir / "access" / redis_access.AUTH_CONF)]
    argv = [
        redis_binary(search),
        *auth,
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


def mosquitto(port: int, state_dir: Path, secrets: Secrets | None = None, durable: bool = False) -> Process:
    """A mosquitto; with `secrets`, the chart's MQTT users and topic rules (charts/tier0/files/emqx/
    acl.conf) as the node's EMQX stand-in translates them, anonymous clients refused; `durable`
    as the stand-in with `emqx.durableSessions` (every change saved before the next one)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    standin = mosquitto_standin()
    auth = ["allow_anonymous true"]
    if secrets is not None:
        (bootstrap,) = mqtt_access.write(secrets.dir("mqtt"), state_dir / "access")
        auth = standin.auth_config(bootstrap, EMQX_ACL, state_dir / "access")
    lines = [
        f"listener {port} 127.0.0.1",
        *auth,
        # Sessions and their queued messages survive a restart (durable: even a `kill -9`).
        *standin.persistence_config(str(state_dir), durable),
        *standin.limits_config(MQTT_MAX_PACKET),
        # Started as root, mosquitto would switch to the `mosquitto` user, which cannot write (or
        # even reach, under pytest's 0700 folders) the state directory: it keeps the caller's user.
        f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        # QoS 1 messages for a paused ingest worker queue here instead of being dropped
        # (EMQX's equivalent is its session message queue).
        "max_queued_messages 1000000",
        "max_inflight_messages 1000",
        "log_type error",
        "log_type warning",
    ]
    conf.write_text("".join(f"{line}\n" for line in lines))
    proc = Process(f"mosquitto-{port}", [find_program("mosquitto"), "-c", str(conf)], state_dir / "mosquitto.log")
    return proc.start().wait_ready(lambda: port_open(port), timeout=15)


@dataclass(frozen=True)
class RabbitPorts:
    amqp: int
    dist: int
    management: int | None = None
    prometheus: int | None = None


def rabbitmq(ports: RabbitPorts, state_dir: Path, secrets: Secrets | None = None) -> Process:
    """A RabbitMQ node of its own (own node name, data dir and ports) beside any other; with
    `secrets`, the chart's users and vhost (tier0_services.access.rabbitmq): no guest user."""
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
    if secrets is not None:
        (definitions,) = rabbitmq_access.write(secrets.dir("rabbitmq"), state_dir / "access")
        lines.append(f"load_definitions = {definitions}")
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
