"""Failover decisions without a cluster: reading a RegionPair, choosing the target, refusing what the
operator could not do (409), acknowledging an automatic failover first, and judging progress."""

from typing import Any

import pytest

from tier0_services.api import errors
from tier0_services.api.switchover import PairView, home_region, operator_saw, other_region, plan, progress


def pair(
    active: str | None = "region1",
    desired: str = "region1",
    phase: str | None = "Healthy",
    paused: bool = False,
    **status: Any,
) -> PairView:
    obj: dict[str, Any] = {
        "metadata": {"name": "og-field", "namespace": "ns", "resourceVersion": "42", "generation": 3},
        "spec": {"activeRegion": desired, "regions": [{"name": "region1"}, {"name": "region2"}]},
        "status": {"activeRegion": active, "phase": phase, "epoch": 7, **status},
    }
    if paused:
        obj["spec"]["paused"] = True
    return PairView.from_object(obj)


def test_view_reads_spec_status_and_metadata() -> None:
    view = pair(lagBytes=12, observedGeneration=3, lastTransition={"type": "Switchover", "to": "region1"})
    assert (view.name, view.namespace, view.resource_version, view.generation) == ("og-field", "ns", "42", 3)
    assert view.regions == ("region1", "region2") and view.desired == "region1" and view.active == "region1"
    assert (view.phase, view.epoch, view.lag_bytes, view.in_transition) == ("Healthy", 7, 12, False)
    assert PairView.from_object({}).regions == ()


def test_simulate_targets_the_other_region_and_restore_the_first() -> None:
    assert other_region(pair()) == "region2"
    assert other_region(pair(active="region2", desired="region2")) == "region1"
    assert home_region(pair(active="region2", desired="region2")) == "region1"


def test_plain_switchover_patches_once() -> None:
    steps = plan(pair(), "region2")
    assert (steps.source, steps.target, steps.acknowledge, steps.switch) == ("region1", "region2", None, True)


def test_after_an_automatic_failover_the_spec_is_acknowledged_first() -> None:
    # The operator failed over to region2 and left spec on region1: asking for region1 again would
    # change nothing, so the spec is first set to region2, then to region1.
    steps = plan(pair(active="region2", desired="region1"), "region1")
    assert (steps.source, steps.acknowledge, steps.switch) == ("region2", "region2", True)


def test_asking_for_the_active_region_only_acknowledges() -> None:
    assert plan(pair(), "region1").switch is False
    assert plan(pair(), "region1").acknowledge is None
    steps = plan(pair(active="region2", desired="region1", phase="Degraded"), "region2")
    assert (steps.switch, steps.acknowledge) == (False, "region2")


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        (pair(phase="SwitchingOver"), "already in a transition"),
        (pair(transition={"to": "region2"}), "already in a transition"),
        (pair(phase="Degraded"), "Degraded"),
        (pair(phase="Failed"), "Failed"),
        (pair(active=None, phase=None), "no status yet"),
        (pair(paused=True), "paused"),
    ],
)
def test_refuses_what_the_operator_could_not_do(view: PairView, reason: str) -> None:
    with pytest.raises(errors.ConflictError, match=reason):
        plan(view, "region2")


def test_unknown_region_is_not_found() -> None:
    with pytest.raises(errors.NotFoundError, match="region9"):
        plan(pair(), "region9")


def test_progress_waits_for_active_and_healthy() -> None:
    before = {"to": "region1", "outcome": "Succeeded"}
    assert progress(pair(phase="SwitchingOver", lastTransition=before), "region2", before) is None
    assert progress(pair(active="region2", phase="SwitchingOver"), "region2", before) is None
    assert progress(pair(active="region2", desired="region2"), "region2", before) is True


def test_progress_fails_on_a_rollback_of_this_transition_only() -> None:
    old = {"to": "region2", "outcome": "RolledBack", "reason": "earlier"}
    assert progress(pair(lastTransition=old), "region2", old) is None  # not this transition
    new = {"to": "region2", "outcome": "RolledBack", "reason": "replica lagging"}
    with pytest.raises(errors.UpstreamFailedError, match="RolledBack: replica lagging"):
        progress(pair(lastTransition=new), "region2", old)
    with pytest.raises(errors.UpstreamFailedError, match="Failed"):
        progress(pair(phase="Failed"), "region2", None)


def test_operator_saw_a_generation_or_the_requested_region() -> None:
    assert operator_saw(pair(observedGeneration=2), 3, "region2") is None
    assert operator_saw(pair(observedGeneration=3), 3, "region2") is True
    assert operator_saw(pair(requestedRegion="region2"), 3, "region2") is True
