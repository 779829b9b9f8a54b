"""Issue 9's rules in the operator's pure core: the pair's epoch in the primary, the write guard
(`min-replicas-to-write` by spec.replication, at-risk reporting) and pipeline health from the
heartbeats (phase Degraded with the reason, spec.pipeline.onStall)."""

from datetime import timedelta

import pytest

from tier0_contract import regionpair as rp
from tier0_operator import decide as d
from tier0_operator.model import Probe
from tier0_testing.pairs import HEALTHY, SPEC, STEADY, T0, down, heartbeat, primary, probes, replica, spec, status

pytestmark = pytest.mark.unit

NOW = 1_000.0  # the primary's Redis clock (TIME) in these tests


def report(s: rp.RegionPairSpec, st: rp.RegionPairStatus, ps: dict[str, Probe], at: float = 0) -> rp.RegionPairStatus:
    return d.report(s, d.observe(s, st, ps), ps, d.Nothing(), 1, T0 + timedelta(seconds=at))


class TestEpoch:
    def test_written_when_the_primary_lacks_it(self) -> None:
        g = d.guard(
            SPEC,
            STEADY,
            probes(primary("region1", min_replicas_to_write=1, min_replicas_max_lag=2), replica("region2", 7001)),
            T0,
        )
        assert g == d.Guard("region1", epoch=1, min_replicas_to_write=None, min_replicas_max_lag=2)

    def test_nothing_to_do_when_everything_is_in_place(self) -> None:
        ps = probes(
            primary("region1", epoch=1, min_replicas_to_write=1, min_replicas_max_lag=2), replica("region2", 7001)
        )
        assert d.guard(SPEC, STEADY, ps, T0) is None

    def test_never_inside_a_transition_or_paused(self) -> None:
        from tier0_testing.pairs import transition

        assert d.guard(SPEC, status(transition=transition()), HEALTHY, T0) is None
        assert d.guard(SPEC.model_copy(update={"paused": True}), STEADY, HEALTHY, T0) is None


class TestWriteGuard:
    def test_one_replica_required_while_the_standby_replicates(self) -> None:
        assert d.wanted_min_replicas(SPEC, STEADY, HEALTHY, T0) == 1
        g = d.guard(
            SPEC, STEADY, probes(primary("region1", epoch=1, min_replicas_to_write=0), replica("region2", 7001)), T0
        )
        assert g is not None and g.min_replicas_to_write == 1

    def test_accept_lowers_it_after_the_detection_budget_and_reports_at_risk(self) -> None:
        standby_down = probes(
            primary("region1", epoch=1, min_replicas_to_write=1, min_replicas_max_lag=2), down("region2")
        )
        st = report(SPEC, STEADY, standby_down, at=0)
        assert st.replication is not None and not st.replication.at_risk and st.replication.min_replicas_to_write == 1
        st = report(SPEC, st, standby_down, at=1.4)  # 3 probes x 0.5 s not reached yet
        assert st.replication is not None and st.replication.min_replicas_to_write == 1
        st = report(SPEC, st, standby_down, at=1.5)
        assert st.replication is not None and st.replication.at_risk and st.replication.min_replicas_to_write == 0
        risk = st.condition(rp.WRITES_AT_RISK)
        assert risk is not None and (risk.status, risk.reason) == ("True", "StandbyDown")
        assert [e.reason for e in d.events(STEADY, st)] == ["WritesAtRisk"]
        g = d.guard(SPEC, st, standby_down, T0 + timedelta(seconds=1.5))
        assert g is not None and g.min_replicas_to_write == 0
        # Back in sync: protected again.
        back = report(SPEC, st, HEALTHY, at=3)
        assert back.replication is not None and not back.replication.at_risk
        assert back.replication.min_replicas_to_write == 1
        assert [e.reason for e in d.events(st, back)] == ["WritesProtected"]

    def test_a_returning_standby_not_yet_in_sync_keeps_the_decision(self) -> None:
        standby_down = probes(primary("region1"), down("region2"))
        st = report(SPEC, report(SPEC, STEADY, standby_down, at=0), standby_down, at=2)
        catching_up = probes(primary("region1"), replica("region2", 7001, link=False))
        st = report(SPEC, st, catching_up, at=2.5)
        assert st.replication is not None and st.replication.min_replicas_to_write == 0

    def test_hold_never_lowers_it(self) -> None:
        hold = spec(replication={"whenStandbyDown": "Hold"})
        standby_down = probes(primary("region1"), down("region2"))
        st = report(hold, report(hold, STEADY, standby_down, at=0), standby_down, at=60)
        assert st.replication is not None and st.replication.min_replicas_to_write == 1
        held = st.condition(rp.WRITES_AT_RISK)
        assert held is not None and (held.status, held.reason) == ("False", "WritesHeld")

    def test_a_promoted_primary_gets_the_guard_its_standby_allows(self) -> None:
        assert d.promotion_min_replicas(SPEC, standby_reachable=True) == 1
        assert d.promotion_min_replicas(SPEC, standby_reachable=False) == 0
        assert d.promotion_min_replicas(spec(replication={"whenStandbyDown": "Hold"}), standby_reachable=False) == 1


