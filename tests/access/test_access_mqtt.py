"""Who may talk to the MQTT broker and about what, on the real mosquitto configured as the chart
configures EMQX (its users and charts/tier0/files/emqx/acl.conf, through the node stand-in's
translation: tier0_dev.programs.mosquitto).

Reproductions of issue 17 ("MQTT is open"): an anonymous client is refused; a device cannot publish
on another device's topic (the message never reaches a subscriber); a client that is not an ingest
worker can neither subscribe to `og/field/#` nor join `$share/ingest/...`, and while such a client
tries, every message still reaches the ingest workers (today's broker hands it a share and the
message is lost to the pipeline).
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import gmqtt
import pytest
from gmqtt.mqtt.handler import MQTTConnectError

from tier0_contract import topics
from tier0_dev import programs
from tier0_services.access import mqtt as mqtt_access

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = 0x87  # MQTT 5 reason code (SUBACK, PUBACK)


class Client:
    """A gmqtt client that records what it receives and its SUBACK codes."""

    def __init__(self, client_id: str | None = None) -> None:
        self.client = gmqtt.Client(client_id or f"t-{uuid.uuid4().hex[:8]}")
        self.client.reconnect_retries = 0
        self.received: list[tuple[str, bytes]] = []
        self.subacks: asyncio.Queue[list[int]] = asyncio.Queue()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda _c, _mid, qos, _props: self.subacks.put_nowait(list(qos))

    def _on_message(self, _c: Any, topic: str, payload: bytes, _qos: int, _props: Any) -> int:
        self.received.append((topic, payload))
        return 0

    async def connect(self, port: int, user: str | None = None, password: str | None = None) -> "Client":
        if user is not None:
            self.client.set_auth_credentials(user, password)
        await self.client.connect("127.0.0.1", port, keepalive=10)
        return self

    async def subscribe(self, topic_filter: str) -> list[int]:
        self.client.subscribe(topic_filter, qos=1)
        return await asyncio.wait_for(self.subacks.get(), 5)

    async def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1)
        while self.client._persistent_storage._messages:  # until the broker's PUBACK
            await asyncio.sleep(0.01)


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for c in made:
        if c.client.is_connected:
            await c.client.disconnect()


async def connect(
    made: list[Client], port: int, secrets: programs.Secrets, user: str, client_id: str | None = None
) -> Client:
    c = await Client(client_id).connect(port, user, secrets.mqtt_password(user))
    made.append(c)
    return c


async def test_an_anonymous_client_is_refused(mosquitto_port: int) -> None:
    with pytest.raises(MQTTConnectError, match="(?i)not authori"):
        await Client().connect(mosquitto_port)


async def test_a_wrong_password_is_refused(mosquitto_port: int) -> None:
    with pytest.raises(MQTTConnectError):
        await Client().connect(mosquitto_port, mqtt_access.DEVICE, "not-the-password")


async def test_a_device_publishes_its_own_topic_only(
    mosquitto_port: int, local_secrets: programs.Secrets, clients: list[Client]
) -> None:
    group = f"t{uuid.uuid4().hex[:6]}"
    worker = await connect(clients, mosquitto_port, local_secrets, mqtt_access.INGEST)
    assert await worker.subscribe(topics.shared_subscription(group)) == [1]
    device = await connect(clients, mosquitto_port, local_secrets, mqtt_access.DEVICE, client_id="TURB-00001")
    own = topics.device_topic("WY-ALPHA", "turbine", "TURB-00001")
    other = topics.device_topic("WY-ALPHA", "turbine", "TURB-00002")
    await device.publish(other, b"impersonation")
    await device.publish(own, b"mine")
    await asyncio.sleep(1.0)  # the refused one would have come first
    assert worker.received == [(own, b"mine")]


async def test_only_ingest_workers_subscribe_to_the_device_stream(
    mosquitto_port: int, local_secrets: programs.Secrets, clients: list[Client]
) -> None:
    """A device or a gateway is refused `og/field/#`, `$share/ingest/og/field/#` and any device's
    topic; an ingest worker gets the shared subscription it uses and nothing else (it publishes
    nothing either)."""
    for user in (mqtt_access.DEVICE, mqtt_access.GATEWAY):
        intruder = await connect(clients, mosquitto_port, local_secrets, user)
        for topic_filter in (
            topics.ALL_DEVICES,
            topics.shared_subscription(),
            topics.device_topic("WY-ALPHA", "turbine", "TURB-00001"),
            "#",
        ):
            assert await intruder.subscribe(topic_filter) == [NOT_AUTHORIZED], (user, topic_filter)
    worker = await connect(clients, mosquitto_port, local_secrets, mqtt_access.INGEST)
    assert await worker.subscribe(topics.shared_subscription()) == [1]
    assert await worker.subscribe("$SYS/#") == [NOT_AUTHORIZED]
    await worker.publish(topics.device_topic("WY-ALPHA", "turbine", "TURB-00001"), b"from ingest")
    await asyncio.sleep(0.5)
    assert worker.received == []


async def test_a_would_be_member_of_the_share_group_takes_no_message(
    mosquitto_port: int, local_secrets: programs.Secrets, clients: list[Client]
) -> None:
    """With an intruder trying to join the ingest workers' group, every message still reaches the
    workers: a broker that grants the subscription and filters deliveries afterwards loses the
    intruder's share (what Mosquitto's plain acl_file does)."""
    group = f"t{uuid.uuid4().hex[:6]}"
    worker = await connect(clients, mosquitto_port, local_secrets, mqtt_access.INGEST)
    assert await worker.subscribe(topics.shared_subscription(group)) == [1]
    intruder = await connect(clients, mosquitto_port, local_secrets, mqtt_access.DEVICE)
    assert await intruder.subscribe(topics.shared_subscription(group)) == [NOT_AUTHORIZED]
    gateway = await connect(clients, mosquitto_port, local_secrets, mqtt_access.GATEWAY)
    sent = [topics.device_topic("WY-ALPHA", "turbine", f"TURB-{i:05d}") for i in range(20)]
    for topic in sent:
        await gateway.publish(topic, b"{}")
    for _ in range(100):
        if len(worker.received) == len(sent):
            break
        await asyncio.sleep(0.05)
    assert sorted(t for t, _ in worker.received) == sorted(sent)
    assert intruder.received == []


async def test_a_device_sending_a_packet_above_the_limit_is_disconnected_and_others_go_on(
    mosquitto_port: int, local_secrets: programs.Secrets, clients: list[Client]
) -> None:
    """One device cannot fill its region's broker: a packet bigger than the chart's
    `emqx.maxPacketSize` (64KB) disconnects its sender before anything is stored or queued; a
    payload below the limit but above the telemetry's 8 KiB still reaches the ingest workers (who
    dead-letter it with its reason), and the other devices are not affected."""
    group = f"t{uuid.uuid4().hex[:6]}"
    worker = await connect(clients, mosquitto_port, local_secrets, mqtt_access.INGEST)
    assert await worker.subscribe(topics.shared_subscription(group)) == [1]
    limit = programs.mosquitto_standin().packet_size_bytes(programs.MQTT_MAX_PACKET)
    big = await connect(clients, mosquitto_port, local_secrets, mqtt_access.DEVICE, client_id="TURB-00001")
    big_topic = topics.device_topic("WY-ALPHA", "turbine", "TURB-00001")
    await big.publish(big_topic, b"x" * 20_000)  # above 8 KiB, under the limit: delivered
    big.client.publish(big_topic, b"x" * (limit + 1), qos=1)
    for _ in range(100):
        if not big.client.is_connected:
            break
        await asyncio.sleep(0.05)
    assert not big.client.is_connected, "the broker kept a client that sent a packet above its limit"
    other = await connect(clients, mosquitto_port, local_secrets, mqtt_access.DEVICE, client_id="TURB-00002")
    other_topic = topics.device_topic("WY-ALPHA", "turbine", "TURB-00002")
    await other.publish(other_topic, b"{}")
    await asyncio.sleep(0.5)
    assert [(t, len(p)) for t, p in worker.received] == [(big_topic, 20_000), (other_topic, 2)]


@pytest.mark.parametrize(
    ("size", "expected"),
    [("64KB", 65536), ("1MB", 1048576), ("1mb", 1048576), ("4096", 4096), ("100B", 100)],
)
def test_the_stand_in_reads_emqx_packet_sizes(size: str, expected: int) -> None:
    assert programs.mosquitto_standin().packet_size_bytes(size) == expected


@pytest.mark.parametrize("size", ["", "64 kilobytes", "1TB", "10", "512MB", "-1KB"])
def test_the_stand_in_refuses_a_packet_size_it_cannot_apply(size: str) -> None:
    standin = programs.mosquitto_standin()
    with pytest.raises(standin.TranslationError, match="EMQX_MQTT__MAX_PACKET_SIZE"):
        standin.packet_size_bytes(size)
