"""`kubectl tier0 switchover` and `drill` without a cluster: when a switchover or failover is finished
as status tells it, when a drill is refused, the report's figures (detection, transition, outage,
bytes at risk) and the annotation and Event that record it."""

import json
from datetime import timedelta
from typing import Any

import pytest

from tier0_contract import regionpair as rp
from tier0_kubectl import drill, view
from tier0_testing.kubectl import pair, region
from tier0_testing.pairs import T0

pytestmark = pytest.mark.unit


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def finished(kind: str, src: str, dst: str, epoch: int, start: float, took: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "from": src,
        "to": dst,
        "outcome": "Succeeded",
        "epoch": epoch,
        "startedAt": at(start),
        "completedAt": at(start + took),
        "durationSeconds": took,
        "summary": f"{kind} {src}->{dst} ({took:.2f}s)",
        **extra,
    }


MOVED = {
    "activeRegion": "region2",
    "requestedRegion": "region2",
    "epoch": 4,
    "regions": [region("region1", "replica"), region("region2", "primary")],
}


class TestSwitchoverProgress:
    def test_done_once_the_target_is_active_and_requested(self) -> None:
        after = pair(status={**MOVED, "lastTransition": finished("Switchover", "region1", "region2", 4, 1, 0.06)})
        assert drill.switchover_progress(after, "region2", 3) == drill.Progress(
            True, "region2 is active (phase Healthy, epoch 4)"
        )

    def test_in_progress_while_status_has_a_transition(self) -> None:
        t = {"type": "Switchover", "from": "region1", "to": "region2", "epoch": 4, "startedAt": at(1)}
        state = drill.switchover_progress(pair(status={"phase": "SwitchingOver", "transition": t}), "region2", 3)
        assert not state.done and state.failed is None
        assert state.line == "SwitchingOver: Switchover region1->region2 (epoch 4, attempt 1)"

    def test_a_rollback_keeps_waiting_for_the_retry_and_a_failure_stops(self) -> None:
        rolled = finished("Switchover", "region1", "region2", 4, 1, 5.0, outcome="RolledBack", reason="standby behind")
        state = drill.switchover_progress(pair(status={"epoch": 4, "lastTransition": rolled}), "region2", 3)
        assert not state.done and state.failed is None and "RolledBack" in state.line
        failed = {**rolled, "outcome": "Failed"}
        state = drill.switchover_progress(pair(status={"epoch": 4, "lastTransition": failed}), "region2", 3)
        assert state.failed == "Switchover to region2 Failed: standby behind"

    def test_a_paused_pair_never_switches(self) -> None:
        state = drill.switchover_progress(pair(paused=True), "region2", 3)
        assert state.failed is not None and "paused" in state.failed

    def test_an_old_transition_is_not_this_one(self) -> None:
        old = finished("Switchover", "region2", "region1", 3, 1, 0.05)
        state = drill.switchover_progress(pair(status={"lastTransition": old}), "region2", 3)
        assert not state.done and state.line.startswith("waiting for the operator")


class TestFailoverProgress:
    def test_waits_with_the_failed_probes_then_done(self) -> None:
        down = region("region1", "unknown", healthy=False, consecutiveFailures=2)
        state = drill.failover_progress(pair(status={"regions": [down, region("region2", "replica")]}), 3, "region1")
        assert state.line == "waiting for the operator to detect the loss (phase Healthy, 2 failed probes of region1)"
        after = pair(status={**MOVED, "lastTransition": finished("Failover", "region1", "region2", 4, 1, 0.07)})
        assert drill.failover_progress(after, 3, "region1").done


class TestRefuse:
    @pytest.mark.parametrize(
        ("spec", "status", "unplanned", "why"),
        [
            ({}, {}, True, None),
            ({"paused": True}, {}, False, "the pair is paused (kubectl tier0 resume first)"),
            ({}, {"phase": "Degraded"}, False, "the pair is Degraded, not Healthy"),
            ({"mode": "Manual"}, {}, False, None),
            ({"mode": "Manual"}, {}, True, "failover mode is Manual"),
            ({"active": "region2"}, {}, False, "spec.activeRegion region2 is not the active region region1"),
        ],
    )
    def test_refuses_what_could_not_pass(
        self, spec: dict[str, Any], status: dict[str, Any], unplanned: bool, why: str | None
    ) -> None:
        got = drill.refuse(pair(status=status, **spec), unplanned)
        assert (got is None) if why is None else (got is not None and got.startswith(why))

    def test_the_charts_statefulset_is_the_first_label_of_the_redis_host(self) -> None:
        region_ = rp.Region.model_validate(
            {"name": "region1", "selector": {"a": "b"}, "redis": {"host": "tier0-redis-region1.tier0.svc"}}
        )
        assert drill.statefulset_of(region_) == "tier0-redis-region1"


