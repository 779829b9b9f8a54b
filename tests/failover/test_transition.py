"""The switchover / failover state machine (`transition.next_step`, one test per row of the step
table in its docstring), the deadlines, and the status a transition starts and ends with."""

from datetime import timedelta

import pytest

from tier0_contract import regionpair as rp
from tier0_operator import transition as tr
from tier0_operator.model import Probe
from tier0_testing.pairs import R1, R2, SPEC, STEADY, T0, down, primary, replica, status, transition

pytestmark = pytest.mark.unit

SW, FO = transition("Switchover"), transition("Failover")
LIMITS = tr.deadlines(SPEC, SW)


def step(t: rp.TransitionStatus, pf: Probe, pt: Probe, paused: bool = False, timed_out: bool = False) -> str:
    return full_step(t, pf, pt, paused, timed_out).kind


def full_step(t: rp.TransitionStatus, pf: Probe, pt: Probe, paused: bool = False, timed_out: bool = False) -> tr.Step:
    at = LIMITS.soft + timedelta(seconds=0.1) if timed_out else T0
    return tr.next_step(t, R1, R2, pf, pt, paused, at, LIMITS, lag_bytes=42)


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

    def test_old_primary_vanishing_finishes_as_failover_after_timeout_with_the_last_lag(self) -> None:
        assert step(SW, down("region1"), replica("region2", 7001)) == "wait"
        promote = full_step(SW, down("region1"), replica("region2", 7001), timed_out=True)
        assert (promote.kind, promote.lost_bytes) == ("promote", 42)

    def test_a_region_being_taken_down_is_not_waited_for_when_it_goes(self) -> None:
        # Switching away from a disrupted region (a forced deletion: the kubelet stops it about 2 s
        # later): once it has gone, it will not come back, so finish as a failover at once.
        away = SW.model_copy(update={"trigger": "Disruption"})
        promote = full_step(away, down("region1"), replica("region2", 7001))
        assert (promote.kind, promote.lost_bytes) == ("promote", 42)
        # While it still answers, the switchover goes on as any other.
        assert step(away, primary("region1", 100), replica("region2", 7001, 90), paused=True) == "wait"

    def test_route_when_old_primary_is_gone(self) -> None:
        assert step(SW, down("region1"), primary("region2")) == "route"

    def test_both_gone_fails_after_timeout(self) -> None:
        assert step(SW, down("region1"), down("region2")) == "wait"
        assert step(SW, down("region1"), down("region2"), timed_out=True) == "fail"

    def test_waiting_past_the_hard_deadline_fails(self) -> None:
        late = LIMITS.hard + timedelta(seconds=1)
        s = tr.next_step(SW, R1, R2, primary("region1", 100), replica("region2", 7001, 90), True, late, LIMITS, 0)
        assert s.kind == "rollback"  # past the soft deadline first
        s = tr.next_step(SW, R1, R2, down("region1"), down("region2"), False, late, LIMITS, 0)
        assert s.kind == "fail"


class TestFailoverSteps:
    def test_dead_primary_promote_then_route(self) -> None:
        assert step(FO, down("region1"), replica("region2", 7001, link=False)) == "promote"
        assert step(FO, down("region1"), primary("region2")) == "route"

    def test_reachable_old_primary_is_fenced_before_promotion(self) -> None:
        assert step(FO, primary("region1"), replica("region2", 7001)) == "demote"

    def test_unreachable_target_fails(self) -> None:
        assert step(FO, down("region1"), down("region2")) == "fail"


class TestDeadlines:
    def test_the_pause_outlives_the_soft_deadline(self) -> None:
        assert LIMITS.soft == T0 + timedelta(seconds=5) and LIMITS.hard == T0 + timedelta(seconds=25)
        assert LIMITS.pause_ms == 7000


class TestStartAndFinish:
    def test_a_switchover_acts_on_spec_and_bumps_the_epoch(self) -> None:
        wanted = SPEC.model_copy(update={"active_region": "region2"})
        st = tr.begin(wanted, STEADY, "Switchover", "region2", "why", 0, T0)
        assert (st.epoch, st.phase, st.requested_region) == (2, "SwitchingOver", "region2")
        assert st.transition is not None and (st.transition.from_region, st.transition.epoch) == ("region1", 2)

    def test_a_failover_leaves_the_request_alone(self) -> None:
        st = tr.begin(SPEC, status(requested="region1"), "Failover", "region2", "down", 7, T0)
        assert (st.phase, st.requested_region) == ("FailingOver", "region1")
        assert st.transition is not None and st.transition.lost_bytes == 7

    def test_the_outcome_decides_the_active_region(self) -> None:
        st = status(failures={"region2": 2}, transition=SW, lag_bytes=9)
        done = tr.finished(st, SW, "Succeeded", T0 + timedelta(milliseconds=250))
        assert (done.active_region, done.transition, done.lag_bytes) == ("region2", None, 0)
        assert {r.name: r.consecutive_failures for r in done.regions}["region2"] == 0
        back = tr.finished(st, SW, "RolledBack", T0, "too slow")
        assert (back.active_region, back.lag_bytes) == ("region1", 9)
        assert back.last_transition is not None and back.last_transition.reason == "too slow"

    def test_last_transition_has_duration_and_summary(self) -> None:
        last = tr.last_transition(SW, "Succeeded", T0 + timedelta(milliseconds=250))
        assert last.duration_seconds == 0.25 and last.summary == "Switchover region1->region2 (0.25s)"
        assert tr.last_transition(FO, "RolledBack", T0).summary.endswith("rolled back (0.00s)")
        assert tr.event_of_finish(FO, tr.last_transition(FO, "Succeeded", T0))[0] == "FailoverCompleted"

    def test_a_retry_carries_its_attempt_into_the_record(self) -> None:
        wanted = SPEC.model_copy(update={"active_region": "region2"})
        st = tr.begin(wanted, STEADY, "Switchover", "region2", "why", 0, T0, attempt=2)
        assert st.transition is not None and st.transition.attempt == 2
        last = tr.last_transition(st.transition, "Succeeded", T0)
        assert last.attempt == 2 and last.summary.endswith("(0.00s), attempt 2")
