"""What the operator does from spec + status + probes (`decide.decide`), how it folds probes into
status (`observe`), the phase and conditions it reports, and the request bodies it sends."""

from datetime import timedelta

import pytest

from tier0_contract import regionpair as rp
from tier0_operator import decide as d
from tier0_operator import patches
from tier0_operator import transition as tr
from tier0_operator.model import Probe
from tier0_operator.redisops import parse_replication, with_extras
from tier0_testing.operator import pair_manifest
from tier0_testing.pairs import HEALTHY, SPEC, STEADY, T0, down, primary, probes, replica, spec, status, transition

pytestmark = pytest.mark.unit


class TestBootstrap:
    def test_picks_the_wanted_primary(self) -> None:
        assert d.decide(SPEC, rp.RegionPairStatus(), HEALTHY) == d.Bootstrap("region1")

    def test_adopts_the_existing_primary_when_the_wanted_one_replicates(self) -> None:
        ps = probes(replica("region1", 7002), primary("region2"))
        assert d.decide(SPEC, rp.RegionPairStatus(), ps) == d.Bootstrap("region2")

    def test_waits_while_the_wanted_region_is_down(self) -> None:
        assert isinstance(d.decide(SPEC, rp.RegionPairStatus(), probes(down("region1"), down("region2"))), d.Nothing)

    def test_records_the_request_only_when_it_names_the_active_region(self) -> None:
        mine = d.bootstrapped(SPEC, rp.RegionPairStatus(), "region1")
        assert (mine.active_region, mine.requested_region, mine.epoch) == ("region1", "region1", 1)
        adopted = d.bootstrapped(SPEC, rp.RegionPairStatus(), "region2")
        assert adopted.requested_region is None  # a switchover to spec.activeRegion follows


class TestSteadyState:
    def test_steady_pair_needs_nothing(self) -> None:
        assert d.decide(SPEC, STEADY, HEALTHY) == d.Nothing()

    def test_standby_that_is_a_primary_is_fenced(self) -> None:
        ps = probes(primary("region1"), primary("region2"))
        after_a_failover = status(epoch=2)
        assert d.decide(SPEC, after_a_failover, ps) == d.MakeReplica("region2", "region1", fencing=True)
        assert d.decide(SPEC, STEADY, ps) == d.MakeReplica("region2", "region1", fencing=False)

    def test_standby_replicating_from_elsewhere_is_repointed(self) -> None:
        ps = probes(primary("region1"), replica("region2", 9999))
        assert d.decide(SPEC, STEADY, ps) == d.MakeReplica("region2", "region1", fencing=False)

    def test_active_replica_without_primary_is_promoted(self) -> None:
        ps = probes(replica("region1", 7002, link=False), down("region2"))
        assert d.decide(SPEC, STEADY, ps) == d.Promote("region1")


class TestSwitchoverRequests:
    def test_spec_change_starts_a_switchover(self) -> None:
        wanted = SPEC.model_copy(update={"active_region": "region2"})
        assert d.decide(wanted, STEADY, HEALTHY) == d.StartSwitchover("region2")

    def test_switchover_waits_for_a_replication_link(self) -> None:
        wanted = SPEC.model_copy(update={"active_region": "region2"})
        ps = probes(primary("region1"), replica("region2", 7001, link=False))
        assert isinstance(d.decide(wanted, STEADY, ps), d.Blocked)

    def test_after_failover_spec_is_not_switched_back_until_edited(self) -> None:
        st = status(active="region2", requested="region1", epoch=2)
        assert d.decide(SPEC, st, probes(replica("region1", 7002), primary("region2"))) == d.Nothing()

    def test_acknowledging_a_failover(self) -> None:
        wanted = SPEC.model_copy(update={"active_region": "region2"})
        st = status(active="region2", requested="region1", epoch=2)
        assert d.decide(wanted, st, probes(replica("region1", 7002), primary("region2"))) == d.Acknowledge("region2")


