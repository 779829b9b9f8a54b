"""Triangulated failure detection (`decide.detect`, the fast path of `decide.decide`): the operator
fails over after `fastConfirmSeconds` only when its failing probes are corroborated by a witness
independent of them (the standby's replication link lost or silent, Kubernetes showing the active
Redis pod not ready or gone); its probes alone keep `failureThreshold` x `probeIntervalSeconds`.
Also: the witnesses recorded in the transition, lastTransition, the condition and the Events, the
streak's start (`failingSince`), the standby's INFO fields and the ping period the guard sets."""

from dataclasses import replace
from datetime import timedelta

import pytest

from tier0_contract import regionpair as rp
from tier0_operator import decide as d
from tier0_operator import transition as tr
from tier0_operator.model import Probe, RegionSeen
from tier0_operator.redisops import parse_replication, with_extras
from tier0_testing.pairs import HEALTHY, SPEC, T0, down, primary, probes, replica, spec, status

pytestmark = pytest.mark.unit

CONFIRM = SPEC.failover.fast_confirm_seconds  # 0.25 by default
LATER = T0 + timedelta(seconds=CONFIRM)


def failing(n: int, since: float = 0.0) -> rp.RegionPairStatus:
    """region1 active, its last `n` probes failed, the first of them at T0 + `since` seconds."""
    st = status(failures={"region1": n})
    regions = tuple(
        r.model_copy(update={"failing_since": T0 + timedelta(seconds=since)}) if r.name == "region1" else r
        for r in st.regions
    )
    return st.model_copy(update={"regions": regions})


def lost_link(seconds: int = 0) -> Probe:
    """The standby, replicating from region1, whose link to it dropped `seconds` ago."""
    return replace(replica("region2", 7001, link=False), link_down_seconds=seconds)


def silent_link(seconds: int) -> Probe:
    return replace(replica("region2", 7001), last_io_seconds=seconds)


LINK_UP = replace(replica("region2", 7001), last_io_seconds=0)
KUBE_GONE = {"region1": RegionSeen(redis="absent"), "region2": RegionSeen(redis="serving")}


class TestWitnesses:
    def test_an_answering_active_region_has_no_witnesses(self) -> None:
        assert d.detect(SPEC, failing(0), HEALTHY, LATER) == d.Detection()

    def test_failed_probes_alone_are_not_corroborated(self) -> None:
        det = d.detect(SPEC, failing(2), probes(down("region1"), LINK_UP), LATER)
        assert det.witnesses == ("Probes",) and not det.corroborated
        assert det.failing_for == CONFIRM
        assert det.said == (f"region1 failed 2 consecutive probes in {CONFIRM:.2f} s",)

    def test_the_standby_that_lost_its_link_is_a_witness(self) -> None:
        det = d.detect(SPEC, failing(1), probes(down("region1"), lost_link(0)), T0)
        assert det.witnesses == ("Probes", "StandbyLink") and det.corroborated
        assert "region2's replication link to region1 is down (0 s)" in det.said

    @pytest.mark.parametrize(
        ("standby", "why"),
        [
            (replica("region2", 7001, link=False), "never connected: a fresh REPLICAOF, nothing lost"),
            (replace(lost_link(0), syncing=True), "a (re)sync it started: the primary answered it"),
            (replace(lost_link(0), master_port=9999), "replicates from elsewhere"),
            (down("region2"), "unreachable standby says nothing"),
            (primary("region2"), "a standby that is a primary (restarted) says nothing"),
            (silent_link(2), "2 s: within the ping period's slack"),
        ],
    )
    def test_what_the_standby_does_not_witness(self, standby: Probe, why: str) -> None:
        assert d.detect(SPEC, failing(3), probes(down("region1"), standby), LATER).witnesses == ("Probes",), why

    def test_a_silent_link_past_link_silence_seconds_is_a_witness(self) -> None:
        det = d.detect(SPEC, failing(1), probes(down("region1"), silent_link(3)), T0)
        assert det.witnesses == ("Probes", "StandbyLink")
        assert "region2 has heard nothing from region1 for 3 s" in det.said
        patient = spec(threshold=3).model_copy(
            update={"failover": SPEC.failover.model_copy(update={"link_silence_seconds": 5})}
        )
        assert not d.detect(patient, failing(1), probes(down("region1"), silent_link(4)), T0).corroborated

    @pytest.mark.parametrize("state", ["notready", "absent", "terminating"])
    def test_kubernetes_is_a_witness(self, state: rp.EndpointState) -> None:
        seen = {"region1": RegionSeen(redis=state)}
        det = d.detect(SPEC, failing(1), probes(down("region1"), LINK_UP), T0, seen)
        assert det.witnesses == ("Probes", "Kubernetes")
        assert f"Kubernetes shows its Redis {state} (region1)" in det.said

    @pytest.mark.parametrize("state", ["serving", "unknown"])
    def test_kubernetes_serving_or_not_knowing_is_no_witness(self, state: rp.EndpointState) -> None:
        seen = {"region1": RegionSeen(redis=state)}
        assert not d.detect(SPEC, failing(1), probes(down("region1"), LINK_UP), T0, seen).corroborated

    def test_both_witnesses(self) -> None:
        det = d.detect(SPEC, failing(1), probes(down("region1"), lost_link(1)), T0, KUBE_GONE)
        assert det.witnesses == ("Probes", "StandbyLink", "Kubernetes")

    def test_nothing_is_detected_inside_a_transition(self) -> None:
        t = rp.TransitionStatus(type="Failover", from_region="region1", to_region="region2", epoch=2, started_at=T0)
        st = failing(3).model_copy(update={"transition": t})
        assert d.detect(SPEC, st, probes(down("region1"), lost_link()), LATER) == d.Detection()


