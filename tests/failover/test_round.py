"""One round in one call (`rounds.plan`): from spec, status, probes and what Kubernetes shows, the
status observed, the witnesses, the action, what carrying it out writes and posts, the write guard
and the report. Cases: a healthy pair in its steady state, a planned switchover, a failover on the
fast path, a paused pair, a bootstrap, an acknowledgement, a transition resumed, and the status
written once a transition finished (`rounds.settled`)."""

from dataclasses import replace
from datetime import timedelta

import pytest

from tier0_contract import regionpair as rp
from tier0_operator import decide, rounds
from tier0_operator import transition as tr
from tier0_operator.model import Probe, RegionSeen
from tier0_testing.pairs import HEALTHY, SPEC, STEADY, T0, down, primary, probes, replica, spec, status, transition

pytestmark = pytest.mark.unit

GEN = 7
# The active primary holding what the guard wants (epoch, min-replicas-*, ping period): nothing to write.
GUARDED = primary("region1", epoch=1, min_replicas_to_write=1, min_replicas_max_lag=2, ping_period=1)
STEADY_PROBES = probes(GUARDED, replica("region2", 7001))
SERVING = {"region1": RegionSeen(redis="serving"), "region2": RegionSeen(redis="serving")}


def plan(sp: rp.RegionPairSpec, st: rp.RegionPairStatus, ps: dict[str, Probe], seconds: float = 0.0) -> rounds.Round:
    return rounds.plan(sp, st, ps, SERVING, T0 + timedelta(seconds=seconds), GEN)


def reasons(r: rounds.Round) -> list[str]:
    return [e.reason for e in r.events]


class TestSteadyState:
    def test_a_healthy_pair_needs_nothing(self) -> None:
        r = plan(SPEC, STEADY, STEADY_PROBES)
        assert r.action == decide.Nothing()
        assert (r.guard, r.started, r.events, r.runs_transition) == (None, None, (), False)
        assert r.done == r.observed
        assert r.detection == decide.Detection() and r.interval == SPEC.failover.probe_interval_seconds

    def test_the_report_says_healthy_and_carries_the_probes(self) -> None:
        r = plan(SPEC, STEADY, STEADY_PROBES)
        assert (r.report.phase, r.report.observed_generation, r.report.active_region) == ("Healthy", GEN, "region1")
        ready = r.report.condition(rp.READY)
        assert ready is not None and ready.status == "True" and ready.last_transition_time == T0
        assert [(x.name, x.role, x.healthy) for x in r.report.regions] == [
            ("region1", "primary", True),
            ("region2", "replica", True),
        ]
        assert r.report.replication == rp.ReplicationStatus(min_replicas_to_write=1)

    def test_a_primary_lacking_the_epoch_and_guard_gets_them(self) -> None:
        r = plan(SPEC, STEADY, HEALTHY)
        assert r.action == decide.Nothing()
        assert r.guard == decide.Guard("region1", epoch=1, min_replicas_to_write=1, min_replicas_max_lag=2)