class TestRolledBackSwitchoverRetry:
    """spec.activeRegion still names the region a rolled-back switchover went for: it is tried
    again, after a backoff that doubles per attempt."""

    WANTED = SPEC.model_copy(update={"active_region": "region2"})

    @staticmethod
    def rolled_back(attempt: int) -> rp.RegionPairStatus:
        t = transition("Switchover").model_copy(update={"attempt": attempt})
        last = tr.last_transition(t, "RolledBack", T0, "replica lagging")
        return status(requested="region2", epoch=2, last_transition=last)

    def test_retried_after_the_backoff_only(self) -> None:
        st = self.rolled_back(attempt=1)
        base = 2 * SPEC.failover.switchover_timeout_seconds  # 10 s at the default 5 s timeout
        assert d.decide(self.WANTED, st, HEALTHY, T0 + timedelta(seconds=base - 0.1)) == d.Nothing()
        assert d.decide(self.WANTED, st, HEALTHY) == d.Nothing()  # no clock, no retry
        again = d.decide(self.WANTED, st, HEALTHY, T0 + timedelta(seconds=base))
        assert again == d.StartSwitchover("region2", attempt=2)

    def test_the_backoff_doubles_and_is_capped(self) -> None:
        st = self.rolled_back(attempt=3)
        assert d.switchover_retry_at(self.WANTED, st) == T0 + timedelta(seconds=40)
        assert d.switchover_retry_at(self.WANTED, self.rolled_back(attempt=30)) == T0 + timedelta(seconds=300)

    def test_not_retried_once_the_spec_names_another_region_or_it_succeeded(self) -> None:
        st = self.rolled_back(attempt=1)
        later = T0 + timedelta(hours=1)
        assert d.switchover_retry_at(SPEC, st) is None
        assert d.decide(SPEC, st, HEALTHY, later) == d.Acknowledge("region1")
        done = st.model_copy(update={"active_region": "region2"})
        assert d.switchover_retry_at(self.WANTED, done) is None

    def test_the_condition_says_when_it_retries(self) -> None:
        st = self.rolled_back(attempt=1)
        conds = {c.type: c for c in d.conditions_of(self.WANTED, st, HEALTHY, d.Nothing())}
        cond = conds[rp.ACTIVE_REGION_MATCHES_SPEC]
        assert cond.reason == "SwitchoverRolledBack"
        assert "retrying at 2026-01-01T00:00:10+00:00 (attempt 2)" in cond.message


class TestFailover:
    def test_after_threshold_failures_records_the_last_lag_and_why(self) -> None:
        st = status(failures={"region1": 3}, lag_bytes=42)
        ps = probes(down("region1"), replica("region2", 7001, link=False))
        want = d.StartFailover("region2", 42, "region1 failed 3 consecutive probes", witnesses=("Probes",))
        assert d.decide(SPEC, st, ps) == want

    def test_no_failover_below_threshold(self) -> None:
        st = status(failures={"region1": 2})
        assert d.decide(SPEC, st, probes(down("region1"), replica("region2", 7001))) == d.Nothing()

    def test_manual_mode_reports_instead_of_failing_over(self) -> None:
        manual = spec(mode="Manual")
        st = status(failures={"region1": 5})
        ps = probes(down("region1"), replica("region2", 7001))
        action = d.decide(manual, st, ps)
        assert isinstance(action, d.Blocked) and action.reason == "ManualFailover"
        assert d.phase_of(manual, st, ps) == "Failed"

    def test_needs_a_healthy_standby(self) -> None:
        st = status(failures={"region1": 3})
        assert isinstance(d.decide(SPEC, st, probes(down("region1"), down("region2"))), d.Blocked)

    def test_paused_pair_does_nothing_even_when_down(self) -> None:
        paused = SPEC.model_copy(update={"paused": True})
        st = status(failures={"region1": 10})
        assert d.decide(paused, st, probes(down("region1"), replica("region2", 7001))) == d.Nothing("paused")

    def test_in_flight_transition_resumes_even_when_paused(self) -> None:
        paused = SPEC.model_copy(update={"paused": True})
        assert d.decide(paused, status(transition=transition()), HEALTHY) == d.Resume()


class TestObserve:
    def test_failures_count_consecutively_and_reset(self) -> None:
        st = d.observe(SPEC, STEADY, probes(down("region1"), primary("region2")))
        st = d.observe(SPEC, st, probes(down("region1"), primary("region2")))
        assert (d.failures(st, "region1"), d.failures(st, "region2")) == (2, 0)
        st = d.observe(SPEC, st, HEALTHY)
        assert d.failures(st, "region1") == 0

    def test_unhealthy_health_url_counts_as_failure(self) -> None:
        assert not Probe("region1", T0, reachable=True, http_ok=False, role="primary").healthy

    def test_lag_is_primary_minus_replica_offset_and_kept_when_unmeasurable(self) -> None:
        ps = probes(primary("region1", 1000), replica("region2", 7001, 900))
        assert d.lag_bytes(SPEC, "region1", ps, 0) == 100
        assert d.lag_bytes(SPEC, "region1", probes(down("region1"), replica("region2", 7001)), 77) == 77
        st = d.observe(SPEC, STEADY, ps)
        lags = {r.name: r.lag_bytes for r in st.regions}
        assert st.lag_bytes == 100 and lags == {"region1": 0, "region2": 100}


