"""Leader election: the decision, and that no replica trusts another machine's clock — the Lease
is judged by when *this* replica saw the record change, on its own monotonic clock (client-go's
rule), so a holder whose wall clock is 10 s ahead of or behind ours changes nothing."""

from datetime import datetime, timedelta
from typing import Any

import pytest

from tier0_kube import errors as kube_errors
from tier0_operator import lease
from tier0_operator.lease import LeaseRecord, build_lease, lease_decision
from tier0_testing.pairs import T0

pytestmark = pytest.mark.unit


def test_decisions() -> None:
    other = LeaseRecord("other", "t1", 4)
    assert lease_decision(None, "me", 0.0, 100.0) == "acquire"
    assert lease_decision(LeaseRecord(None, None, 4), "me", 0.0, 100.0) == "acquire"
    assert lease_decision(LeaseRecord("me", "t", 4), "me", 100.0, 100.0) == "renew"
    assert lease_decision(other, "me", observed_at=100.0, mono_now=103.0) == "wait"
    assert lease_decision(other, "me", observed_at=100.0, mono_now=104.5) == "acquire"


def test_a_changed_record_restarts_the_wait() -> None:
    a, b = LeaseRecord("other", "t1", 4), LeaseRecord("other", "t2", 4)
    assert lease.observe(a, 100.0, a, 103.0) == 100.0
    assert lease.observe(a, 100.0, b, 103.0) == 103.0


def test_taking_over_counts_a_transition() -> None:
    body = build_lease("l", "ns", "me", 4, LeaseRecord("other", "t", 4, transitions=3), T0)
    assert body["spec"]["leaseTransitions"] == 4 and "acquireTime" in body["spec"]
    assert build_lease("l", "ns", "me", 4, LeaseRecord("me", "t", 4, 4), T0)["spec"]["leaseTransitions"] == 4


class FakeLeases:
    """An in-memory Lease endpoint with resourceVersion checks (enough for the Elector's calls)."""

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.version = 0

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None if self.body is None else {**self.body, "metadata": {"resourceVersion": str(self.version)}}

    async def put_lease(self, namespace: str, name: str, body: dict[str, Any], create: bool) -> None:
        if (create and self.body is not None) or (
            not create and body["metadata"].get("resourceVersion") != str(self.version)
        ):
            raise kube_errors.from_status("lease ns/l", 409, "conflict")
        self.body, self.version = body, self.version + 1


class Clock:
    def __init__(self, skew: float) -> None:
        self.mono, self.skew = 1000.0, skew

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.mono + self.skew)


@pytest.mark.parametrize("skew", [-10.0, 10.0], ids=["holder 10 s behind", "holder 10 s ahead"])
async def test_clock_skew_of_the_holder_changes_nothing(skew: float) -> None:
    store, holder_clock, my_clock = FakeLeases(), Clock(skew), Clock(0.0)
    holder = lease.Elector(store, "l", "ns", "holder", 4, monotonic=holder_clock.monotonic, wall=holder_clock.wall)  # type: ignore[arg-type]
    me = lease.Elector(store, "l", "ns", "me", 4, monotonic=my_clock.monotonic, wall=my_clock.wall)  # type: ignore[arg-type]
    await holder.try_once()
    assert holder.is_leader()
    # The holder renews every second for 20 s: whatever its clock says, I never take over.
    for _ in range(20):
        holder_clock.mono += 1
        my_clock.mono += 1
        await holder.try_once()
        await me.try_once()
        assert holder.is_leader() and not me.is_leader()
    # The holder stops (no release). I take over only after a full lease duration of my own time.
    for _ in range(4):
        my_clock.mono += 1
        await me.try_once()
        assert not me.is_leader()
    my_clock.mono += 0.5
    await me.try_once()
    assert me.is_leader()
    holder_clock.mono += 5
    assert not holder.is_leader()  # it stopped acting 3 s (0.75 x duration) after its last renewal