class TestFastPath:
    def test_fails_over_once_confirmed_and_records_the_witnesses(self) -> None:
        action = d.decide(SPEC, failing(2), probes(down("region1"), lost_link(0)), LATER)
        assert isinstance(action, d.StartFailover)
        assert (action.to, action.trigger, action.witnesses) == ("region2", "Failure", ("Probes", "StandbyLink"))
        assert action.detection_seconds == CONFIRM
        assert "fast path" in action.reason and "replication link to region1 is down" in action.reason

    def test_not_before_the_confirmation(self) -> None:
        just_before = T0 + timedelta(seconds=CONFIRM - 0.01)
        assert d.decide(SPEC, failing(2), probes(down("region1"), lost_link(0)), just_before) == d.Nothing()

    def test_one_failed_probe_is_never_enough(self) -> None:
        late = T0 + timedelta(seconds=10)
        assert d.decide(SPEC, failing(1), probes(down("region1"), lost_link(0)), late) == d.Nothing()

    def test_a_flaky_probe_with_a_healthy_standby_link_never_fast_fails(self) -> None:
        threshold = SPEC.failover.failure_threshold
        for n in range(1, threshold):
            for after in (0.0, CONFIRM, 10.0):
                at = T0 + timedelta(seconds=after)
                assert d.decide(SPEC, failing(n), probes(down("region1"), LINK_UP), at, KUBE_SERVING) == d.Nothing()

    def test_the_slow_path_still_fails_over_at_the_threshold_and_says_so(self) -> None:
        action = d.decide(SPEC, failing(3), probes(down("region1"), LINK_UP), T0 + timedelta(seconds=3))
        assert isinstance(action, d.StartFailover) and action.witnesses == ("Probes",)
        assert action.detection_seconds == 3.0 and "fast path" not in action.reason

    def test_probing_fast_does_not_shorten_the_slow_budget(self) -> None:
        """With the fast path out of reach (fastConfirmSeconds past the budget), the failures the fast
        cadence counts still need the slow budget's span: (threshold - 1) x interval, less 0.1 of one."""
        failover = SPEC.failover.model_copy(update={"fast_confirm_seconds": 60.0})
        patient = SPEC.model_copy(update={"failover": failover})
        ps = probes(down("region1"), lost_link(1))
        span = 1.9 * SPEC.failover.probe_interval_seconds  # threshold 3
        assert d.decide(patient, failing(12), ps, T0 + timedelta(seconds=span - 0.01)) == d.Nothing()
        action = d.decide(patient, failing(12), ps, T0 + timedelta(seconds=span))
        assert isinstance(action, d.StartFailover) and action.witnesses == ("Probes", "StandbyLink")
        assert "fast path" not in action.reason
        assert isinstance(d.decide(patient, failing(3), ps), d.StartFailover)  # no clock: the count

    def test_kubernetes_alone_corroborates(self) -> None:
        action = d.decide(SPEC, failing(3 - 1), probes(down("region1"), LINK_UP), LATER, KUBE_GONE)
        assert isinstance(action, d.StartFailover) and action.witnesses == ("Probes", "Kubernetes")

    def test_manual_mode_blocks_and_names_the_witnesses(self) -> None:
        manual = spec(mode="Manual")
        action = d.decide(manual, failing(2), probes(down("region1"), lost_link(0)), LATER)
        assert isinstance(action, d.Blocked) and action.reason == "ManualFailover"
        assert "witnesses: Probes, StandbyLink" in action.message

    def test_probes_fast_only_while_corroborated(self) -> None:
        corroborated = d.detect(SPEC, failing(1), probes(down("region1"), lost_link(0)), T0)
        alone = d.detect(SPEC, failing(1), probes(down("region1"), LINK_UP), T0)
        assert d.next_interval(SPEC, corroborated) == SPEC.failover.fast_probe_interval_seconds == 0.1
        assert d.next_interval(SPEC, alone) == SPEC.failover.probe_interval_seconds

    def test_the_active_probe_waits_no_longer_than_the_confirmation(self) -> None:
        st = failing(2, since=0.0)
        corroborated = d.detect(SPEC, st, probes(down("region1"), lost_link(0)), T0)
        at = T0 + timedelta(seconds=0.1)
        assert d.confirmation_left(SPEC, st, corroborated, at) == pytest.approx(CONFIRM - 0.1)
        assert d.confirmation_left(SPEC, st, corroborated, LATER + timedelta(seconds=1)) == pytest.approx(-1.0)
        # Off the fast path (no witness agrees), the probe keeps its own bound.
        alone = d.detect(SPEC, st, probes(down("region1"), LINK_UP), T0)
        assert d.confirmation_left(SPEC, st, alone, at) is None
        assert d.confirmation_left(SPEC, status(), d.Detection(), at) is None