class TestReport:
    def test_phases(self) -> None:
        assert d.phase_of(SPEC, STEADY, HEALTHY) == "Healthy"
        assert d.phase_of(SPEC, STEADY, probes(primary("region1"), down("region2"))) == "Degraded"
        assert d.phase_of(SPEC, rp.RegionPairStatus(), HEALTHY) == "Pending"
        assert d.phase_of(SPEC, status(transition=transition("Failover")), HEALTHY) == "FailingOver"

    def test_conditions_explain_a_failover_to_acknowledge(self) -> None:
        last = tr.last_transition(transition("Failover"), "Succeeded", T0)
        st = status(active="region2", requested="region1", last_transition=last)
        conds = {c.type: c for c in d.conditions_of(SPEC, st, HEALTHY, d.Nothing())}
        assert conds[rp.ACTIVE_REGION_MATCHES_SPEC].reason == "FailedOver"
        assert "spec.activeRegion: region2" in conds[rp.ACTIVE_REGION_MATCHES_SPEC].message

    def test_condition_time_moves_only_on_status_change(self) -> None:
        ready = rp.Condition(type="Ready", status="True", reason="Healthy")
        first = d.merge_conditions((), [ready], T0, 1)
        same = d.merge_conditions(first, [ready], T0 + timedelta(seconds=9), 2)
        flip = d.merge_conditions(first, [ready.model_copy(update={"status": "False"})], T0 + timedelta(seconds=9), 2)
        assert same[0].last_transition_time == T0 and same[0].observed_generation == 2
        assert flip[0].last_transition_time == T0 + timedelta(seconds=9)

    def test_report_sets_phase_generation_and_every_condition(self) -> None:
        st = d.report(SPEC, d.observe(SPEC, STEADY, HEALTHY), HEALTHY, d.Nothing(), 7, T0)
        assert (st.phase, st.observed_generation) == ("Healthy", 7)
        assert {c.type for c in st.conditions} == set(rp.CONDITION_TYPES)


