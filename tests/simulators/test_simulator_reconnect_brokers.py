"""The simulators follow the global broker Services (issue 18): a broker that stops acknowledging is
dropped and the publisher reconnects to wherever the Service points now, losing nothing it was
told was acknowledged and re-sending what was not.

Real brokers behind `tier0_testing.relay.Relay` (a stand-in for kube-proxy: new connections go to
the current backend, established ones stay on theirs): the first broker is frozen with SIGSTOP, as a
partitioned region looks from a client (the connection stays open, nothing answers), while the relay
sends new connections to a second one.

What is tested:
- the device simulator's link (`mqttlink.Link`, two real mosquittos with the chart's users): after
  the freeze no PUBACK comes, the link drops the connection after its ack timeout, reconnects to the
  second broker and publishes every message not acknowledged yet there (a subscriber on it receives
  all of them), within the timeout plus a second;
- the user simulator (`python -m tier0_simulators.users`, two real rabbitmq-servers): a publish
  waiting for a confirm from the frozen broker gives up after its confirm timeout, the simulator
  reconnects and every message it counts as sent is in one of the two brokers' queues, the later
  ones in the second; it finishes its run instead of hanging.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gmqtt
import orjson
import pika
import pytest

from tier0_contract import topics
from tier0_dev import programs
from tier0_dev.procs import Process, free_port
from tier0_services.access import mqtt as mqtt_access
from tier0_simulators import mqttlink, reconnect
from tier0_testing.relay import Relay

pytestmark = pytest.mark.integration

POLICY = reconnect.Policy(ack_timeout=1.0, connect_timeout=1.0, backoff_min=0.1, backoff_max=0.5)


def freeze(proc: Process) -> None:
    os.killpg(proc.pid, signal.SIGSTOP)


def thaw(proc: Process) -> None:
    os.killpg(proc.pid, signal.SIGCONT)


@pytest.fixture
def two_mosquittos(tmp_path: Path, local_secrets: programs.Secrets) -> Iterator[tuple[Process, int, Process, int]]:
    ports = free_port(), free_port()
    procs = [programs.mosquitto(port, tmp_path / f"mosquitto-{port}", local_secrets) for port in ports]
    yield procs[0], ports[0], procs[1], ports[1]
    for proc in procs:
        thaw(proc)
        proc.stop()


class Subscriber:
    """Every device id received on og/field/# of one broker (as the ingest user)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.client = gmqtt.Client(f"test-sub-{free_port()}")
        self.client.on_message = self._on_message

    def _on_message(self, client: object, topic: str, payload: bytes, qos: int, properties: object) -> int:
        self.seen.add(topic.rsplit("/", 1)[1])
        return 0

    async def start(self, port: int, secrets: programs.Secrets) -> None:
        self.client.set_auth_credentials(mqtt_access.INGEST, secrets.mqtt_password(mqtt_access.INGEST))
        await self.client.connect("127.0.0.1", port)
        self.client.subscribe("og/field/#", qos=1)
        await asyncio.sleep(0.3)


async def test_the_device_link_leaves_a_frozen_broker_for_the_one_the_service_points_at(
    two_mosquittos: tuple[Process, int, Process, int], local_secrets: programs.Secrets
) -> None:
    frozen, old_port, _, new_port = two_mosquittos
    relay = Relay(old_port)
    subscriber = Subscriber()
    await subscriber.start(new_port, local_secrets)
    drops: list[str] = []
    link = mqttlink.Link(
        "test-devices",
        "127.0.0.1",
        relay.port,
        username=mqtt_access.GATEWAY,
        password=local_secrets.mqtt_password(mqtt_access.GATEWAY),
        policy=POLICY,
        on_drop=drops.append,
    )
    try:
        await link.start()

        async def publish(n: int) -> None:
            await link.publish(f"og/field/SITE-1/og_sensor/DEV-{n}", orjson.dumps({"n": n}))

        for n in range(50):
            await publish(n)
        deadline = time.monotonic() + 5
        while link.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert link.inflight == 0 and link.stats.acknowledged == 50

        freeze(frozen)  # the region is cut off: its broker's connection stays open, silent
        relay.switch(new_port)  # the Service now selects the other region's broker
        frozen_at = time.monotonic()
        for n in range(50, 150):
            await publish(n)  # waits while the link reconnects
            await asyncio.sleep(0.01)
        moved = range(50, 150)
        deadline = time.monotonic() + 10
        while link.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        took = time.monotonic() - frozen_at
        assert link.inflight == 0, f"{link.inflight} messages never acknowledged"
        assert drops[:1] == ["ack_timeout"] and relay.opened[-1] == new_port, (drops, relay.opened)
        # Everything published from the freeze on reached the second broker (at least once).
        await asyncio.sleep(0.5)
        missing = [n for n in moved if f"DEV-{n}" not in subscriber.seen]
        assert not missing, f"not received by the broker the Service points at: {missing[:10]}"
        # Publishing went on one ack timeout (plus backoff, reconnect and the 1 s of publishing) later.
        assert took < POLICY.ack_timeout + 1.0 + 1.5 + 1.0, took
    finally:
        await link.close(drain_timeout=0)
        await subscriber.client.disconnect()
        relay.close()


