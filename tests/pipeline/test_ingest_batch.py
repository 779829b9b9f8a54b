"""Ingest batch preparation (pure): valid messages become script records, invalid ones dead letters
with a reason, nothing raises; timestamps are clamped to receive time."""

import random

import orjson
import pytest

from tier0_services.ingest import batch
from tier0_simulators import fleet

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def message(i: int = 0, ts: float = NOW - 1, state: int = 0) -> tuple[bytes, bytes]:
    dev = fleet.device(i)
    return dev.topic.encode(), orjson.dumps(fleet.payload(dev, state, fleet.timestamp(ts), random.Random(i)))


def test_valid_messages_become_records() -> None:
    out = batch.prepare([message(0), message(1, state=2)], NOW)
    assert out.accepted == 2 and out.rejected == 0
    where, state, ts, payload = out.records[1].split(b"\x1f", 3)
    dev = fleet.device(1)
    assert where == f"{dev.site.site_id}/{dev.device_type.value}/{dev.device_id}".encode()
    assert (state, float(ts)) == (b"ALERT", NOW - 1)
    assert orjson.loads(payload)["device_id"] == dev.device_id
    assert out.newest_ts == NOW - 1


def test_future_timestamps_are_clamped_and_counted_beyond_the_skew() -> None:
    out = batch.prepare([message(0, ts=NOW + 3600), message(1, ts=NOW + 1), message(2, ts=NOW - 1)], NOW, skew=5)
    assert [float(r.split(b"\x1f")[2]) for r in out.records] == [NOW, NOW, NOW - 1]
    assert out.future_clamped == 1 and out.rejected == 0
    assert out.newest_ts == NOW  # a far-future device cannot push the lag gauge negative


def test_too_old_timestamps_are_dead_lettered() -> None:
    out = batch.prepare([message(0, ts=NOW - 7200), message(1, ts=NOW - 60)], NOW, max_age=3600)
    assert out.accepted == 1 and out.too_old == 1 and out.invalid == 0
    entry = orjson.loads(out.dead_letters[0])
    assert entry["error"] == "timestamp: older than 3600 s (too_old)"
    assert entry["topic"] == fleet.device(0).topic


def test_invalid_messages_are_dead_lettered_with_a_reason() -> None:
    topic, payload = message(0)
    other_topic = fleet.device(1).topic.encode()
    bad = [
        (topic, b"{not json"),
        (topic, payload.replace(b'"OK"', b'"ON FIRE"')),
        (other_topic, payload),  # topic of another device
        (b"og/field/only/three", payload),
        (b"\xff\xfe", b"{}"),
        (topic, b"x" * 10_000),
    ]
    out = batch.prepare([*bad, (topic, payload)], NOW)
    assert out.accepted == 1 and out.rejected == len(bad)
    entries = [orjson.loads(d) for d in out.dead_letters]
    reasons = [e["error"] for e in entries]
    assert reasons[0].startswith("payload:")
    assert "status.state" in reasons[1]
    assert "does not match" in reasons[2]
    assert reasons[3].startswith("topic: not og/field")
    assert reasons[4] == "topic: not UTF-8"
    assert "larger than" in reasons[5]
    assert all(e["received_at"] == NOW for e in entries)
    assert len(entries[5]["payload"]) == batch.DEAD_LETTER_PAYLOAD_BYTES


def test_empty_batch() -> None:
    out = batch.prepare([], NOW)
    assert out.records == [] and out.dead_letters == [] and out.accepted == 0


def test_a_refused_batch_splits_into_pieces_and_dead_letters_that_name_their_message() -> None:
    """What delivery.Delivery._salvage writes: accepted messages in pieces without the batch's dead
    letters, the dead letters (and counts) on their own, and a message the store refused as a dead
    letter that carries its topic and payload again."""
    good = [message(i) for i in range(4)]
    prepared = batch.prepare([*good, (fleet.device(9).topic.encode(), b"{")], NOW)
    half = batch.records_only(prepared, 0, 2)
    assert (half.records, half.accepted, half.dead_letters) == (prepared.records[:2], 2, [])
    letter = batch.failed_record(prepared.records[1], "WRONGTYPE devices:latest", NOW)
    entry = orjson.loads(letter)
    assert entry["topic"] == fleet.device(1).topic and entry["error"] == "store: WRONGTYPE devices:latest"
    assert orjson.loads(entry["payload"]) == orjson.loads(good[1][1])
    letters = batch.dead_letters_only(prepared, [letter])
    assert (letters.records, letters.invalid, letters.failed) == ([], 1, 1)
    assert letters.dead_letters == [*prepared.dead_letters, letter]
