"""What a killed broker still holds when it returns with its volume: the boundary of issue 18's
region kill. With durable sessions (the node's setting) every message the broker acknowledged to a
publisher is delivered to the ingest share group after a `kill -9`; without, everything since the
last periodic save is gone, which is what this test must be able to tell apart."""

import asyncio
from pathlib import Path

import gmqtt
import pytest

from tier0_checker import mqtt_pub
from tier0_dev import procs, programs

pytestmark = pytest.mark.integration

SHARE = "$share/ingest/og/field/#"


async def _session(port: int, received: set[str], hold_s: float) -> None:
    """The ingest worker's kind of session (persistent, QoS 1 share group); collects for `hold_s`."""
    client = gmqtt.Client("durability-ingest", clean_session=False, session_expiry_interval=3600)

    def on_message(_client: gmqtt.Client, _topic: str, payload: bytes, _qos: int, _props: object) -> int:
        received.add(payload.decode())
        return 0

    client.on_message = on_message
    await client.connect("127.0.0.1", port, keepalive=30)
    client.subscribe(SHARE, qos=1)
    await asyncio.sleep(hold_s)
    await client.disconnect()


async def _publish_then_kill(port: int, broker: procs.Process, publish_s: float) -> set[str]:
    """Publishes QoS 1 as fast as PUBACKs allow (at most 1,000 unacknowledged) for `publish_s`,
    waits for the last PUBACKs and kills the broker 0.1 s later; returns the payloads the broker
    acknowledged. (Mosquitto acknowledges a message before the save that follows it in the same
    loop round, so a kill inside that one database write, about 0.4 ms here, can still lose what
    that round acknowledged: the README states this window; the test keeps clear of it.)"""
    acked: set[str] = set()
    names: dict[int, str] = {}
    window = asyncio.Semaphore(1000)

    def on_ack(packet_id: int) -> None:
        acked.add(names[packet_id])
        window.release()

    pub = mqtt_pub.Publisher("127.0.0.1", port, "durability-device", on_ack)
    await pub.connect()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + publish_s
    i = 0
    while loop.time() < deadline:
        await window.acquire()
        packet_id = pub.next_packet_id()
        names[packet_id] = f"m{i}"
        pub.publish(b"og/field/S1/press/D1", names[packet_id].encode(), packet_id)
        i += 1
        await asyncio.sleep(0)
    for _ in range(100):
        if len(acked) == i:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    broker.kill()
    await pub.close()
    assert i > 100, f"only {i} messages published before the kill"
    return acked


def _lost_after_kill(tmp_path: Path, durable: bool) -> tuple[int, int]:
    port = procs.free_port()
    state = tmp_path / f"mosquitto-{durable}"
    broker = programs.mosquitto(port, state, durable=durable)
    try:
        asyncio.run(_session(port, set(), 0.3))  # the share group's session exists, then goes away
        acked = asyncio.run(_publish_then_kill(port, broker, 1.0))
        broker = programs.mosquitto(port, state, durable=durable)  # back with its volume
        received: set[str] = set()
        asyncio.run(_session(port, received, 2.0))
        return len(acked - received), len(acked)
    finally:
        broker.stop()


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "periodic"])
def test_messages_acknowledged_before_a_kill_are_delivered_after_it(tmp_path: Path, durable: bool) -> None:
    lost, acked = _lost_after_kill(tmp_path, durable)
    assert acked > 100, f"only {acked} messages acknowledged before the kill"
    if durable:
        assert lost == 0, f"{lost} of {acked} acknowledged messages lost to kill -9 with durable sessions"
    else:  # the contrast that shows the test can fail: a 5 s save interval loses the last seconds
        assert lost > 0, f"no message lost without durable sessions ({acked} acknowledged): the kill came too late?"
