"""The operator's pure logic: what to do from probes (decide), the transition state machine
(next_step), the request bodies it sends (patches), leader election decisions (lease)."""

from datetime import UTC, datetime, timedelta

import pytest

from tier0_operator import decide as d
from tier0_operator.lease import LeaseRecord, build_lease, lease_decision
from tier0_operator.model import Condition, PairStatus, Probe, Transition, parse_spec
from tier0_operator.patches import (
    build_last_transition,
    build_service_patch,
    build_transition_start,
    merge_conditions,
    selector_region,
)
from tier0_operator.redisops import parse_replication
from tier0_operator.testing import pair_manifest
from tier0_operator.transition import next_step

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = parse_spec(pair_manifest("p", {"region1": 7001, "region2": 7002}, threshold=3)["spec"])
R1, R2 = SPEC.region("region1").redis, SPEC.region("region2").redis


def primary(region: str, offset: int = 100) -> Probe:
    return Probe(region, T0, reachable=True, role="primary", offset=offset)


def replica(region: str, of: int, offset: int = 100, link: bool = True) -> Probe:
    return Probe(region, T0, True, None, "replica", offset, "127.0.0.1", of, link)


def down(region: str) -> Probe:
    return Probe(region, T0, reachable=False, error="redis: connection refused")


def probes(*ps: Probe) -> dict[str, Probe]:
    return {p.region: p for p in ps}


HEALTHY = probes(primary("region1"), replica("region2", 7001))
STEADY = PairStatus(active_region="region1", requested_region="region1", epoch=1)