class TestPatches:
    def test_service_patch_sets_the_active_selector_only_on_a_service_this_pair_owns(self) -> None:
        raw = {
            **SPEC.to_json(),
            "regions": [
                {"name": "a", "selector": {"zone": "a", "extra": "x"}, "redis": {"host": "h", "port": 1}},
                {"name": "b", "selector": {"zone": "b"}, "redis": {"host": "h", "port": 2}},
            ],
            "activeRegion": "a",
        }
        two = rp.RegionPairSpec.model_validate(raw)
        (api,) = two.routes
        owner = {"op": "test", "path": "/metadata/annotations/tier0.dev~1selector-owner", "value": "og"}
        assert patches.build_service_patch(two, "b", api, "og") == [
            owner,
            {"op": "add", "path": "/spec/selector", "value": {"zone": "b"}},
        ]
        assert patches.build_service_patch(two, "a", api, "og")[1]["value"] == {"zone": "a", "extra": "x"}

    def test_ownership_is_the_pair_name_in_the_annotation(self) -> None:
        assert patches.owned_by({rp.SELECTOR_OWNER_ANNOTATION: "og"}, "og")
        assert not patches.owned_by({rp.SELECTOR_OWNER_ANNOTATION: "other"}, "og")
        assert not patches.owned_by({}, "og") and not patches.owned_by(None, "og")

    def test_a_service_keeps_its_own_labels_over_the_regions(self) -> None:
        """The global broker Service selects the active region's broker pods: its component wins
        over the component in the region's selector (which names the API pods)."""
        mqtt = rp.ServiceRoute(name="mqtt", selector={"app": "emqx"})
        assert patches.build_service_patch(SPEC, "region2", mqtt, "og")[1]["value"] == {
            "app": "emqx",
            "tier0.dev/region": "region2",
        }
        assert patches.selector_region(SPEC, {"app": "emqx", "tier0.dev/region": "region1"}, mqtt) == "region1"
        assert patches.selector_region(SPEC, {"app": "region-api", "tier0.dev/region": "region1"}, mqtt) is None

    def test_selector_region(self) -> None:
        (api,) = SPEC.routes
        assert patches.selector_region(SPEC, {"app": "region-api", "tier0.dev/region": "region2"}, api) == "region2"
        assert patches.selector_region(SPEC, {"app": "region-api"}, api) is None
        assert patches.selector_region(SPEC, None, api) is None

    def test_services_come_in_their_order_and_the_deprecated_fields_still_read(self) -> None:
        legacy = rp.RegionPairSpec.model_validate(
            {**SPEC.to_json(), "services": [], "service": "api", "additionalServices": ["extra"]}
        )
        assert [r.name for r in legacy.routes] == ["api", "extra"] and all(not r.selector for r in legacy.routes)
        new = rp.RegionPairSpec.model_validate(
            {**SPEC.to_json(), "service": None, "services": [{"name": "api"}, {"name": "mqtt", "selector": {"c": "m"}}]}
        )
        assert [(r.name, r.selector) for r in new.routes] == [("api", {}), ("mqtt", {"c": "m"})]

    def test_status_cas_tests_the_old_epoch_then_writes_the_transition_start(self) -> None:
        ops = patches.build_status_cas(1, status(epoch=2, transition=transition()))
        assert ops[0] == {"op": "test", "path": "/status/epoch", "value": 1}
        written = {op["path"]: op["value"] for op in ops[1:]}
        assert written["/status/epoch"] == 2 and written["/status/transition"]["from"] == "region1"
        assert set(written) == {"/status/epoch", "/status/phase", "/status/transition", "/status/requestedRegion"}

    def test_status_patch_nulls_a_finished_transition(self) -> None:
        body = patches.build_status_patch(STEADY)["status"]
        assert body["transition"] is None and body["activeRegion"] == "region1"

    def test_event_is_about_the_pair(self) -> None:
        ev = patches.build_event("ns", "pair", "uid-1", "FailoverStarted", "x" * 2000, T0, warning=True)
        assert ev["involvedObject"]["kind"] == "RegionPair" and ev["involvedObject"]["uid"] == "uid-1"
        assert ev["type"] == "Warning" and len(ev["message"]) == 1024
        assert ev["firstTimestamp"] == "2026-01-01T00:00:00Z"


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

    def test_extras_epoch_guard_heartbeats_and_clock(self) -> None:
        hb = '{"component": "ingest", "worker": "w", "region": "r", "at": 10.0}'
        p = with_extras(
            primary("r"),
            "4",
            {"min-replicas-to-write": "1", "min-replicas-max-lag": "2"},
            {"ingest/w": hb, "junk": "not json"},
            (10, 500000),
        )
        assert (p.epoch, p.min_replicas_to_write, p.min_replicas_max_lag, p.server_time) == (4, 1, 2, 10.5)
        assert [h.worker for h in p.heartbeats] == ["w"]
        assert with_extras(primary("r"), None, {}, {}, (1, 0)).epoch is None


def test_without_active_region_the_first_region_is_wanted() -> None:
    raw = dict(pair_manifest("p", {"region2": 2, "region1": 1})["spec"])
    del raw["activeRegion"]
    assert rp.RegionPairSpec.model_validate(raw).active_region == "region2"


@pytest.mark.parametrize("missing", ["service", "regions"])
def test_spec_parsing_requires_fields(missing: str) -> None:
    raw = dict(pair_manifest("p", {"region1": 1, "region2": 2})["spec"])
    del raw[missing]
    with pytest.raises(ValueError):
        rp.RegionPairSpec.model_validate(raw)


class TestReplicationEndpoint:
    """A Redis the operator reaches at one address and the other region replicates from at another
    (`replicationHost`/`replicationPort`): "replicates from the active region" means the latter."""

    SPLIT = SPEC.model_copy(
        update={
            "regions": tuple(
                r.model_copy(update={"redis": r.redis.model_copy(update={"replication_port": r.redis.port + 100})})
                for r in SPEC.regions
            )
        }
    )

    def test_the_replication_address_defaults_to_the_operators(self) -> None:
        r1 = SPEC.region("region1").redis
        assert r1.replication_endpoint == ("127.0.0.1", 7001)
        assert self.SPLIT.region("region1").redis.replication_endpoint == ("127.0.0.1", 7101)
        parsed = rp.RedisEndpoint.model_validate({"host": "a", "replicationHost": "b", "replicationPort": 1})
        assert parsed.replication_endpoint == ("b", 1)

    def test_a_replica_of_the_operators_address_is_re_pointed(self) -> None:
        assert d.decide(self.SPLIT, STEADY, HEALTHY) == d.MakeReplica("region2", "region1", fencing=False)
        split_healthy = probes(primary("region1"), replica("region2", 7101))
        assert d.decide(self.SPLIT, STEADY, split_healthy) == d.Nothing()