KUBE_SERVING = {"region1": RegionSeen(redis="serving"), "region2": RegionSeen(redis="serving")}


class TestRecorded:
    def started(self) -> rp.RegionPairStatus:
        action = d.decide(SPEC, failing(2), probes(down("region1"), lost_link(0)), LATER)
        assert isinstance(action, d.StartFailover)
        return tr.begin(
            SPEC,
            failing(2),
            "Failover",
            action.to,
            action.reason,
            0,
            LATER,
            trigger=action.trigger,
            witnesses=action.witnesses,
            detection_seconds=action.detection_seconds,
        )

    def test_in_the_transition_and_last_transition(self) -> None:
        st = self.started()
        assert st.transition is not None
        assert st.transition.to_json()["witnesses"] == ["Probes", "StandbyLink"]
        assert st.transition.detection_seconds == CONFIRM
        done = tr.finished(st, st.transition, "Succeeded", LATER + timedelta(seconds=0.1))
        assert done.last_transition is not None
        assert done.last_transition.witnesses == ("Probes", "StandbyLink")
        assert done.last_transition.to_json()["detectionSeconds"] == CONFIRM

    def test_in_the_event_and_the_condition(self) -> None:
        st = self.started()
        assert st.transition is not None
        done = tr.finished(st, st.transition, "Succeeded", LATER)
        assert done.last_transition is not None
        _, message, warning = tr.event_of_finish(st.transition, done.last_transition)
        assert f"(witnesses: Probes, StandbyLink; detected in {CONFIRM:.2f} s)" in message and warning
        ps = probes(replica("region1", 7002), primary("region2"))
        conds = {c.type: c for c in d.conditions_of(SPEC, done, ps, d.Nothing())}
        cond = conds[rp.ACTIVE_REGION_MATCHES_SPEC]
        assert cond.reason == "FailedOver"
        assert f"witnesses: Probes, StandbyLink; detected in {CONFIRM:.2f} s" in cond.message


class TestObserved:
    def test_failing_since_is_the_first_failure_of_the_streak(self) -> None:
        first = replace(down("region1"), at=T0)
        st = d.observe(SPEC, status(), probes(first, LINK_UP))
        r1 = st.region("region1")
        assert r1 is not None and (r1.consecutive_failures, r1.failing_since) == (1, T0)
        again = d.observe(SPEC, st, probes(replace(down("region1"), at=T0 + timedelta(seconds=1)), LINK_UP))
        r1 = again.region("region1")
        assert r1 is not None and (r1.consecutive_failures, r1.failing_since) == (2, T0)
        healed = d.observe(SPEC, again, HEALTHY)
        r1 = healed.region("region1")
        assert r1 is not None and (r1.consecutive_failures, r1.failing_since) == (0, None)

    def test_the_standbys_info_fields(self) -> None:
        base = {"role": "slave", "master_host": "h", "master_port": 1, "slave_repl_offset": 5}
        up = parse_replication("r", {**base, "master_link_status": "up", "master_last_io_seconds_ago": 4}, T0, None)
        assert (up.link_up, up.last_io_seconds, up.link_down_seconds) == (True, 4, None)
        lost = {**base, "master_link_status": "down", "master_link_down_since_seconds": 2, "master_sync_in_progress": 0}
        p = parse_replication("r", lost, T0, None)
        assert (p.link_up, p.last_io_seconds, p.link_down_seconds, p.syncing) == (False, None, 2, False)
        fresh = {**base, "master_link_status": "down", "master_link_down_since_seconds": -1}
        assert parse_replication("r", fresh, T0, None).link_down_seconds is None
        syncing = {**lost, "master_sync_in_progress": 1}
        assert parse_replication("r", syncing, T0, None).syncing


class TestPingPeriod:
    def test_the_guard_makes_the_primary_ping_every_second(self) -> None:
        guarded = {"min-replicas-to-write": "1", "min-replicas-max-lag": "2"}
        p = with_extras(primary("region1", epoch=1), "1", guarded, {}, (1, 0), {"repl-ping-replica-period": "10"})
        assert p.ping_period == 10
        ps = probes(p, replica("region2", 7001))
        g = d.guard(SPEC, status(), ps, T0)
        assert g is not None and g.ping_period == d.REPL_PING_PERIOD == 1 and g.epoch is None
        done = probes(replace(p, ping_period=1), replica("region2", 7001))
        assert d.guard(SPEC, status(), done, T0) is None
