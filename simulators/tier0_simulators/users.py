"""User-activity simulator: 200–500 signed-in users with churn, one message every 5 s to RabbitMQ.

`Population` is pure (seeded random walk of users joining and leaving) and unit-tested; `run`
is the pika side: durable queue, persistent messages, publisher confirms, so a message the
simulator counts as sent is one RabbitMQ has taken responsibility for.

The chart points the simulator at the global AMQP Service, which follows the active region. A
partitioned or frozen RabbitMQ never closes the connection, and pika's blocking publish waits for
its confirm without a limit (its heartbeat would notice a silent broker only after the heartbeat
timeout plus 5 s): `publish_confirmed` gives the confirm `--confirm-timeout` seconds, then ends the
connection; the message is published again on a new connection (to wherever the Service points
now) after a short backoff (`reconnect.Policy`), each connection attempt bounded by
`--connect-timeout`.

    python -m tier0_simulators.users --help
"""

import contextlib
import logging
import random
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pika
import pika.exceptions
from prometheus_client import CollectorRegistry, Counter, start_http_server
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tier0_contract import credentials, topics
from tier0_contract.models import UserActivityMessage
from tier0_simulators import reconnect

log = logging.getLogger("tier0_simulators.users")

CLIENTS = ("web-chrome", "web-firefox", "web-safari", "ios-app", "android-app")
LOCATIONS = ("San Jose, US", "Austin, US", "Houston, US", "Calgary, CA", "Aberdeen, UK", "Perth, AU")


@dataclass
class User:
    user_id: str
    session_id: str
    login: datetime
    ip: str
    client: str
    location: str
    connections: int


@dataclass
class Population:
    """Signed-in users whose count wanders between `low` and `high`, with logins and logouts."""

    low: int = 200
    high: int = 500
    seed: int | None = None
    churn: float = 0.05  # share of users replaced per tick, besides the drift of the total
    rng: random.Random = field(init=False)
    users: dict[str, User] = field(default_factory=dict)
    _next_id: int = 0
    _seq: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.low <= self.high:
            raise ValueError(f"need 0 < low <= high, got {self.low}..{self.high}")
        self.rng = random.Random(self.seed)
        self._target = self.rng.randint(self.low, self.high)

    def _login(self, now: datetime) -> None:
        self._next_id += 1
        uid = f"USER-{self._next_id:06d}"
        self.users[uid] = User(
            user_id=uid,
            session_id=f"SESS-{self.rng.getrandbits(48):012x}",
            login=now,
            ip=f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}",
            client=self.rng.choice(CLIENTS),
            location=self.rng.choice(LOCATIONS),
            connections=self.rng.choice((0, 1, 1, 1, 2, 3)),
        )

    def tick(self, now: datetime) -> UserActivityMessage:
        """Advance one interval and return the message describing it."""
        step = max(1, (self.high - self.low) // 20)
        self._target = min(self.high, max(self.low, self._target + self.rng.randint(-step, step)))
        for uid in self.rng.sample(sorted(self.users), k=int(len(self.users) * self.churn)):
            del self.users[uid]
        while len(self.users) > self._target:
            del self.users[self.rng.choice(sorted(self.users))]
        while len(self.users) < self._target:
            self._login(now)
        for user in self.users.values():
            if self.rng.random() < 0.2:
                user.connections = self.rng.choice((0, 1, 1, 2, 3))
        self._seq += 1
        connections = sum(u.connections for u in self.users.values())
        return UserActivityMessage.model_validate(
            {
                "message_id": f"MSG-{now:%Y%m%d}-{self.seed or 0}-{self._seq:08d}",
                "timestamp_utc": now,
                "site_id": "SFO-WEB-01",
                "metrics": {
                    "active_users": len(self.users),
                    "active_connections": connections,
                    "server_cpu_pct": round(min(99.0, 20 + len(self.users) / 10 + self.rng.uniform(-5, 5)), 1),
                    "server_memory_gb": round(8 + len(self.users) / 40 + self.rng.uniform(-0.5, 0.5), 1),
                    "average_latency_ms": round(30 + connections / 12 + self.rng.uniform(0, 15), 1),
                },
                "active_users_list": [
                    {
                        "user_id": u.user_id,
                        "session_id": u.session_id,
                        "login_time_utc": u.login,
                        "last_activity_utc": now,
                        "ip_address": u.ip,
                        "client": u.client,
                        "location": u.location,
                        "connections": u.connections,
                    }
                    for u in self.users.values()
                ],
            }
        )


def amqp_parameters(
    url: str,
    username: str | None,
    password: str | None,
    ca_file: Path | None,
    connect_timeout: float | None = None,
) -> pika.URLParameters:
    """The URL (no credentials in it) plus the user and the password read from its file; `amqps://`
    with `ca_file` verifies the server against that CA; with `connect_timeout`, opening the
    connection (TCP, TLS and AMQP's handshake: a frozen broker accepts the TCP connection and
    answers nothing) fails after that many seconds. (tier0_services.activity.consumer has the same
    few lines: the simulators' image does not carry the services package.)"""
    params = pika.URLParameters(url)
    if username:
        params.credentials = pika.PlainCredentials(username, password or "")
    if url.startswith("amqps://") and ca_file:
        params.ssl_options = pika.SSLOptions(ssl.create_default_context(cafile=str(ca_file)), params.host)
    if connect_timeout is not None:
        params.socket_timeout = connect_timeout
        params.stack_timeout = connect_timeout
        params.connection_attempts = 1
    return params


def open_channel(
    params: pika.URLParameters, timeout: float | None = None
) -> tuple[pika.BlockingConnection, "pika.adapters.blocking_connection.BlockingChannel"]:
    """A connection and a confirming channel on the activity queue (declared with its bounds); with
    `timeout`, the channel's setup waits for the broker no longer than that (see `deadline`)."""
    connection = pika.BlockingConnection(params)
    with deadline(connection, timeout) if timeout else contextlib.nullcontext():
        channel = connection.channel()
        channel.queue_declare(topics.ACTIVITY_QUEUE, durable=True, arguments=topics.activity_queue_arguments())
        channel.confirm_delivery()
    return connection, channel


PERSISTENT = pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent)


