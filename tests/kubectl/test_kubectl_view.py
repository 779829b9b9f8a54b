"""`kubectl tier0 status` and `history` without a cluster: the risks read from a pair (standby not
replicating, paused, a blocked operator, writes acknowledged alone, bytes at risk), the history's
order, the text and the -o json form."""

import json
import re
from datetime import timedelta

import pytest

from tier0_contract import regionpair as rp
from tier0_kubectl import view
from tier0_testing.kubectl import NOW, pair, region
from tier0_testing.pairs import T0

pytestmark = pytest.mark.unit


def whats(p: rp.RegionPair) -> list[str]:
    return [f"{r.severity}: {r.what}" for r in view.assess(p)]


class TestRisks:
    def test_a_healthy_pair_risks_nothing(self) -> None:
        assert view.assess(pair()) == ()
        assert view.bytes_at_risk(pair()) == 0

    def test_a_standby_that_does_not_replicate_is_critical(self) -> None:
        p = pair(status={"regions": [region("region1", "primary"), region("region2", "replica", linkUp=False)]})
        assert whats(p) == ["critical: standby region2 is not replicating (role replica, link down)"]

    def test_a_standby_that_is_down_leaves_nothing_to_fail_over_to(self) -> None:
        down = region("region2", "unknown", healthy=False, message="redis: connection refused")
        p = pair(status={"regions": [region("region1", "primary"), down]})
        assert whats(p) == ["critical: standby region2 is down: nothing to fail over to: redis: connection refused"]

    def test_bytes_at_risk_are_the_standbys_replication_lag(self) -> None:
        p = pair(
            status={
                "lagBytes": 120,
                "regions": [region("region1", "primary"), region("region2", "replica", lagBytes=512)],
            }
        )
        assert view.bytes_at_risk(p) == 512
        assert whats(p) == ["warning: 512 bytes at risk: the standby's replication lag behind the primary"]

    def test_paused_and_manual_are_warnings(self) -> None:
        p = pair(paused=True, mode="Manual")
        assert whats(p) == [
            "warning: paused: the operator probes but changes nothing (no switchover, no failover)",
            "warning: failover mode Manual: a lost active region is not failed over automatically",
        ]

    def test_a_blocked_operator_and_writes_at_risk_come_first(self) -> None:
        blocked = {"type": "Ready", "status": "False", "reason": "RegionsChanged", "message": "status names region3"}
        p = pair(
            paused=True,
            status={
                "conditions": [blocked],
                "replication": {"atRisk": True, "atRiskSince": T0.isoformat()},
            },
        )
        assert whats(p)[:2] == [
            "critical: operator blocked (RegionsChanged): status names region3",
            "critical: writes are acknowledged by the primary alone since 2026-01-01T00:00:00+00:00 "
            "(whenStandbyDown: Accept)",
        ]

    def test_a_failover_not_acknowledged_and_a_terminating_active_redis(self) -> None:
        matches = {
            "type": "ActiveRegionMatchesSpec",
            "status": "False",
            "reason": "FailedOver",
            "message": "acknowledge",
        }
        active = region("region2", "primary", redisEndpoints="terminating")
        p = pair(
            status={
                "activeRegion": "region2",
                "conditions": [matches],
                "regions": [region("region1", "replica"), active],
            }
        )
        assert whats(p) == [
            "critical: active region region2's Redis endpoints are terminating",
            "warning: spec.activeRegion region1 is not active (FailedOver): acknowledge",
        ]