@pytest.fixture
def two_rabbits(tmp_path: Path, local_secrets: programs.Secrets) -> Iterator[tuple[Process, int, Process, int]]:
    started: list[tuple[Process, int]] = []
    try:
        for k in range(2):
            ports = programs.RabbitPorts(amqp=free_port(), dist=free_port())
            started.append((programs.rabbitmq(ports, tmp_path / f"rabbitmq-{k}", local_secrets), ports.amqp))
        yield started[0][0], started[0][1], started[1][0], started[1][1]
    finally:
        for proc, _ in started:
            thaw(proc)
            proc.stop()


def queued(port: int, secrets: programs.Secrets) -> int:
    """Messages in the activity queue of the RabbitMQ on `port`."""
    params = pika.URLParameters(programs.amqp_url(port))
    params.credentials = pika.PlainCredentials(secrets.amqp_env(port)["TIER0_AMQP_USERNAME"], secrets.amqp_password())
    connection = pika.BlockingConnection(params)
    try:
        declared = connection.channel().queue_declare(
            topics.ACTIVITY_QUEUE, durable=True, arguments=topics.activity_queue_arguments()
        )
        count: int = declared.method.message_count
        return count
    finally:
        connection.close()


def test_the_user_simulator_gives_up_on_a_silent_broker_and_publishes_to_the_next(
    two_rabbits: tuple[Process, int, Process, int], local_secrets: programs.Secrets, tmp_path: Path
) -> None:
    frozen, old_port, _, new_port = two_rabbits
    relay = Relay(old_port)
    env = {**os.environ, **local_secrets.amqp_env(relay.port)}
    argv = [sys.executable, "-m", "tier0_simulators.users", "--count", "40", "--interval", "0.1", "--seed", "1"]
    argv += ["--confirm-timeout", str(POLICY.ack_timeout), "--connect-timeout", str(POLICY.connect_timeout)]
    log = tmp_path / "users.log"
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while log.read_text().count("sent MSG-") < 10 and time.monotonic() < deadline:
                    assert proc.poll() is None, log.read_text()
                    time.sleep(0.05)
                freeze(frozen)
                relay.switch(new_port)
                start = time.monotonic()
                code = proc.wait(timeout=30)  # hangs forever without the confirm timeout
            finally:
                if proc.poll() is None:
                    proc.kill()
        took = time.monotonic() - start
        text = log.read_text()
        assert code == 0, text
        assert "publish not confirmed" in text and "stopped after 40 confirmed messages" in text, text
        sent_after = text.count("sent MSG-") - 10
        # The rest (30 at 10/s) plus one confirm timeout and a reconnection, not the heartbeat's minutes.
        assert took < 3.0 + POLICY.ack_timeout + POLICY.connect_timeout + 3.0, took
        thaw(frozen)
        # Each confirmed message is in one of the two brokers (the one the confirm timed out on may
        # be in both: at least once), the later ones in the one the Service points at now.
        in_old, in_new = queued(old_port, local_secrets), queued(new_port, local_secrets)
        assert in_new >= sent_after - 1 and in_old + in_new >= 40, (in_old, in_new, sent_after)
    finally:
        relay.close()
