"""The transitions checker's verdicts (tests/support/tier0_checker): lost messages against the
newest stored sequence per device, split-brain detection from role samples, percentiles, and the
MQTT packets its publisher writes."""

import math

import pytest

from tier0_checker import checker, ledger, mqtt_pub, report
from tier0_checker.ledger import Ack, RoleSample

pytestmark = pytest.mark.unit


def _acks(*items: tuple[str, int]) -> dict[str, list[Ack]]:
    out: dict[str, list[Ack]] = {}
    for device, seq in items:
        out.setdefault(device, []).append(Ack(device, seq, 0.0))
    return out


def test_an_acknowledged_message_newer_than_the_store_is_lost() -> None:
    v = ledger.check(_acks(("a", 3), ("b", 7), ("c", 1)), {"a": 3, "b": 6})
    assert (v.acked, v.lost, v.unverifiable) == (3, 2, 0)
    assert v.lost_examples == ("b#7 (stored #6)", "c#1 (stored #0)")


def test_a_newer_stored_message_covers_older_ones_but_they_are_unverifiable() -> None:
    v = ledger.check(_acks(("a", 3), ("a", 4), ("a", 5)), {"a": 5})
    assert (v.acked, v.lost, v.unverifiable) == (3, 0, 2)
    v = ledger.check(_acks(("a", 3), ("a", 4)), {"a": 3})
    assert (v.lost, v.unverifiable) == (1, 0)


def _s(at: float, r1: str | None, n1: int | None, r2: str | None, n2: int | None) -> RoleSample:
    return RoleSample(at, {"region1": r1, "region2": r2}, {"region1": n1, "region2": n2})


def test_two_primaries_count_only_when_both_stored() -> None:
    samples = [
        _s(0.0, "master", 10, "slave", 10),
        _s(0.1, "master", 12, "master", 10),  # promoted: the old one still writes, the new one not yet
        _s(0.2, "master", 14, "master", 11),  # both store: split brain that acknowledged
        _s(0.3, "master", 14, "master", 12),  # the old one stopped
        _s(0.4, None, None, "master", 13),
    ]
    count, seconds = ledger.dual_primary_acks(samples)
    assert count == 1
    assert math.isclose(seconds, 0.1)


def test_percentile_is_nearest_rank_and_nan_when_empty() -> None:
    assert ledger.percentile([0.3, 0.1, 0.2], 0.5) == 0.2
    assert ledger.percentile([0.3, 0.1, 0.2], 0.99) == 0.3
    assert math.isnan(ledger.percentile([], 0.5))
    assert math.isnan(ledger.percentile([math.nan], 0.5))


def test_mqtt_packets_follow_the_3_1_1_encoding() -> None:
    assert mqtt_pub.connect_packet("c", keepalive=60) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
    packet = mqtt_pub.publish_packet(b"t/x", b"p" * 200, packet_id=258)
    assert packet[:3] == b"\x32\xcf\x01"  # QoS 1; remaining length 207 as a two-byte varint
    assert packet[3:8] == b"\x00\x03t/x" and packet[8:10] == b"\x01\x02"


def _report(samples: list[tuple[float, float, int | None]]) -> checker.Report:
    soak = [checker.SoakSample(at, "region1", rss, 10.0, stored) for at, rss, stored in samples]
    return checker.Report([], soak, 0, 0, [])


def test_a_standby_is_flat_only_when_its_second_half_does_not_grow() -> None:
    flat = _report([(0, 40.0, 0), (150, 44.0, 900), (300, 45.0, 950)])
    assert report.soak_problems(flat) == []
    growing = _report([(0, 40.0, 0), (150, 60.0, 15_000), (300, 90.0, 30_000)])
    assert report.soak_problems(growing) == [
        "standby: broker store grew 15000 -> 30000 messages",
        "standby: worker RSS grew 60 -> 90 MB",
    ]
    assert report.soak_problems(_report([(0, 40.0, 0), (5, 90.0, 30_000), (10, 99.0, 60_000)])) == []  # too short
