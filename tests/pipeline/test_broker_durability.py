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


async def _saved(database: Path, quiet_s: float = 0.3, bound_s: float = 5.0) -> None:
    """Until the broker's database file has not changed for `quiet_s` (at most `bound_s`).

    Mosquitto acknowledges a message before the save that follows it in the same loop round, so a
    kill inside that database write can still lose what the round acknowledged: the README states
    this window. It is about 0.4 ms on a quiet machine, but a fixed pause does not keep clear of it
    on a loaded one (0.1 s lost 1 of 1,339 in a CI run), so the test waits for the writes to stop."""
    loop = asyncio.get_running_loop()
    deadline, last, since = loop.time() + bound_s, None, loop.time()
    while loop.time() < deadline:
        stamp = database.stat().st_mtime_ns if database.exists() else None
        if stamp != last:
            last, since = stamp, loop.time()
        elif loop.time() - since >= quiet_s:
            return
        await asyncio.sleep(0.02)


async def _publish_then_kill(port: int, broker: procs.Process, publish_s: float, database: Path | None) -> set[str]:
    """Publishes QoS 1 as fast as PUBACKs allow (at most 1,000 unacknowledged) for `publish_s`,
    waits for the last PUBACKs and, with durable sessions (`database`), for the broker's database
    writes to settle (`_saved`), then kills the broker; returns the payloads it acknowledged."""
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
    if database is None:
        await asyncio.sleep(0.1)  # periodic saves: the kill must come before the next one
    else:
        await _saved(database)
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
        database = state / "mosquitto.db" if durable else None
        acked = asyncio.run(_publish_then_kill(port, broker, 1.0, database))
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