class TestReports:
    def test_planned_figures_come_from_the_status_timestamps(self) -> None:
        before = pair(status={"lagBytes": 40})
        after = pair(status={**MOVED, "lastTransition": finished("Switchover", "region1", "region2", 4, 0.25, 0.062)})
        report = drill.planned_report(before, after, T0, T0 + timedelta(seconds=0.05), T0 + timedelta(seconds=1))
        assert report.passed and report.kind == "Planned"
        assert (report.from_region, report.to_region, report.epoch) == ("region1", "region2", 4)
        assert report.detection_seconds == 0.2  # request at 0.05 s, transition start at 0.25 s
        assert report.transition_seconds == report.outage_seconds == 0.062
        assert (report.bytes_at_risk, report.lost_bytes) == (40, 0)

    def test_planned_without_a_new_transition_fails(self) -> None:
        report = drill.planned_report(pair(), pair(), T0, T0, T0 + timedelta(seconds=120))
        assert not report.passed and report.to_region is None and report.detection_seconds is None
        assert report.message == "no transition finished (phase Healthy, active region1)"

    def test_unplanned_outage_runs_from_the_fault_to_the_flip(self) -> None:
        before = pair(status={"regions": [region("region1", "primary"), region("region2", "replica", lagBytes=7)]})
        moved = finished("Failover", "region1", "region2", 4, 2.5, 0.08, lostBytes=7, trigger="Failure")
        after = pair(status={**MOVED, "lastTransition": moved})
        report = drill.unplanned_report(before, after, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=5), True)
        assert report.passed and report.kind == "Unplanned" and report.restored
        assert report.detection_seconds == 1.5
        assert report.transition_seconds == 0.08
        assert report.outage_seconds == 1.58
        assert (report.bytes_at_risk, report.lost_bytes) == (7, 7)
        not_back = drill.unplanned_report(before, after, T0, T0, T0, restored=False)
        assert not not_back.passed and not_back.message.endswith("region1 did not rejoin as a replica")

    def test_a_switchover_for_disruption_counts_as_the_move_away(self) -> None:
        moved = finished("Switchover", "region1", "region2", 4, 0.5, 0.05, trigger="Disruption")
        report = drill.unplanned_report(pair(), pair(status={**MOVED, "lastTransition": moved}), T0, T0, T0, True)
        assert report.passed and report.transition_type == "Switchover"


class TestRecording:
    REPORT = rp.DrillReport(
        kind="Unplanned",
        passed=False,
        from_region="region1",
        started_at=T0,
        finished_at=T0,
        fault_at=T0,
        bytes_at_risk=12,
        restored=True,
        message="no failover finished",
    )

    def test_the_annotation_round_trips_through_the_status_view(self) -> None:
        raw = drill.annotation(self.REPORT)[rp.LAST_DRILL_ANNOTATION]
        assert raw is not None
        assert json.loads(raw)["from"] == "region1" and " " not in raw.split('"message"')[0]
        assert view.last_drill(pair(annotations={rp.LAST_DRILL_ANNOTATION: raw})) == self.REPORT

    def test_a_failed_drill_is_a_warning_event_on_the_pair(self) -> None:
        event = drill.event_body(pair(), self.REPORT, T0)
        assert event["involvedObject"] == {
            "apiVersion": "tier0.dev/v1alpha1",
            "kind": "RegionPair",
            "name": "pair",
            "namespace": "tier0",
            "uid": "u-1",
        }
        assert (event["reason"], event["type"], event["source"]) == (
            "DrillFailed",
            "Warning",
            {"component": "kubectl-tier0"},
        )
        assert event["message"] == (
            "Unplanned drill region1->(stayed) FAILED: 12 bytes at risk, lost 0 bytes (no failover finished)"
        )

    def test_the_report_text_names_every_figure(self) -> None:
        text = drill.format_report(self.REPORT)
        for label in (
            "detection",
            "transition time",
            "outage (operator's view)",
            "bytes at risk",
            "lost bytes",
            "restored",
        ):
            assert any(line.startswith(label) for line in text.splitlines()), label
