"""The region-loss harness's pure parts (tests/system/regionfaults.py, regionrun.py, kit.py): the
partition's iptables rules, how an eviction answer is read, the ledgers' and reader's logs, the
role samples' same-epoch check, freshness, rejoin, the old primary's late writes, percentiles and
the benchmark's cells and verdicts."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "system"))

import kit  # noqa: E402
import regionfaults  # noqa: E402
import regionrun  # noqa: E402

pytestmark = pytest.mark.unit


def test_percentile_of_one_run_is_the_run_and_of_none_is_nan() -> None:
    assert kit.percentile([2.5], 99) == 2.5
    assert math.isnan(kit.percentile([], 50))
    assert kit.percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert 2.9 < kit.percentile([1.0, 2.0, 3.0], 99) <= 3.0


def test_the_clients_timeline_runs_the_same_answers_together_around_the_flip() -> None:
    log = "\n".join(
        [
            "99.7 1 region1 -",  # before the margin: left out
            "99.9 1 region1 -",
            "100.1 1 region1 -",
            "100.3 2 - http-503",
            "100.6 2 - http-503",
            "101.0 1 region2 -",
            "101.1 1 region2 -",
            "101.5 1 region2 -",  # after the margin: left out
        ]
    )
    samples = kit.parse(log)
    line = kit.timeline(samples, 100.0, -0.2, 1.3)
    assert line == "-0.10..+0.10 region1 x2; +0.30..+0.60 http-503 (2 tries) x2; +1.00..+1.10 region2 x2"
    assert kit.longest_gap(samples) == (100.1, 101.0)
    assert kit.summarize(samples, 100.0, "region2").outage_s == pytest.approx(0.9)


def test_partition_rules_let_the_region_talk_to_itself_and_drop_the_rest() -> None:
    rules = regionfaults.partition_rules(["10.244.0.7", "10.244.0.9"], chain="C")
    returns = [r for r in rules if r[-1] == "RETURN"]
    assert len(returns) == 4 and ["-A", "C", "-s", "10.244.0.7", "-d", "10.244.0.9", "-j", "RETURN"] in returns
    # Every RETURN comes before every DROP: the chain is read top-down.
    assert rules.index(returns[-1]) < min(i for i, r in enumerate(rules) if r[-1] == "DROP")
    drops = [r[2:4] for r in rules if r[-1] == "DROP"]
    assert sorted(drops) == sorted([[flag, ip] for flag in ("-s", "-d") for ip in ("10.244.0.7", "10.244.0.9")])


def test_partition_hooks_go_first_in_forward_input_and_output() -> None:
    assert regionfaults.hook_rules("C") == [
        ["-I", "FORWARD", "1", "-j", "C"],
        ["-I", "INPUT", "1", "-j", "C"],
        ["-I", "OUTPUT", "1", "-j", "C"],
    ]
    assert regionfaults.CHAIN.startswith("TIER0-")  # node-down sweeps TIER0-* chains


def test_partition_goes_in_as_one_restore_commit_with_its_hooks_last() -> None:
    text = regionfaults.partition_restore(["10.244.0.7", "10.244.0.9"], chain="C")
    lines = text.splitlines()
    assert lines[:2] == ["*filter", ":C - [0:0]"] and lines[-1] == "COMMIT" and text.endswith("\n")
    body = lines[2:-1]
    assert body[0] == "-A C -s 10.244.0.7 -d 10.244.0.7 -j RETURN"
    # The jumps come after the chain is complete: the cut starts whole, at the commit.
    assert body[-3:] == ["-I FORWARD 1 -j C", "-I INPUT 1 -j C", "-I OUTPUT 1 -j C"]
    assert len(body) == 4 + 4 + 3


def test_eviction_answers_read_as_drain_reads_them() -> None:
    pdb = "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget."
    assert regionfaults.eviction_verdict(0, "") == "evicted"
    assert regionfaults.eviction_verdict(1, pdb) == "retry"
    assert regionfaults.eviction_verdict(1, 'Error from server (NotFound): pods "x" not found') == "gone"
    assert regionfaults.eviction_verdict(1, "Error from server (Forbidden): nope") == "error"


def test_workload_replicas_records_what_to_scale_back() -> None:
    items = [
        {"kind": "Deployment", "metadata": {"name": "api"}, "spec": {"replicas": 2}},
        {"kind": "StatefulSet", "metadata": {"name": "redis"}, "spec": {}},
    ]
    assert regionfaults.workload_replicas(items) == [("deployment", "api", 2), ("statefulset", "redis", 1)]


def test_ledger_reads_acknowledgements_with_their_times() -> None:
    led = kit.Ledger()
    led.read("ready\nacked E2E-a-0 100.5\nacked E2E-a-1 101.0\nnoise\nsent 3 acked 2\n", "acked")
    assert led.acked == ["E2E-a-0", "E2E-a-1"] and led.acked_at == [100.5, 101.0]
    assert led.summary == "sent 3 acked 2"
    assert led.first_ack_after(100.75) == 0.25
    assert led.first_ack_after(101.5) is None
    act = kit.Ledger()
    act.read("ready\nconfirmed e2e-x-0 5.0\nsent 1 confirmed 1", "confirmed")
    assert act.acked == ["e2e-x-0"]


def test_reader_log_and_freshness_from_the_flip() -> None:
    log = "ready\n100.000 99.000 98.000\n100.020 - -\n100.040 100.030 99.000\n100.060 100.050 100.055\n"
    readings = kit.parse_readings(log)
    assert readings[1] == kit.Reading(100.02, None, None)
    tel, act = regionrun.freshness(readings, 100.01)
    assert tel is not None and math.isclose(tel, 0.03)
    assert act is not None and math.isclose(act, 0.05)
    assert regionrun.freshness(readings, 200.0) == (None, None)


def test_role_samples_and_same_epoch_masters() -> None:
    log = "1.0 master 3\n1.1 slave 3\nCould not connect\n1.2 master\n"
    samples = regionrun.parse_roles("region1", log)
    assert [(s.role, s.epoch) for s in samples] == [("master", 3), ("slave", 3), ("master", 0)]
    r1 = [regionrun.RoleSample(t, "region1", "master", 3) for t in (1.0, 1.1, 1.2)]
    # The new primary promoted, still at the old epoch for one sample, then at its own.
    r2 = [
        regionrun.RoleSample(1.05, "region2", "slave", 3),
        regionrun.RoleSample(1.15, "region2", "master", 3),
        regionrun.RoleSample(1.25, "region2", "master", 4),
    ]
    # From 1.15 (both at 3) until 1.25 (region2 at 4): one stretch of 0.1 s.
    assert math.isclose(regionrun.same_epoch_masters(r1 + r2), 0.1)
    # A stale sample of a region (its pod gone) does not count.
    gone = [regionrun.RoleSample(0.0, "region1", "master", 3), regionrun.RoleSample(5.0, "region2", "master", 3)]
    assert regionrun.same_epoch_masters(gone) == 0.0
    # A split brain lasts until the last sample.
    split = [regionrun.RoleSample(t / 10, f"region{1 + i % 2}", "master", 3) for i, t in enumerate(range(30))]
    assert math.isclose(regionrun.same_epoch_masters(split), 2.8)


def _last(started: str, completed: str) -> dict[str, object]:
    return {
        "type": "Failover",
        "from": "region1",
        "to": "region2",
        "outcome": "Succeeded",
        "epoch": 2,
        "startedAt": started,
        "completedAt": completed,
        "durationSeconds": 1.0,
    }


def test_a_transition_counts_when_it_began_after_the_fault_and_completed() -> None:
    last = _last("2026-01-01T00:00:10Z", "2026-01-01T00:00:11Z")
    t10 = 1767225610.0
    assert regionrun.new_transition({"lastTransition": last}, t10 - 1) == last
    assert regionrun.new_transition({"lastTransition": last}, t10 + 1) is None
    assert regionrun.new_transition({"lastTransition": last, "transition": {"type": "Failover"}}, t10 - 1) is None
    assert regionrun.new_transition({}, 0) is None
    assert regionrun.epoch_s(last) == t10 + 1


def test_rejoined_needs_healthy_and_a_replicating_replica() -> None:
    replica = {"name": "region1", "role": "replica", "linkUp": True, "healthy": True}
    status = {"phase": "Healthy", "activeRegion": "region2", "regions": [replica]}
    assert regionrun.rejoined(status, "region1")
    assert regionrun.rejoined(status, "region2")
    assert not regionrun.rejoined({**status, "phase": "Degraded"}, "region1")
    assert not regionrun.rejoined({**status, "regions": [{**replica, "linkUp": False}]}, "region1")


def test_old_primary_history_stamped_after_the_failover() -> None:
    stamps = ["2026-01-01T00:00:12+00:00", "2026-01-01T00:00:09+00:00", "not a time", ""]
    assert regionrun.stamped_after(stamps, 1767225610.0) == 1


def test_the_activity_ledger_reaches_the_amqp_service_named_in_kit() -> None:
    assert kit.amqp_url_via("amqp://tier0-rabbitmq:5672/tier0", "tier0-amqp") == "amqp://tier0-amqp:5672/tier0"
    assert kit.amqp_url_via("amqps://rabbit/%2F", "tier0-amqp") == "amqps://tier0-amqp/%2F"


def _run(**changes: object) -> regionrun.RegionRun:
    base: dict[str, object] = {
        "scenario": "region kill",
        "old": "region1",
        "active_after": "region2",
        "outcome": kit.Outcome(100, 2, 1, 0.5, 3.5, 0),
        "answers_again": True,
        "errors_by_kind": {"http-503": 1},
        "transition": "Failover region1->region2",
        "flip_s": 4.0,
        "devices_after_flip_s": 0.1,
        "fresh_telemetry_s": 0.5,
        "fresh_activity_s": 0.6,
        "device_acked": 10,
        "device_lost": [],
        "activity_acked": 5,
        "activity_lost": [],
        "dual_writes": None,
        "same_epoch_s": 0.0,
        "rejoin_s": 12.0,
        "fault": regionfaults.Fault("region kill", "region1", 0.0),
    }
    base.update(changes)
    return regionrun.RegionRun(**base)  # type: ignore[arg-type]


def test_row_and_targets_met() -> None:
    runs = [_run(), _run(outcome=kit.Outcome(100, 0, 0, 0.4, 3.9, 0), dual_writes=0)]
    cells = regionrun.row("region kill", runs)
    assert cells[0] == "region kill" and cells[3] == 1 and cells[4] == "Failover region1->region2"
    assert cells[8] == "0 of 20" and cells[9] == "0 of 10" and cells[10] == "0; same-epoch masters 0.00 s"
    assert regionrun.misses("region kill", runs, detection_s=3.0) == []


def test_targets_missed_are_named() -> None:
    slow = _run(outcome=kit.Outcome(100, 9, 9, 0.5, 6.0, 0), fresh_activity_s=None, device_lost=["E2E-1"])
    missed = regionrun.misses("region kill", [slow], detection_s=3.0)
    assert "1 acknowledged messages lost" in missed
    assert any(m.startswith("outage 6.00 s") for m in missed)
    assert "fresh activity p99 never" in missed
    late = regionrun.misses("region partition", [_run(fresh_telemetry_s=3.175)], detection_s=3.0)
    assert late == ["fresh telemetry p99 3.17 s not < 1 s"]
    assert regionrun.row("region kill", [slow])[7] == "never"
    drain = _run(scenario="node drain")
    assert regionrun.misses("node drain", [drain], 3.0) == [
        "not a switchover: Failover region1->region2",
        "1 errors after one retry",
    ]
    rolled = _run(scenario="rolling restart", transition="none", outcome=kit.Outcome(100, 0, 0, None, 0.2, 0))
    assert regionrun.misses("rolling restart", [rolled], 3.0) == []
    assert regionrun.dual_cell([rolled]) == "no transition; same-epoch masters 0.00 s"
    assert regionrun.dual_cell([_run()]) == "old primary down; same-epoch masters 0.00 s"
    split = regionrun.misses("region kill", [_run(same_epoch_s=2.0, dual_writes=3)], 3.0)
    assert "writes accepted by two primaries" in split and "two Redis role:master at one epoch for 2.00 s" in split
