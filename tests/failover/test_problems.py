"""A round that cannot act is reported, never raised (issue 17, "the operator trusts every field").

What is tested, in the pure core:
- a spec the model rejects becomes a `Problem("InvalidSpec")` naming the field, not a ValidationError;
- a status whose active region (or a transition's end) the spec no longer has — the active region
  renamed mid-flight, where `decide()` raised KeyError every round — becomes `Problem("RegionsChanged")`;
- `problem_status()` reports it as Ready=False with the reason and keeps everything else;
- a status whose regions list lacks a region, or names one the spec does not have, is read as if
  that region were new (observe, decide, report do not raise).
"""

from datetime import timedelta

import pytest

from tier0_contract import regionpair as rp
from tier0_operator import decide as d
from tier0_testing.pairs import HEALTHY, SPEC, STEADY, T0, status, transition

pytestmark = pytest.mark.unit


def renamed(first: str = "east", second: str = "west") -> rp.RegionPairSpec:
    raw = SPEC.to_json()
    raw["regions"][0]["name"], raw["regions"][1]["name"] = first, second
    raw["activeRegion"] = first
    return rp.RegionPairSpec.model_validate(raw)


class TestReadSpec:
    def test_a_valid_spec_is_read(self) -> None:
        assert d.read_spec(SPEC.to_json()) == SPEC

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"regions": []}, "spec.regions"),
            ({"failover": {"failureThreshold": "many"}}, "spec.failover.failureThreshold"),
            ({"service": None, "services": []}, "spec.services must name at least one Service"),
        ],
    )
    def test_a_spec_the_model_rejects_is_a_problem_naming_it(self, change: dict[str, object], field: str) -> None:
        problem = d.read_spec({**SPEC.to_json(), **change})
        assert isinstance(problem, d.Problem)
        assert problem.reason == "InvalidSpec"
        assert field in problem.message and problem.message.startswith("the operator cannot read spec: ")

    def test_no_spec_at_all_is_a_problem(self) -> None:
        problem = d.read_spec(None)
        assert isinstance(problem, d.Problem) and "spec.regions: Field required" in problem.message


class TestUnknownRegions:
    def test_a_consistent_pair_has_none(self) -> None:
        assert d.unknown_regions(SPEC, STEADY) is None
        assert d.unknown_regions(SPEC, rp.RegionPairStatus()) is None  # not bootstrapped yet

    def test_the_active_region_renamed_mid_flight(self) -> None:
        problem = d.unknown_regions(renamed(), STEADY)
        assert problem is not None and problem.reason == "RegionsChanged"
        assert "status.activeRegion 'region1' not in spec.regions (east, west)" in problem.message
        assert "Changing a pair's regions" in problem.message

    def test_a_transition_to_a_region_that_is_gone(self) -> None:
        moving = status(transition=transition())
        problem = d.unknown_regions(renamed("region1", "west"), moving)
        assert problem is not None
        assert "status.transition.to 'region2'" in problem.message and "activeRegion" not in problem.message

    def test_what_decide_would_do_with_it_raises_so_the_check_comes_first(self) -> None:
        # The reproduction: before the check existed, every round ended here with a KeyError.
        with pytest.raises(KeyError):
            d.decide(renamed(), STEADY, {"east": HEALTHY["region1"], "west": HEALTHY["region2"]})


class TestProblemStatus:
    def test_ready_false_with_the_reason_and_nothing_else_changed(self) -> None:
        before = d.report(SPEC, d.observe(SPEC, STEADY, HEALTHY), HEALTHY, d.Nothing(), 1, T0)
        problem = d.Problem("RegionsChanged", "status.activeRegion 'region1' not in spec.regions (east, west)")
        after = d.problem_status(before, problem, 2, T0 + timedelta(seconds=5))
        ready = after.condition(rp.READY)
        assert ready is not None and (ready.status, ready.reason) == ("False", "RegionsChanged")
        assert ready.message == problem.message
        assert ready.last_transition_time == T0 + timedelta(seconds=5) and ready.observed_generation == 2
        assert after.observed_generation == 2
        others = {c.type: c for c in after.conditions if c.type != rp.READY}
        assert others == {c.type: c for c in before.conditions if c.type != rp.READY}
        assert after.model_copy(update={"conditions": (), "observed_generation": 1}) == before.model_copy(
            update={"conditions": ()}
        )

    def test_the_time_stays_while_the_problem_stays(self) -> None:
        problem = d.Problem("InvalidSpec", "x")
        once = d.problem_status(STEADY, problem, 1, T0)
        twice = d.problem_status(once, problem, 1, T0 + timedelta(minutes=1))
        ready = twice.condition(rp.READY)
        assert ready is not None and ready.last_transition_time == T0


class TestStatusRegionsOutOfStep:
    @pytest.mark.parametrize(
        "regions",
        [(), (rp.RegionStatus(name="region1"),), (rp.RegionStatus(name="gone", consecutive_failures=9),)],
        ids=["none", "one missing", "a stranger"],
    )
    def test_observe_decide_and_report_read_a_missing_region_as_new(self, regions: tuple[rp.RegionStatus, ...]) -> None:
        st = STEADY.model_copy(update={"regions": regions})
        observed = d.observe(SPEC, st, HEALTHY)
        assert [r.name for r in observed.regions] == ["region1", "region2"]
        assert d.decide(SPEC, observed, HEALTHY, T0) == d.Nothing()
        reported = d.report(SPEC, observed, HEALTHY, d.Nothing(), 1, T0)
        assert reported.phase == "Healthy"