def _cut(connection: pika.BlockingConnection) -> None:
    """End `connection` from another thread: shut its socket down. pika's BlockingConnection is not
    thread-safe and has no timeout for a confirm; a socket shut down is the one thing it notices
    from outside: its own thread reads the end of the stream and raises StreamLostError out of the
    call that was waiting. (The socket is pika's internal: `connection._impl._transport._sock`,
    pika 1.3 and 1.4; tests/simulators/test_simulator_reconnect_brokers.py fails if that changes.)"""
    transport = getattr(getattr(connection, "_impl", None), "_transport", None)
    sock = getattr(transport, "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def deadline(connection: pika.BlockingConnection, seconds: float) -> Iterator[None]:
    """Within the block, a call on `connection` that waits for the broker more than `seconds` in all
    raises pika.exceptions.StreamLostError (the connection is ended; open a new one)."""
    timer = threading.Timer(seconds, _cut, (connection,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def publish_confirmed(
    connection: pika.BlockingConnection,
    channel: "pika.adapters.blocking_connection.BlockingChannel",
    body: bytes,
    timeout: float,
) -> None:
    """Publish one persistent message and return once RabbitMQ confirmed it; raise on a nack, an
    unroutable message, a lost connection, or no confirm within `timeout` seconds (the connection is
    then ended: a silent broker is not waited for)."""
    with deadline(connection, timeout):
        channel.basic_publish("", topics.ACTIVITY_QUEUE, body, PERSISTENT, mandatory=True)


def run(args: "Settings") -> int:
    registry = CollectorRegistry()
    published = Counter(
        "tier0_user_simulator_messages_published", "User-activity messages confirmed by RabbitMQ", registry=registry
    )
    failures = Counter("tier0_user_simulator_publish_failures", "Publishes not confirmed", registry=registry)
    if args.metrics_port:
        start_http_server(args.metrics_port, registry=registry)
    population = Population(args.min_users, args.max_users, args.seed)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    policy = reconnect.Policy(ack_timeout=args.confirm_timeout, connect_timeout=args.connect_timeout)
    params = amqp_parameters(
        args.amqp_url,
        args.amqp_username,
        credentials.read_optional(args.amqp_password_file),
        args.amqp_tls_ca_file,
        connect_timeout=policy.connect_timeout,
    )
    connection: pika.BlockingConnection | None = None
    channel = None
    sent = failed = 0
    next_at = time.monotonic()
    while not stop and (args.count == 0 or sent < args.count):
        msg = population.tick(datetime.now(UTC))
        body = msg.model_dump_json().encode()
        while not stop:
            try:
                if connection is None or channel is None:
                    # Bounded: the handshake by the connect timeout, the channel's setup by the ack timeout.
                    connection, channel = open_channel(params, policy.ack_timeout)
                publish_confirmed(connection, channel, body, policy.ack_timeout)
                failed = 0
                break  # confirmed: publish_confirmed raises on a nack or an unroutable message
            except (pika.exceptions.AMQPError, pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                failures.inc()
                failed += 1
                pause = policy.delay(failed)
                log.warning("publish not confirmed (%s); retrying in %.1f s", exc or type(exc).__name__, pause)
                if connection is not None and connection.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError), deadline(connection, policy.ack_timeout):
                        connection.close()
                connection = channel = None
                time.sleep(pause)
        else:
            break
        sent += 1
        published.inc()
        log.info(
            "sent %s: %d users, %d connections",
            msg.message_id,
            msg.metrics.active_users,
            msg.metrics.active_connections,
        )
        next_at += args.interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    if connection is not None and connection.is_open:
        connection.close()
    log.info("stopped after %d confirmed messages", sent)
    return 0


class Settings(BaseSettings):
    """Publish simulated user activity to the durable RabbitMQ queue webapp_active_users (persistent
    messages, publisher confirms). Every flag is also a TIER0_<NAME> variable."""

    model_config = SettingsConfigDict(
        env_prefix="TIER0_", frozen=True, cli_prog_name="python -m tier0_simulators.users", cli_kebab_case=True
    )

    amqp_url: str = Field(
        "amqp://127.0.0.1:5672/tier0",
        description="RabbitMQ URL without credentials (amqps:// for TLS; the vhost is its path)",
    )
    amqp_username: str | None = Field(None, description="RabbitMQ user (the chart: tier0-app)")
    amqp_password_file: Path | None = Field(None, description="file holding that user's password (a mounted Secret)")
    amqp_tls_ca_file: Path | None = Field(None, description="CA bundle that signed RabbitMQ's certificate (amqps://)")
    interval: float = Field(5.0, gt=0, description="seconds between messages")
    confirm_timeout: float = Field(
        2.0, gt=0, description="seconds to wait for RabbitMQ's confirm before the connection is dropped and reopened"
    )
    connect_timeout: float = Field(2.0, gt=0, description="seconds opening a connection may take")
    min_users: int = Field(200, gt=0, description="fewest signed-in users")
    max_users: int = Field(500, gt=0, description="most signed-in users")
    count: int = Field(0, ge=0, description="stop after this many messages (0: run forever)")
    seed: int | None = Field(None, description="random seed, for repeatable runs")
    metrics_port: int = Field(0, description="Prometheus /metrics port (0: none)")

    @model_validator(mode="after")
    def _users_in_order(self) -> "Settings":
        if self.min_users > self.max_users:
            raise ValueError("min users must be <= max users")
        return self


def main(argv: list[str] | None = None) -> int:
    try:
        args = Settings(_cli_parse_args=sys.argv[1:] if argv is None else argv)  # type: ignore[call-arg]
    except ValidationError as exc:
        sys.exit(f"python -m tier0_simulators.users: {exc}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
