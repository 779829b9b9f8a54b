"""Pure rules of the pipeline: the timestamp rule, choosing the current primary, parsing PUBLISH
packets (QoS 0/1, MQTT 3.1.1 and 5, with and without properties), heartbeat arguments."""

import asyncio
import contextlib
import socket
import time

import pytest

from tier0_contract import keys, pipeline, timestamps
from tier0_services import healthz, heartbeat
from tier0_services.ingest import mqtt as ingest_mqtt
from tier0_services.ingest import session
from tier0_services.ingest.mqtt import parse_publish
from tier0_services.primary import Choice, Observation, choose, parse_observation

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


# --- timestamps -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "outcome", "stored"),
    [
        (NOW - 10, "ok", NOW - 10),
        (NOW + 1, "ok", NOW),  # within the skew allowance: clamped silently
        (NOW + 3600, "future_clamped", NOW),
        (NOW - 2 * 86400, "too_old", NOW - 2 * 86400),
        (NOW - 86400 + 1, "ok", NOW - 86400 + 1),
    ],
)
def test_clamp_or_reject(ts: float, outcome: str, stored: float) -> None:
    v = timestamps.clamp_or_reject(ts, NOW)
    assert (v.outcome, v.ts) == (outcome, stored)
    assert v.rejected == (outcome == "too_old")


def test_timestamp_rule_limits_are_configurable() -> None:
    assert timestamps.clamp_or_reject(NOW + 2, NOW, skew=1).outcome == "future_clamped"
    assert timestamps.clamp_or_reject(NOW - 120, NOW, max_age=60).outcome == "too_old"
    assert timestamps.clamp_or_reject(NOW - 120, NOW, max_age=60).reason(60) == "timestamp: older than 60 s (too_old)"


# --- choosing the primary ---------------------------------------------------------------------------


def obs(i: int, role: str = "master", epoch: int = 0, reachable: bool = True) -> Observation:
    return Observation(i, reachable, role if reachable else "", epoch)


def test_the_only_master_is_the_primary() -> None:
    assert choose([obs(0), obs(1, "slave")]).endpoint == 0
    assert choose([obs(0, "slave", 9), obs(1, epoch=0)]).endpoint == 1


def test_highest_epoch_wins_over_a_stale_master() -> None:
    # A partitioned old primary still says master; the promoted one carries the newer epoch.
    c = choose([obs(0, epoch=3), obs(1, epoch=4)])
    assert c.endpoint == 1 and "epoch 4" in c.reason
    assert c.observation == obs(1, epoch=4)


def test_missing_epoch_counts_as_zero() -> None:
    assert choose([obs(0, epoch=0), obs(1, epoch=1)]).endpoint == 1


def test_equal_epochs_are_ambiguous_and_hold() -> None:
    c = choose([obs(0, epoch=2), obs(1, epoch=2)])
    assert c == Choice(None, c.reason) and "ambiguous" in c.reason


def test_no_master_or_unreachable_means_no_primary() -> None:
    assert choose([obs(0, "slave"), obs(1, reachable=False)]).endpoint is None
    assert "1 of 2 unreachable" in choose([obs(0, "slave"), obs(1, reachable=False)]).reason
    assert choose([]).endpoint is None
    assert choose([obs(0, reachable=False), obs(1, epoch=1)]).endpoint == 1


def test_parse_observation_of_raw_answers() -> None:
    master = [b"master", 1234, [[b"127.0.0.1", b"6380", b"1234"]]]
    o = parse_observation(0, master, b"7", {"min-replicas-to-write": "1"})
    assert o == Observation(0, True, "master", 7, 1, 1)
    replica = [b"slave", b"127.0.0.1", 6379, b"connected", 1234]
    assert parse_observation(1, replica, None, {b"min-replicas-to-write": b"0"}) == Observation(
        1, True, "slave", 0, 0, 0
    )
    refused = parse_observation(0, master, b"junk", Exception("ERR unknown command CONFIG"))
    assert (refused.epoch, refused.min_replicas_to_write) == (0, None)  # unknown policy: treated as hold
    assert not parse_observation(0, ConnectionError("down"), None, None).reachable


# --- PUBLISH packets -------------------------------------------------------------------------------


def publish_body(topic: bytes, payload: bytes, mid: int | None, props: bytes | None) -> bytes:
    out = len(topic).to_bytes(2, "big") + topic
    if mid is not None:
        out += mid.to_bytes(2, "big")
    if props is not None:
        out += bytes([len(props)]) + props
    return out + payload