class TestPlannedSwitchover:
    WANTED = SPEC.model_copy(update={"active_region": "region2"})

    def test_starts_with_a_compare_and_set_status_and_an_event(self) -> None:
        r = plan(self.WANTED, STEADY, STEADY_PROBES, seconds=1)
        assert r.action == decide.StartSwitchover("region2") and r.runs_transition
        assert r.started is not None and r.started.transition is not None
        t = r.started.transition
        assert (t.type, t.from_region, t.to_region, t.epoch, t.trigger) == (
            "Switchover",
            "region1",
            "region2",
            2,
            "Requested",
        )
        assert t.started_at == T0 + timedelta(seconds=1) and t.reason == "spec.activeRegion set to region2"
        assert (r.started.epoch, r.started.phase, r.started.requested_region) == (2, "SwitchingOver", "region2")
        assert r.events == (
            decide.Event(
                "SwitchoverStarted", "Switchover region1 -> region2 (epoch 2): spec.activeRegion set to region2"
            ),
        )

    def test_a_retry_after_a_rollback_says_its_attempt(self) -> None:
        t = transition("Switchover").model_copy(update={"attempt": 1})
        last = tr.last_transition(t, "RolledBack", T0, "replica lagging")
        st = status(requested="region2", epoch=2, last_transition=last)
        r = plan(self.WANTED, st, STEADY_PROBES, seconds=2 * SPEC.failover.switchover_timeout_seconds)
        assert r.action == decide.StartSwitchover("region2", attempt=2)
        assert r.started is not None and r.started.transition is not None
        assert (r.started.transition.attempt, r.started.transition.epoch) == (2, 3)
        assert (
            r.events[0].message
            == "Switchover region1 -> region2 (epoch 3): spec.activeRegion set to region2 (attempt 2)"
        )

    def test_what_is_written_when_it_cannot_start_is_the_observed_pair(self) -> None:
        r = plan(self.WANTED, STEADY, STEADY_PROBES)
        assert r.done == r.observed and r.report.transition is None
        matches = r.report.condition(rp.ACTIVE_REGION_MATCHES_SPEC)
        assert matches is not None and (matches.status, matches.reason) == ("False", "SwitchoverPending")

    def test_a_blocked_switchover_is_reported_not_started(self) -> None:
        ps = probes(GUARDED, replica("region2", 7001, link=False))
        r = plan(self.WANTED, STEADY, ps)
        assert isinstance(r.action, decide.Blocked) and r.started is None and r.events == ()
        matches = r.report.condition(rp.ACTIVE_REGION_MATCHES_SPEC)
        assert matches is not None and matches.reason == "StandbyNotReplicating"


class TestFastPathFailover:
    """region1 failed one probe at T0 and fails again; region2's link to it dropped: two witnesses."""

    def failing(self) -> rp.RegionPairStatus:
        st = status(failures={"region1": 1})
        regions = tuple(r.model_copy(update={"failing_since": T0}) if r.name == "region1" else r for r in st.regions)
        return st.model_copy(update={"regions": regions})

    LOST_LINK = replace(replica("region2", 7001, link=False), link_down_seconds=0)

    def test_fails_over_once_confirmed_with_the_witnesses(self) -> None:
        r = plan(SPEC, self.failing(), probes(down("region1"), self.LOST_LINK), SPEC.failover.fast_confirm_seconds)
        assert r.detection.witnesses == ("Probes", "StandbyLink") and r.detection.corroborated
        assert r.interval == SPEC.failover.fast_probe_interval_seconds
        assert isinstance(r.action, decide.StartFailover) and r.runs_transition
        assert r.observed.regions[0].consecutive_failures == 2
        assert r.started is not None and r.started.transition is not None
        t = r.started.transition
        assert (t.type, t.to_region, t.epoch, t.witnesses, t.detection_seconds) == (
            "Failover",
            "region2",
            2,
            ("Probes", "StandbyLink"),
            SPEC.failover.fast_confirm_seconds,
        )
        assert r.started.requested_region == "region1"  # the user's wish is unchanged by a failover
        (event,) = r.events
        assert (event.reason, event.warning) == ("FailoverStarted", True)
        assert event.message.startswith("Failover region1 -> region2 (epoch 2): region1 failed 2 consecutive probes")
        assert event.message.endswith(
            f"(witnesses: Probes, StandbyLink; detected in {SPEC.failover.fast_confirm_seconds:.2f} s)"
        )
        assert r.guard is None  # the active primary does not answer

    def test_before_the_confirmation_it_probes_fast_and_waits(self) -> None:
        r = plan(SPEC, self.failing(), probes(down("region1"), self.LOST_LINK), 0.2)
        assert r.detection.corroborated and r.interval == SPEC.failover.fast_probe_interval_seconds
        assert r.action == decide.Nothing() and r.started is None
        assert r.report.phase == "Degraded"