class TestHistory:
    def test_newest_first_with_the_events_of_a_second_before_its_status_entries(self) -> None:
        last = {
            "type": "Switchover",
            "from": "region1",
            "to": "region2",
            "outcome": "Succeeded",
            "epoch": 3,
            "startedAt": (T0 + timedelta(seconds=60)).isoformat(),
            "completedAt": (T0 + timedelta(seconds=60, milliseconds=60)).isoformat(),
            "durationSeconds": 0.06,
            "reason": "spec.activeRegion set to region2",
        }
        p = pair(status={"lastTransition": last})

        def event(reason: str, seconds: int, kind: str = "Normal") -> view.PairEvent:
            stamp = (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
            return view.PairEvent.model_validate(
                {
                    "reason": reason,
                    "type": kind,
                    "message": reason,
                    "lastTimestamp": stamp,
                    "source": {"component": "tier0-operator"},
                }
            )

        events = [event("Bootstrapped", 1), event("SwitchoverCompleted", 60), event("DrillPassed", 120)]
        entries = view.history(p, events)
        assert [e.reason for e in entries] == [
            "DrillPassed",
            "SwitchoverCompleted",
            "SwitchoverSucceeded",
            "Bootstrapped",
        ]
        assert entries[2].message.startswith("Switchover region1->region2 Succeeded in 0.060s")
        text = view.format_history(entries, NOW)
        assert text.splitlines()[0].split() == ["AGE", "TYPE", "REASON", "FROM", "MESSAGE"]
        assert text.splitlines()[1].startswith("8m ")

    def test_events_of_the_same_second_newest_revision_first(self) -> None:
        def event(reason: str, revision: str) -> view.PairEvent:
            meta = {"name": f"pair.{revision}", "resourceVersion": revision}
            return view.PairEvent.model_validate(
                {"reason": reason, "lastTimestamp": "2026-01-01T00:00:01Z", "metadata": meta}
            )

        entries = view.history(pair(), [event("Bootstrapped", "99"), event("ReplicationConfigured", "100")])
        assert [e.reason for e in entries] == ["ReplicationConfigured", "Bootstrapped"]

    def test_an_event_with_only_an_event_time_and_a_count(self) -> None:
        e = view.PairEvent.model_validate({"reason": "Fenced", "eventTime": "2026-01-01T00:00:05.123456Z", "count": 3})
        (entry,) = view.history(pair(), [e])
        assert entry.at == T0 + timedelta(seconds=5, microseconds=123456)
        assert entry.message.endswith("(x3)")


class TestText:
    def test_status_text_names_roles_health_lag_endpoints_and_risks(self) -> None:
        p = pair(
            status={"regions": [region("region1", "primary"), region("region2", "replica", linkUp=False, lagBytes=9)]}
        )
        text = view.format_status(view.status_view(p), NOW)
        lines = text.splitlines()
        assert lines[0] == (
            "RegionPair tier0/pair: phase Healthy, active region1 (spec.activeRegion region1), epoch 3, mode Automatic"
        )
        columns = ["REGION", "ROLE", "HEALTH", "LINK", "LAG BYTES", "REDIS ENDPOINTS", "API ENDPOINTS", "PIPELINE"]
        assert re.split(r"\s{2,}", lines[2]) == [*columns, "PROBED"]
        assert lines[3].split() == ["region1", "*", "primary", "healthy", "-", "0", "serving", "serving", "-", "0s"]
        assert lines[4].split() == ["region2", "replica", "healthy", "down", "9", "serving", "serving", "-", "0s"]
        assert "Bytes at risk: 9" in lines
        assert "  [critical] standby region2 is not replicating (role replica, link down)" in lines

    def test_json_view_is_camel_case_and_carries_the_last_drill(self) -> None:
        report = rp.DrillReport(
            kind="Planned", passed=True, from_region="region1", to_region="region2", started_at=T0, finished_at=T0
        )
        p = pair(annotations={rp.LAST_DRILL_ANNOTATION: json.dumps(report.to_json())})
        out = view.status_view(p).model_dump(mode="json", by_alias=True)
        assert out["activeRegion"] == "region1" and out["bytesAtRisk"] == 0 and out["atRisk"] == []
        assert out["lastDrill"]["from"] == "region1" and out["lastDrill"]["to"] == "region2"
        assert "Last drill: Planned region1->region2 passed" in view.format_status(view.status_view(p), NOW)

    def test_an_annotation_that_is_not_a_report_is_ignored(self) -> None:
        assert view.last_drill(pair(annotations={rp.LAST_DRILL_ANNOTATION: "{not json"})) is None

    def test_ages_read_like_kubectls(self) -> None:
        assert [view.age(NOW - timedelta(seconds=s), NOW) for s in (5, 119, 120, 7200, 3 * 86400)] == [
            "5s",
            "119s",
            "2m",
            "2h",
            "3d",
        ]
        assert view.age(None, NOW) == "-"