class TestDecide:
    def test_bootstrap_picks_the_wanted_primary(self) -> None:
        assert d.decide(SPEC, PairStatus(), HEALTHY) == d.Bootstrap("region1")

    def test_bootstrap_adopts_the_existing_primary_when_the_wanted_one_replicates(self) -> None:
        ps = probes(replica("region1", 7002), primary("region2"))
        assert d.decide(SPEC, PairStatus(), ps) == d.Bootstrap("region2")

    def test_bootstrap_waits_while_the_wanted_region_is_down(self) -> None:
        assert isinstance(d.decide(SPEC, PairStatus(), probes(down("region1"), down("region2"))), d.Nothing)

    def test_steady_pair_needs_nothing(self) -> None:
        assert d.decide(SPEC, STEADY, HEALTHY) == d.Nothing()

    def test_standby_that_is_a_primary_is_fenced(self) -> None:
        ps = probes(primary("region1"), primary("region2"))
        after_a_failover = STEADY.with_(epoch=2)
        assert d.decide(SPEC, after_a_failover, ps) == d.MakeReplica("region2", "region1", fencing=True)
        assert d.decide(SPEC, STEADY, ps) == d.MakeReplica("region2", "region1", fencing=False)

    def test_standby_replicating_from_elsewhere_is_repointed(self) -> None:
        ps = probes(primary("region1"), replica("region2", 9999))
        assert d.decide(SPEC, STEADY, ps) == d.MakeReplica("region2", "region1", fencing=False)

    def test_active_replica_without_primary_is_promoted(self) -> None:
        ps = probes(replica("region1", 7002, link=False), down("region2"))
        assert d.decide(SPEC, STEADY, ps) == d.Promote("region1")

    def test_spec_change_starts_a_switchover(self) -> None:
        spec = SPEC.model_copy(update={"active_region": "region2"})
        assert d.decide(spec, STEADY, HEALTHY) == d.StartSwitchover("region2")

    def test_switchover_waits_for_a_replication_link(self) -> None:
        spec = SPEC.model_copy(update={"active_region": "region2"})
        ps = probes(primary("region1"), replica("region2", 7001, link=False))
        assert isinstance(d.decide(spec, STEADY, ps), d.Blocked)

    def test_failover_after_threshold_failures_records_the_last_lag(self) -> None:
        st = STEADY.with_(failures={"region1": 3}, lag_bytes=42)
        ps = probes(down("region1"), replica("region2", 7001, link=False))
        assert d.decide(SPEC, st, ps) == d.StartFailover("region2", lost_bytes=42)

    def test_no_failover_below_threshold(self) -> None:
        st = STEADY.with_(failures={"region1": 2})
        assert d.decide(SPEC, st, probes(down("region1"), replica("region2", 7001))) == d.Nothing()

    def test_manual_mode_reports_instead_of_failing_over(self) -> None:
        spec = parse_spec(pair_manifest("p", {"region1": 7001, "region2": 7002}, mode="Manual")["spec"])
        st = STEADY.with_(failures={"region1": 5})
        ps = probes(down("region1"), replica("region2", 7001))
        action = d.decide(spec, st, ps)
        assert isinstance(action, d.Blocked) and action.reason == "ManualFailover"
        assert d.phase_of(spec, st, ps) == "Failed"

    def test_failover_needs_a_healthy_standby(self) -> None:
        st = STEADY.with_(failures={"region1": 3})
        assert isinstance(d.decide(SPEC, st, probes(down("region1"), down("region2"))), d.Blocked)

    def test_paused_pair_does_nothing_even_when_down(self) -> None:
        spec = SPEC.model_copy(update={"paused": True})
        st = STEADY.with_(failures={"region1": 10})
        assert d.decide(spec, st, probes(down("region1"), replica("region2", 7001))) == d.Nothing("paused")

    def test_in_flight_transition_resumes_even_when_paused(self) -> None:
        spec = SPEC.model_copy(update={"paused": True})
        st = STEADY.with_(transition=Transition("Switchover", "region1", "region2", "", 2, T0))
        assert d.decide(spec, st, HEALTHY) == d.Resume()

    def test_after_failover_spec_is_not_switched_back_until_edited(self) -> None:
        st = PairStatus(active_region="region2", requested_region="region1", epoch=2)
        ps = probes(replica("region1", 7002), primary("region2"))
        assert d.decide(SPEC, st, ps) == d.Nothing()

    def test_acknowledging_a_failover(self) -> None:
        spec = SPEC.model_copy(update={"active_region": "region2"})
        st = PairStatus(active_region="region2", requested_region="region1", epoch=2)
        ps = probes(replica("region1", 7002), primary("region2"))
        assert d.decide(spec, st, ps) == d.Acknowledge("region2")

    def test_failures_count_consecutively(self) -> None:
        f = d.count_failures({}, probes(down("region1"), primary("region2")))
        f = d.count_failures(f, probes(down("region1"), primary("region2")))
        assert f == {"region1": 2, "region2": 0}
        assert d.count_failures(f, HEALTHY) == {"region1": 0, "region2": 0}

    def test_unhealthy_health_url_counts_as_failure(self) -> None:
        p = Probe("region1", T0, reachable=True, http_ok=False, role="primary")
        assert not p.healthy

    def test_lag_is_primary_minus_replica_offset(self) -> None:
        ps = probes(primary("region1", 1000), replica("region2", 7001, 900))
        assert d.lag_bytes(SPEC, "region1", ps, 0) == 100
        assert d.lag_bytes(SPEC, "region1", probes(down("region1"), replica("region2", 7001)), 77) == 77

    def test_phases(self) -> None:
        assert d.phase_of(SPEC, STEADY, HEALTHY) == "Healthy"
        assert d.phase_of(SPEC, STEADY, probes(primary("region1"), down("region2"))) == "Degraded"
        assert d.phase_of(SPEC, PairStatus(), HEALTHY) == "Pending"
        t = Transition("Failover", "region1", "region2", "", 2, T0)
        assert d.phase_of(SPEC, STEADY.with_(transition=t), HEALTHY) == "FailingOver"

    def test_conditions_explain_a_failover_to_acknowledge(self) -> None:
        st = PairStatus(
            active_region="region2",
            requested_region="region1",
            last_transition={"type": "Failover", "to": "region2"},
        )
        conds = {c.type: c for c in d.conditions_of(SPEC, st, HEALTHY, d.Nothing())}
        assert conds["ActiveRegionMatchesSpec"].reason == "FailedOver"
        assert "spec.activeRegion: region2" in conds["ActiveRegionMatchesSpec"].message


