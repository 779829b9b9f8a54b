"""Failover decisions without a cluster: reading a RegionPair, choosing the target, refusing what the
operator could not do (409), acknowledging an automatic failover first, and judging progress."""

from typing import Any

import pytest

from tier0_contract import regionpair as rp
from tier0_kube import client
from tier0_kube import errors as kube_errors
from tier0_services.api import errors
from tier0_services.api.switchover import PairView, operator_saw, other_region, plan, progress
from tier0_testing.api import regionpair_manifest

pytestmark = pytest.mark.unit


def pair(
    active: str | None = "region1",
    desired: str = "region1",
    phase: str | None = "Healthy",
    paused: bool = False,
    **status: Any,
) -> PairView:
    written = {"activeRegion": active, "phase": phase, "epoch": 7, **status}
    obj: dict[str, Any] = {
        "metadata": {"name": "og-field", "namespace": "ns", "resourceVersion": "42", "generation": 3},
        "spec": regionpair_manifest(active=desired)["spec"],
        # The apiserver drops null fields; a pair the operator never saw has no status at all.
        "status": {k: v for k, v in written.items() if v is not None} if active or phase else None,
    }
    if paused:
        obj["spec"]["paused"] = True
    return PairView.of(client.parse_pair(obj))


def last(to: str, outcome: rp.Outcome = "Succeeded", reason: str = "") -> dict[str, Any]:
    """A lastTransition as the operator writes it."""
    t = rp.LastTransition(
        type="Switchover",
        from_region="region2" if to == "region1" else "region1",
        to_region=to,
        reason=reason,
        outcome=outcome,
        epoch=7,
        started_at=rp.now(),
        completed_at=rp.now(),
        duration_seconds=0.1,
    )
    return t.to_json()


def test_view_reads_spec_status_and_metadata() -> None:
    view = pair(lagBytes=12, observedGeneration=3, lastTransition=last("region1"))
    assert (view.name, view.namespace, view.resource_version, view.generation) == ("og-field", "ns", "42", 3)
    assert view.regions == ("region1", "region2") and view.desired == "region1" and view.active == "region1"
    assert (view.phase, view.epoch, view.lag_bytes, view.in_transition) == ("Healthy", 7, 12, False)
    with pytest.raises(kube_errors.KubeObjectError, match="does not match its schema"):
        client.parse_pair({"metadata": {"name": "broken"}, "spec": {"regions": []}})
    assert (pair(active=None, phase=None).phase, pair(active=None, phase=None).epoch) == (None, None)


def test_simulate_targets_the_other_region_and_restore_the_first() -> None:
    assert other_region(pair()) == "region2"
    assert other_region(pair(active="region2", desired="region2")) == "region1"
    assert pair(active="region2", desired="region2").home == "region1"


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
        (
            pair(
                transition={
                    "type": "Switchover",
                    "from": "region1",
                    "to": "region2",
                    "epoch": 8,
                    "startedAt": "2026-01-01T00:00:00Z",
                }
            ),
            "already in a transition",
        ),
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
    before = pair(lastTransition=last("region1")).last_transition
    assert progress(pair(phase="SwitchingOver", lastTransition=last("region1")), "region2", before) is None
    assert progress(pair(active="region2", phase="SwitchingOver"), "region2", before) is None
    assert progress(pair(active="region2", desired="region2"), "region2", before) is True


def test_progress_fails_on_a_rollback_of_this_transition_only() -> None:
    old = last("region2", "RolledBack", "earlier")
    baseline = pair(lastTransition=old).last_transition
    assert progress(pair(lastTransition=old), "region2", baseline) is None  # not this transition
    new = last("region2", "RolledBack", "replica lagging")
    with pytest.raises(errors.UpstreamFailedError, match="RolledBack: replica lagging"):
        progress(pair(lastTransition=new), "region2", baseline)
    with pytest.raises(errors.UpstreamFailedError, match="Failed"):
        progress(pair(phase="Failed"), "region2", None)


def test_operator_saw_a_generation_or_the_requested_region() -> None:
    assert operator_saw(pair(observedGeneration=2), 3, "region2") is None
    assert operator_saw(pair(observedGeneration=3), 3, "region2") is True
    assert operator_saw(pair(requestedRegion="region2"), 3, "region2") is True
