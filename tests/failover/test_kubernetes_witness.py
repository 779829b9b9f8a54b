"""The Kubernetes witness (`endpoints`): which Services a pair's regions name, how their
EndpointSlices read, and what `decide` does with it: a drained or deleted active region is switched
away from before it goes (a switchover, no loss), never a failover after it has gone."""

import pytest

from tier0_contract import regionpair as rp
from tier0_operator import decide as d
from tier0_operator import endpoints
from tier0_operator import transition as tr
from tier0_operator.model import RegionSeen
from tier0_testing.pairs import HEALTHY, SPEC, STEADY, T0, down, primary, probes, replica

pytestmark = pytest.mark.unit


def ep(ready: bool | None = True, terminating: bool = False, serving: bool | None = None) -> dict[str, object]:
    conditions: dict[str, object] = {"terminating": terminating}
    if ready is not None:
        conditions["ready"] = ready
    if serving is not None:
        conditions["serving"] = serving
    return {"addresses": ["10.0.0.1"], "conditions": conditions}


@pytest.mark.parametrize(
    ("host", "service"),
    [
        ("redis-region1", "redis-region1"),
        ("redis-region1.tier0", "redis-region1"),
        ("redis-region1.tier0.svc", "redis-region1"),
        ("redis-region1.tier0.svc.cluster.local.", "redis-region1"),
        ("redis-region1.other.svc", None),  # another namespace: not this pair's to watch
        ("127.0.0.1", None),
        ("::1", None),
        ("redis.example.com", None),
    ],
)
def test_the_service_a_host_names(host: str, service: str | None) -> None:
    assert endpoints.service_of(host, "tier0") == service


def test_each_region_names_its_redis_and_its_api_service() -> None:
    spec = rp.RegionPairSpec.model_validate(
        {
            "service": "api",
            "regions": [
                {
                    "name": "a",
                    "selector": {"r": "a"},
                    "redis": {"host": "redis-a.ns.svc"},
                    "healthURL": "http://api-a.ns.svc:8000/health",
                },
                {"name": "b", "selector": {"r": "b"}, "redis": {"host": "10.1.2.3"}},
            ],
        }
    )
    assert endpoints.services_of(spec, "ns") == {"a": ("redis-a", "api-a"), "b": (None, None)}


@pytest.mark.parametrize(
    ("slices", "state"),
    [
        ([], "absent"),
        ([{"endpoints": []}], "absent"),
        ([{"endpoints": [ep()]}], "serving"),
        ([{"endpoints": [ep(ready=None)]}], "serving"),  # ready unset means ready
        ([{"endpoints": [ep(ready=False)]}], "notready"),
        ([{"endpoints": [ep(ready=False, terminating=True, serving=True)]}], "terminating"),
        # Deleted once it no longer served (or while it started): nothing to move away from.
        ([{"endpoints": [ep(ready=False, terminating=True, serving=False)]}], "notready"),
        ([{"endpoints": [ep(ready=False, terminating=True)]}], "notready"),
        # A rollout: the new pod ready beside the old one going: still serving, no disruption.
        ([{"endpoints": [ep(ready=False, terminating=True, serving=True)]}, {"endpoints": [ep()]}], "serving"),
    ],
)
def test_a_service_reads_from_its_endpoint_slices(slices: list[dict[str, object]], state: str) -> None:
    assert endpoints.state_of(slices) == state


def test_nothing_is_known_before_the_first_list() -> None:
    services = {"region1": ("r1", "a1")}
    assert endpoints.seen_of(services, {}, synced=False) == {"region1": RegionSeen("unknown", "unknown")}
    assert endpoints.seen_of(services, {}, synced=True) == {"region1": RegionSeen("absent", "absent")}


def test_a_redis_that_leaves_its_service_without_terminating_has_vanished() -> None:
    def seen(redis: str, vanished: bool = False) -> dict[str, RegionSeen]:
        return {"region1": RegionSeen(redis, "serving", redis_vanished=vanished)}  # type: ignore[arg-type]

    assert endpoints.followed(seen("serving"), seen("absent")) == seen("absent", vanished=True)
    assert endpoints.followed(seen("terminating"), seen("absent")) == seen("absent", vanished=True)
    assert endpoints.followed(seen("absent", vanished=True), seen("absent")) == seen("absent", vanished=True)
    # Back (a replacement starting), or never seen serving: not vanished.
    assert endpoints.followed(seen("absent", vanished=True), seen("notready")) == seen("notready")
    assert endpoints.followed(seen("absent"), seen("absent")) == seen("absent")
    assert endpoints.followed(seen("unknown"), seen("absent")) == seen("absent")
    assert endpoints.followed({}, seen("absent")) == seen("absent")