SW = Transition("Switchover", "region1", "region2", "test", 2, T0)
FO = Transition("Failover", "region1", "region2", "test", 2, T0)


def step(t: Transition, pf: Probe, pt: Probe, paused: bool = False, timed_out: bool = False) -> str:
    return next_step(t, R1, R2, pf, pt, paused, timed_out).kind


class TestSwitchoverSteps:
    def test_pause_then_wait_then_demote_then_promote_then_route(self) -> None:
        assert step(SW, primary("region1", 100), replica("region2", 7001, 90)) == "pause"
        assert step(SW, primary("region1", 100), replica("region2", 7001, 90), paused=True) == "wait"
        assert step(SW, primary("region1", 100), replica("region2", 7001, 100), paused=True) == "demote"
        assert step(SW, replica("region1", 7002), replica("region2", 7001)) == "promote"
        assert step(SW, replica("region1", 7002), primary("region2")) == "route"

    def test_timeout_while_catching_up_rolls_back(self) -> None:
        assert step(SW, primary("region1"), replica("region2", 7001, 1), paused=True, timed_out=True) == "rollback"

    def test_resumed_after_restart_repauses(self) -> None:
        assert step(SW, primary("region1", 100), replica("region2", 7001, 100), paused=False) == "pause"

    def test_old_primary_back_as_primary_after_promotion_is_demoted_first(self) -> None:
        assert step(SW, primary("region1"), primary("region2")) == "demote"

    def test_target_vanishing_after_demotion_restores_the_old_primary(self) -> None:
        assert step(SW, replica("region1", 7002), down("region2")) == "restore"
        assert step(SW, primary("region1"), down("region2")) == "rollback"

    def test_old_primary_vanishing_finishes_as_failover_after_timeout(self) -> None:
        assert step(SW, down("region1"), replica("region2", 7001)) == "wait"
        assert step(SW, down("region1"), replica("region2", 7001), timed_out=True) == "promote"

    def test_route_when_old_primary_is_gone(self) -> None:
        assert step(SW, down("region1"), primary("region2")) == "route"

    def test_both_gone_fails_after_timeout(self) -> None:
        assert step(SW, down("region1"), down("region2")) == "wait"
        assert step(SW, down("region1"), down("region2"), timed_out=True) == "fail"


class TestFailoverSteps:
    def test_dead_primary_promote_then_route(self) -> None:
        assert step(FO, down("region1"), replica("region2", 7001, link=False)) == "promote"
        assert step(FO, down("region1"), primary("region2")) == "route"

    def test_reachable_old_primary_is_fenced_before_promotion(self) -> None:
        assert step(FO, primary("region1"), replica("region2", 7001)) == "demote"

    def test_unreachable_target_fails(self) -> None:
        assert step(FO, down("region1"), down("region2")) == "fail"


class TestPatches:
    def test_service_patch_sets_active_labels_and_drops_the_others(self) -> None:
        spec = parse_spec(
            {
                **SPEC.model_dump(by_alias=True),
                "regions": [
                    {"name": "a", "selector": {"zone": "a", "extra": "x"}, "redis": {"host": "h", "port": 1}},
                    {"name": "b", "selector": {"zone": "b"}, "redis": {"host": "h", "port": 2}},
                ],
                "activeRegion": "a",
            }
        )
        assert build_service_patch(spec, "b") == {"spec": {"selector": {"extra": None, "zone": "b"}}}
        assert build_service_patch(spec, "a") == {"spec": {"selector": {"zone": "a", "extra": "x"}}}

    def test_selector_region(self) -> None:
        assert selector_region(SPEC, {"app": "region-api", "tier0.dev/region": "region2"}) == "region2"
        assert selector_region(SPEC, {"app": "region-api"}) is None
        assert selector_region(SPEC, None) is None

    def test_transition_start_is_a_compare_and_set_on_the_epoch(self) -> None:
        ops = build_transition_start(1, SW, "SwitchingOver")
        assert ops[0] == {"op": "test", "path": "/status/epoch", "value": 1}
        assert {"op": "replace", "path": "/status/epoch", "value": 2} in ops

    def test_last_transition_has_duration_and_summary(self) -> None:
        last = build_last_transition(SW, "Succeeded", T0 + timedelta(milliseconds=250))
        assert last["durationSeconds"] == 0.25
        assert last["summary"] == "Switchover region1->region2 (0.25s)"
        assert build_last_transition(FO, "RolledBack", T0)["summary"].endswith("rolled back (0.00s)")

    def test_condition_time_moves_only_on_status_change(self) -> None:
        first = merge_conditions([], [Condition("Ready", "True", "Healthy")], T0, 1)
        same = merge_conditions(first, [Condition("Ready", "True", "Healthy")], T0 + timedelta(seconds=9), 2)
        flip = merge_conditions(first, [Condition("Ready", "False", "Degraded")], T0 + timedelta(seconds=9), 2)
        assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
        assert flip[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]