USER_PROPERTY = b"\x26" + b"\x00\x01k" + b"\x00\x01v"
EXPIRY = b"\x02" + (60).to_bytes(4, "big")
CONTENT_TYPE = b"\x03" + b"\x00\x10application/json"


@pytest.mark.parametrize("props", [b"", USER_PROPERTY, USER_PROPERTY + EXPIRY + CONTENT_TYPE])
@pytest.mark.parametrize("flags", [0x00, 0x01, 0x08, 0x09])  # retain, dup
def test_qos1_mqtt5_with_and_without_properties(props: bytes, flags: int) -> None:
    data = publish_body(b"og/field/a/b/c", b'{"x":1}', 513, props)
    assert parse_publish(0x32 | flags, data, mqtt5=True) == (b"og/field/a/b/c", b'{"x":1}', 513)


def test_qos0_has_no_packet_id() -> None:
    data = publish_body(b"t/1", b"hello", None, USER_PROPERTY)
    assert parse_publish(0x30, data, mqtt5=True) == (b"t/1", b"hello", None)
    assert parse_publish(0x31, publish_body(b"t/1", b"hello", None, None), mqtt5=False) == (b"t/1", b"hello", None)


def test_mqtt311_has_no_property_block() -> None:
    data = publish_body(b"t/1", b"\x00payload", 7, None)
    assert parse_publish(0x32, data, mqtt5=False) == (b"t/1", b"\x00payload", 7)


def test_long_property_block_uses_a_multibyte_length() -> None:
    props = USER_PROPERTY * 20  # 140 bytes: the length takes two bytes (0x8c 0x01)
    data = b"\x00\x03t/1" + b"\x00\x05" + bytes([0x80 | (len(props) & 0x7F), len(props) >> 7]) + props + b"body"
    assert parse_publish(0x32, data, mqtt5=True) == (b"t/1", b"body", 5)


def test_not_handled_qos2_other_packets_and_truncation() -> None:
    data = publish_body(b"t/1", b"x", 1, b"")
    assert parse_publish(0x34, data, mqtt5=True) is None  # QoS 2
    assert parse_publish(0x40, b"\x00\x01", mqtt5=True) is None  # PUBACK
    assert parse_publish(0x32, b"\x00\x05t/", mqtt5=True) is None
    assert parse_publish(0x32, b"\x00\x01t\x00\x01\x05\x26", mqtt5=True) is None  # properties cut short


# --- heartbeats -------------------------------------------------------------------------------------


def test_heartbeat_arguments() -> None:
    p = heartbeat.Progress(
        "ingest", "w-1", "region2", received=10, stored=8, pending=2, connected=True, last_stored=100.0
    )
    script_keys, argv = p.args(monotonic_now=102.5)
    assert script_keys == [keys.PIPELINE_HEARTBEATS]
    assert argv == ["ingest", "w-1", "region2", 10, 8, 2, "1", "2.500", pipeline.heartbeat_field("ingest", "w-1")]
    assert heartbeat.Progress("activity", "c", "region1").args(5.0)[1][7] == ""  # never stored


def test_worker_healthz_verdict_uses_the_shared_rule() -> None:
    p = heartbeat.Progress("ingest", "w", "region1", connected=True)
    assert healthz.verdict(p, 1.0)[0] == "idle"
    p.pending, p.last_stored = 5, time.monotonic() - 60
    assert healthz.verdict(p, 1.0) == ("stalled", "ingest worker w: 5 messages held, nothing stored for 60 s")
    p.last_stored = time.monotonic()
    assert healthz.verdict(p, 1.0)[0] == "ok"
    p.connected = False
    assert healthz.verdict(p, 1.0)[0] == "stalled"


def test_reconnect_delay_is_short_first_then_stretches() -> None:
    assert session.reconnect_delay(0.0) == session.reconnect_delay(2.9) == 0.1
    assert session.reconnect_delay(30.0) == 3.0
    assert session.reconnect_delay(3600.0) == 10.0


async def test_a_broker_connect_that_gets_no_answer_fails_within_its_bound() -> None:
    """A listener whose accept queue is full drops SYNs, as a vanished pod address does: gmqtt's
    own connect would wait out the kernel's SYN retries (about 2 min); the ingest client gives up
    after `connect_timeout` with an OSError, which its connect loop and gmqtt's reconnect retry."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):  # the accept queue holds what listen(0) allows, then SYNs are dropped
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.2)
        client = ingest_mqtt.IngestClient("t0", lambda *_: None, connect_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(OSError):
            await client.connect("127.0.0.1", port)
        assert time.monotonic() - started < 2.0
    finally:
        for s in fillers:
            s.close()
        server.close()