class TestDisruption:
    def test_a_terminating_active_redis_is_switched_away_from_first(self) -> None:
        seen = {"region1": RegionSeen(redis="terminating", api="serving")}
        action = d.decide(SPEC, STEADY, HEALTHY, T0, seen)
        assert isinstance(action, d.StartSwitchover) and action.to == "region2" and action.trigger == "Disruption"
        assert "Redis pod is terminating" in action.reason

    def test_the_last_serving_api_pod_terminating_is_a_disruption_too(self) -> None:
        action = d.decide(SPEC, STEADY, HEALTHY, T0, {"region1": RegionSeen(redis="serving", api="terminating")})
        assert isinstance(action, d.StartSwitchover) and action.trigger == "Disruption"

    def test_a_force_deleted_active_redis_that_still_answers_is_switched_away_from(self) -> None:
        seen = {"region1": RegionSeen(redis="absent", api="serving", redis_vanished=True)}
        action = d.decide(SPEC, STEADY, HEALTHY, T0, seen)
        assert isinstance(action, d.StartSwitchover) and action.to == "region2" and action.trigger == "Disruption"
        assert "deleted without grace" in action.reason
        # Crashed, then deleted: no switchover to try (it needs the old primary), the failure
        # detector decides (here still confirming).
        assert d.decide(SPEC, STEADY, probes(down("region1"), replica("region2", 7001)), T0, seen) == d.Nothing()
        # A Redis Service that never had endpoints (an ExternalName, say) is no disruption.
        assert d.decide(SPEC, STEADY, HEALTHY, T0, {"region1": RegionSeen("absent", "serving")}) == d.Nothing()

    def test_a_crash_or_a_standby_drain_is_not_a_disruption_of_the_active_region(self) -> None:
        assert d.decide(SPEC, STEADY, HEALTHY, T0, {"region1": RegionSeen("notready", "absent")}) == d.Nothing()
        assert d.decide(SPEC, STEADY, HEALTHY, T0, {"region2": RegionSeen("terminating", "terminating")}) == d.Nothing()

    def test_no_switchover_without_a_replicating_standby(self) -> None:
        seen = {"region1": RegionSeen(redis="terminating")}
        ps = probes(primary("region1"), replica("region2", 7001, link=False))
        action = d.decide(SPEC, STEADY, ps, T0, seen)
        assert isinstance(action, d.Blocked) and action.reason == "DisruptionNoStandby"
        assert isinstance(d.decide(SPEC, STEADY, probes(primary("region1"), down("region2")), T0, seen), d.Blocked)

    def test_both_regions_going_is_no_reason_to_ping_pong(self) -> None:
        seen = {"region1": RegionSeen(redis="terminating"), "region2": RegionSeen(api="terminating")}
        action = d.decide(SPEC, STEADY, HEALTHY, T0, seen)
        assert isinstance(action, d.Blocked) and action.reason == "DisruptionEverywhere"

    def test_ignore_leaves_it_to_failover(self) -> None:
        spec = SPEC.model_copy(update={"failover": SPEC.failover.model_copy(update={"on_disruption": "Ignore"})})
        assert d.decide(spec, STEADY, HEALTHY, T0, {"region1": RegionSeen(redis="terminating")}) == d.Nothing()

    def test_the_users_wish_is_kept_and_the_condition_says_how_to_acknowledge(self) -> None:
        started = tr.begin(SPEC, STEADY, "Switchover", "region2", "region1 is being taken down", 0, T0, 1, "Disruption")
        assert started.requested_region == STEADY.requested_region == "region1"
        t = started.transition
        assert t is not None and t.trigger == "Disruption"
        done = tr.finished(started, t, "Succeeded", T0)
        assert done.last_transition is not None and done.last_transition.trigger == "Disruption"
        # region2 is active now, spec still asks for region1: no switchover back on its own ...
        flipped = probes(replica("region1", 7002), primary("region2"))
        assert d.decide(SPEC, done, flipped, T0) == d.Nothing()
        # ... and the condition says why and what to do.
        (matches,) = [
            c for c in d.conditions_of(SPEC, done, flipped, d.Nothing()) if c.type == rp.ACTIVE_REGION_MATCHES_SPEC
        ]
        assert (matches.status, matches.reason) == ("False", "SwitchedOverForDisruption")
        assert "set spec.activeRegion: region2 to acknowledge" in matches.message

    def test_a_pipeline_stall_failover_says_so(self) -> None:
        started = tr.begin(SPEC, STEADY, "Failover", "region2", "stalled", 0, T0, 1, "PipelineStall")
        assert started.transition is not None and started.transition.trigger == "PipelineStall"
        assert tr.begin(SPEC, STEADY, "Failover", "region2", "down", 0, T0).transition.trigger == "Failure"  # type: ignore[union-attr]