def with_heartbeats(*hbs: object, region: str = "region1") -> dict[str, Probe]:
    p = primary(region, epoch=1, min_replicas_to_write=1, min_replicas_max_lag=2, heartbeats=hbs, server_time=NOW)
    return probes(p, replica("region2", 7001))


class TestPipeline:
    def test_healthy_workers_keep_the_pair_healthy(self) -> None:
        ps = with_heartbeats(
            heartbeat("ingest", "region1", NOW - 1, NOW - 1), heartbeat("activity", "region1", NOW, NOW)
        )
        st = report(SPEC, STEADY, ps)
        r1 = st.region("region1")
        assert st.phase == "Healthy" and r1 is not None and r1.pipeline is not None and r1.pipeline.state == "ok"
        ok = st.condition(rp.PIPELINE_HEALTHY)
        assert ok is not None and (ok.status, ok.reason) == ("True", "PipelineOk")

    def test_no_workers_at_all_is_reported_but_not_degraded(self) -> None:
        st = report(SPEC, STEADY, with_heartbeats())
        r1 = st.region("region1")
        assert st.phase == "Healthy" and r1 is not None and r1.pipeline is not None and r1.pipeline.state == "absent"

    def test_a_dead_ingest_worker_of_the_active_region_degrades_the_pair_with_the_reason(self) -> None:
        ps = with_heartbeats(
            heartbeat("ingest", "region1", NOW - 30, NOW - 30), heartbeat("activity", "region1", NOW, NOW)
        )
        st = report(SPEC, STEADY, ps)
        assert st.phase == "Degraded"
        bad = st.condition(rp.PIPELINE_HEALTHY)
        assert bad is not None and (bad.status, bad.reason) == ("False", "PipelineDead")
        assert "no heartbeat for 30 s" in bad.message
        ready = st.condition(rp.READY)
        assert ready is not None and "pipeline dead" in ready.message
        assert [e.reason for e in d.events(report(SPEC, STEADY, with_heartbeats()), st)] == ["PipelineUnhealthy"]

    def test_a_stalled_worker_holding_messages(self) -> None:
        ps = with_heartbeats(heartbeat("ingest", "region1", NOW, NOW - 20, pending=50))
        st = report(SPEC, STEADY, ps)
        r1 = st.region("region1")
        assert r1 is not None and r1.pipeline is not None and r1.pipeline.state == "stalled" and st.phase == "Degraded"

    def test_the_standby_region_is_judged_from_the_same_heartbeats(self) -> None:
        ps = with_heartbeats(heartbeat("ingest", "region1", NOW, NOW), heartbeat("ingest", "region2", NOW - 30, None))
        st = report(SPEC, STEADY, ps)
        r2 = st.region("region2")
        assert st.phase == "Healthy" and r2 is not None and r2.pipeline is not None and r2.pipeline.state == "dead"

    def test_unreadable_heartbeats_are_unknown(self) -> None:
        st = report(SPEC, STEADY, probes(down("region1"), replica("region2", 7001)))
        r1 = st.region("region1")
        assert r1 is not None and r1.pipeline is not None and r1.pipeline.state == "unknown"
        cond = st.condition(rp.PIPELINE_HEALTHY)
        assert cond is not None and cond.status == "Unknown"

    def test_stall_after_comes_from_the_spec(self) -> None:
        patient = spec(pipeline={"stallAfterSeconds": 60})
        ps = with_heartbeats(heartbeat("ingest", "region1", NOW - 30, NOW - 30))
        assert report(patient, STEADY, ps).phase == "Healthy"

    def test_on_stall_report_does_not_fail_over_but_failover_does(self) -> None:
        dead = with_heartbeats(heartbeat("ingest", "region1", NOW - 30, NOW - 30))
        st = d.observe(SPEC, STEADY, dead)
        assert d.decide(SPEC, st, dead) == d.Nothing()
        eager = spec(pipeline={"onStall": "Failover"})
        st = d.observe(eager, STEADY, dead)
        action = d.decide(eager, st, dead)
        assert isinstance(action, d.StartFailover) and action.to == "region2" and "pipeline is dead" in action.reason

    def test_no_pipeline_failover_to_a_standby_whose_pipeline_is_no_better(self) -> None:
        eager = spec(pipeline={"onStall": "Failover"})
        both = with_heartbeats(
            heartbeat("ingest", "region1", NOW - 30, NOW - 30), heartbeat("ingest", "region2", NOW - 30, None)
        )
        action = d.decide(eager, d.observe(eager, STEADY, both), both)
        assert isinstance(action, d.Blocked) and action.reason == "StandbyPipelineUnhealthy"