class TestPaused:
    PAUSED = spec(threshold=3, paused=True)

    def test_a_paused_pair_is_probed_and_reported_but_nothing_is_done(self) -> None:
        st = status(failures={"region1": 3})
        r = plan(self.PAUSED, st, probes(down("region1"), replica("region2", 7001)), 5)
        assert r.action == decide.Nothing("paused") and r.started is None and r.events == ()
        assert r.guard is None and r.done == r.observed
        assert r.report.phase == "Failed"  # down past the threshold and nothing will be done
        paused = r.report.condition(rp.PAUSED)
        assert paused is not None and (paused.status, paused.reason) == ("True", "Maintenance")

    def test_a_paused_pair_writes_no_guard(self) -> None:
        assert plan(self.PAUSED, STEADY, HEALTHY).guard is None


class TestBootstrap:
    def test_the_wanted_primary_becomes_active(self) -> None:
        r = plan(SPEC, rp.RegionPairStatus(), HEALTHY)
        assert r.action == decide.Bootstrap("region1") and not r.runs_transition
        assert r.observed.active_region is None
        assert (r.done.active_region, r.done.requested_region, r.done.epoch) == ("region1", "region1", 1)
        assert r.events == (decide.Event("Bootstrapped", "region1 is the active region"),)
        assert r.guard is None  # no active region yet: the next round writes it
        assert (r.report.active_region, r.report.phase) == ("region1", "Healthy")

    def test_an_existing_topology_is_adopted(self) -> None:
        r = plan(SPEC, rp.RegionPairStatus(), probes(replica("region1", 7002), primary("region2")))
        assert r.action == decide.Bootstrap("region2")
        assert (r.done.active_region, r.done.requested_region) == ("region2", None)  # a switchover follows

    def test_waits_while_the_wanted_region_is_down(self) -> None:
        r = plan(SPEC, rp.RegionPairStatus(), probes(down("region1"), down("region2")))
        assert isinstance(r.action, decide.Nothing) and r.events == ()
        assert r.report.phase == "Pending"


class TestOtherActions:
    def test_fencing_posts_a_warning_once_carried_out(self) -> None:
        r = plan(SPEC, status(epoch=2), probes(GUARDED, primary("region2")))
        assert r.action == decide.MakeReplica("region2", "region1", fencing=True)
        assert r.events == (
            decide.Event("Fenced", "region2 was a writable primary; made it a replica of region1", True),
        )
        assert r.done == r.observed

    def test_a_standby_set_up_is_reported(self) -> None:
        r = plan(SPEC, STEADY, probes(GUARDED, replica("region2", 9999)))
        assert reasons(r) == ["ReplicationConfigured"]

    def test_acknowledging_a_failover_records_the_request(self) -> None:
        wanted = SPEC.model_copy(update={"active_region": "region2"})
        st = status(active="region2", requested="region1", epoch=2)
        r = plan(wanted, st, probes(replica("region1", 7002), primary("region2", epoch=2)))
        assert r.action == decide.Acknowledge("region2") and r.events == ()
        assert r.done.requested_region == "region2" and r.report.requested_region == "region2"

    def test_a_transition_in_status_is_resumed(self) -> None:
        st = status(epoch=2, transition=transition())
        r = plan(SPEC, st, STEADY_PROBES)
        assert r.action == decide.Resume() and r.runs_transition
        assert (r.started, r.events, r.guard) == (None, (), None)
        assert r.report.phase == "SwitchingOver"


class TestSettled:
    def test_after_a_transition_the_report_is_what_fresh_probes_say(self) -> None:
        after = status(active="region2", requested="region2", epoch=2)
        ps = probes(replica("region1", 7002), primary("region2", epoch=2))
        settled = rounds.settled(SPEC.model_copy(update={"active_region": "region2"}), after, ps, SERVING, T0, GEN)
        assert (settled.phase, settled.observed_generation, settled.epoch) == ("Healthy", GEN, 2)
        assert [x.role for x in settled.regions] == ["replica", "primary"]