class TestLease:
    def test_decisions(self) -> None:
        fresh = LeaseRecord("other", T0, 4)
        assert lease_decision(None, "me", T0) == "acquire"
        assert lease_decision(LeaseRecord(None, None, 4), "me", T0) == "acquire"
        assert lease_decision(LeaseRecord("me", T0, 4), "me", T0) == "renew"
        assert lease_decision(fresh, "me", T0 + timedelta(seconds=3)) == "wait"
        assert lease_decision(fresh, "me", T0 + timedelta(seconds=5)) == "acquire"

    def test_taking_over_counts_a_transition(self) -> None:
        body = build_lease("l", "ns", "me", 4, LeaseRecord("other", T0, 4, transitions=3))
        assert body["spec"]["leaseTransitions"] == 4 and "acquireTime" in body["spec"]
        assert build_lease("l", "ns", "me", 4, LeaseRecord("me", T0, 4, 4))["spec"]["leaseTransitions"] == 4


class TestProbeParsing:
    def test_primary(self) -> None:
        p = parse_replication("r", {"role": "master", "master_repl_offset": 12}, T0, None)
        assert (p.role, p.offset, p.healthy) == ("primary", 12, True)

    def test_replica(self) -> None:
        info = {
            "role": "slave",
            "master_host": "h",
            "master_port": 1,
            "master_link_status": "down",
            "slave_repl_offset": 5,
        }
        p = parse_replication("r", info, T0, True)
        assert (p.role, p.offset, p.link_up, p.master_port) == ("replica", 5, False, 1)


@pytest.mark.parametrize("missing", ["service", "activeRegion", "regions"])
def test_spec_parsing_requires_fields(missing: str) -> None:
    raw = dict(pair_manifest("p", {"region1": 1, "region2": 2})["spec"])
    del raw[missing]
    with pytest.raises(ValueError):
        parse_spec(raw)


class TestStatusAndEvents:
    def test_status_body_reports_each_region(self) -> None:
        from tier0_operator.patches import build_status

        st = STEADY.with_(lag_bytes=7, failures={"region1": 0, "region2": 1})
        body = build_status(SPEC, st, HEALTHY, "Healthy", [], 3)
        assert body["activeRegion"] == "region1" and body["observedGeneration"] == 3
        regions = {r["name"]: r for r in body["regions"]}
        assert regions["region1"]["lagBytes"] == 0 and regions["region2"]["lagBytes"] == 7
        assert regions["region2"]["role"] == "replica" and regions["region2"]["consecutiveFailures"] == 1
        assert body["transition"] is None  # a merge patch with null removes a finished transition

    def test_event_is_about_the_pair(self) -> None:
        from tier0_operator.patches import build_event

        ev = build_event("ns", "pair", "uid-1", "FailoverStarted", "x" * 2000, T0, warning=True)
        assert ev["involvedObject"]["kind"] == "RegionPair" and ev["involvedObject"]["uid"] == "uid-1"
        assert ev["type"] == "Warning" and len(ev["message"]) == 1024
        assert ev["firstTimestamp"] == "2026-01-01T00:00:00Z"

    def test_transition_round_trips_through_status(self) -> None:
        st = PairStatus.from_dict({"epoch": 2, "transition": SW.to_dict(), "activeRegion": "region1"})
        assert st.transition == SW and st.epoch == 2