class TestRoutesThatFeedAPipeline:
    """`decide.held_routes`: a Service with `feeds` moves to a region only while a worker of that
    component there says it is connected to its broker (a broker with no subscriber acknowledges
    devices' messages and drops them)."""

    ROUTES = [{"name": "api"}, {"name": "mqtt", "selector": {"app": "emqx"}, "feeds": "ingest"}]

    def test_held_while_the_regions_ingest_worker_is_not_connected(self) -> None:
        s = spec(services=self.ROUTES)
        hbs = (heartbeat("ingest", "region1", NOW, NOW), heartbeat("ingest", "region2", NOW, None, connected=False))
        held = d.held_routes(s, "region2", hbs, NOW)
        assert list(held) == ["mqtt"]
        assert "no ingest worker of region2 is connected to its broker" in held["mqtt"]
        assert d.held_routes(s, "region1", hbs, NOW) == {}

    def test_held_when_its_connected_heartbeat_is_too_old_or_missing(self) -> None:
        s = spec(services=self.ROUTES)
        stale = (heartbeat("ingest", "region1", NOW, NOW), heartbeat("ingest", "region2", NOW - 60, NOW - 60))
        assert "no heartbeat for over 10 s" in d.held_routes(s, "region2", stale, NOW)["mqtt"]
        only_region1 = (heartbeat("ingest", "region1", NOW, NOW),)
        assert "has reported" in d.held_routes(s, "region2", only_region1, NOW)["mqtt"]

    def test_one_connected_worker_is_enough(self) -> None:
        s = spec(services=self.ROUTES)
        down_one = heartbeat("ingest", "region2", NOW, None, connected=False)
        up_one = heartbeat("ingest", "region2", NOW - 1, NOW - 1).model_copy(update={"worker": "ingest-region2-1"})
        assert d.held_routes(s, "region2", (down_one, up_one), NOW) == {}

    def test_nothing_held_without_workers_unreadable_heartbeats_or_feeds(self) -> None:
        s = spec(services=self.ROUTES)
        assert d.held_routes(s, "region2", (), NOW) == {}  # a pair run without tier0's workers
        hbs = (heartbeat("ingest", "region2", NOW, None, connected=False),)
        assert d.held_routes(s, "region2", hbs, None) == {}  # the heartbeats could not be read
        plain = spec(services=[{"name": "api"}, {"name": "mqtt", "selector": {"app": "emqx"}}])
        assert d.held_routes(plain, "region2", hbs, NOW) == {}
        activity = (heartbeat("activity", "region2", NOW, None, connected=False),)
        assert d.held_routes(s, "region2", activity, NOW) == {}  # another component says nothing
