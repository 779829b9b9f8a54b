"""Failover endpoints' logic: ask the operator for a region through the RegionPair and wait for it.

The API never touches Redis roles or Services itself; the operator does and reports in `status`.
Here we read the RegionPair, decide what to patch (`plan`, pure), patch `spec.activeRegion` with a
resourceVersion precondition (a decision taken on a stale view is retried, never written), and
watch the status until the target region is active and Healthy (`progress`, pure), measuring the
latency a client sees.

One subtlety of the CRD: after an automatic failover the operator leaves `spec.activeRegion` on
the old region (status tells the truth). Asking for that old region again would then change
nothing, so such a request first acknowledges the failover (spec := the active region), waits until
the operator has seen it, and only then asks for the target.
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from tier0_contract import regionpair as rp
from tier0_kube import client as kube
from tier0_services.api import errors


@dataclass(frozen=True)
class PairView:
    """What the failover endpoints need of a RegionPair (the contract's model)."""

    name: str
    namespace: str
    resource_version: str
    generation: int
    regions: tuple[str, ...]
    home: str
    """The pair's home region (the contract's `home_region`): where `restore` goes back to."""
    desired: str | None
    paused: bool
    active: str | None
    requested: str | None
    phase: str | None
    """None while the operator has written no status at all."""
    epoch: int | None
    observed_generation: int | None
    lag_bytes: int | None
    in_transition: bool
    last_transition: rp.LastTransition | None
    region_status: tuple[rp.RegionStatus, ...]

    @classmethod
    def of(cls, pair: rp.RegionPair) -> "PairView":
        # No status field set: the operator has written none yet.
        st, written = pair.status, bool(pair.status.model_fields_set)
        return cls(
            name=pair.metadata.name,
            namespace=pair.metadata.namespace,
            resource_version=pair.metadata.resource_version,
            generation=pair.metadata.generation,
            regions=pair.spec.region_names,
            home=pair.spec.home_region,
            desired=pair.spec.active_region,
            paused=pair.spec.paused,
            active=st.active_region,
            requested=st.requested_region,
            phase=st.phase if written else None,
            epoch=st.epoch if written else None,
            observed_generation=st.observed_generation,
            lag_bytes=st.lag_bytes if written else None,
            in_transition=st.in_transition,
            last_transition=st.last_transition,
            region_status=st.regions,
        )


@dataclass(frozen=True)
class Plan:
    source: str
    target: str
    acknowledge: str | None
    """Set spec.activeRegion to this first (an unacknowledged automatic failover), or None."""
    switch: bool
    """Whether the target still has to become active (False: it already is)."""


def other_region(view: PairView) -> str:
    """The region that is not active: the target of a simulated failover."""
    source = view.active or view.desired
    others = [r for r in view.regions if r != source]
    if not others:
        raise errors.ConflictError(f"RegionPair {view.name} has no region other than {source}")
    return others[0]


def plan(view: PairView, target: str) -> Plan:
    """What to patch so that `target` becomes active; refuses (409) what the operator could not do."""
    if target not in view.regions:
        raise errors.NotFoundError(
            f"region {target!r} is not part of RegionPair {view.name} ({', '.join(view.regions)})"
        )
    if view.active is None or view.phase is None:
        raise errors.ConflictError(f"RegionPair {view.name} has no status yet: is the operator running?")
    if view.active == target:
        ack = target if view.desired != target else None
        return Plan(source=view.active, target=target, acknowledge=ack, switch=False)
    if view.paused:
        raise errors.ConflictError(f"RegionPair {view.name} is paused (spec.paused): the operator changes nothing")
    if view.in_transition:
        raise errors.ConflictError(f"RegionPair {view.name} is already in a transition (phase {view.phase})")
    if view.phase != "Healthy":
        raise errors.ConflictError(
            f"RegionPair {view.name} is {view.phase}: a planned switchover needs both regions Healthy"
        )
    ack = view.active if view.desired == target else None
    return Plan(source=view.active, target=target, acknowledge=ack, switch=True)


def progress(view: PairView, target: str, baseline: rp.LastTransition | None) -> bool | None:
    """True once `target` is active and Healthy; None while still waiting; raises if the operator
    reports that this transition failed or was rolled back (`baseline`: lastTransition before it)."""
    if view.active == target and view.phase == "Healthy":
        return True
    last = view.last_transition
    if last and last != baseline and last.to_region == target and last.outcome in ("RolledBack", "Failed"):
        raise errors.UpstreamFailedError(
            f"the operator reports the switchover to {target} {last.outcome}: {last.reason or 'no reason given'}"
        )
    if view.phase == "Failed":
        raise errors.UpstreamFailedError(f"RegionPair {view.name} is Failed while switching to {target}")
    return None


def operator_saw(view: PairView, generation: int, desired: str) -> bool | None:
    """True once the operator has acted on spec generation `generation` (asking for `desired`)."""
    seen = (view.observed_generation or 0) >= generation or view.requested == desired
    return True if seen else None


@dataclass(frozen=True)
class Outcome:
    source: str
    target: str
    latency_seconds: float
    moved: bool
    view: PairView
    transition: rp.LastTransition | None
    """lastTransition of this switchover (None when nothing moved or the operator wrote none)."""


async def switch_to(
    client: kube.Client,
    ref: kube.PairRef,
    choose_target: Callable[[PairView], str],
    timeout: float,
) -> Outcome:
    """Make the region `choose_target(view)` active and wait (at most `timeout` s) until it is."""
    last_seen: list[PairView] = []

    def observe(pair: rp.RegionPair) -> PairView:
        view = PairView.of(pair)
        last_seen[:] = [view]
        return view

    async def wait_for(check: Callable[[rp.RegionPair], rp.RegionPair | None], start: rp.RegionPair) -> rp.RegionPair:
        return await client.wait_for_pair(ref.namespace, ref.name, check, start)

    async def attempt() -> Outcome:
        view = observe(await client.get_pair(ref.namespace, ref.name))
        target = choose_target(view)
        steps = plan(view, target)
        if steps.acknowledge is not None:
            acked = await client.request_region(ref.namespace, ref.name, steps.acknowledge, view.resource_version)
            if not steps.switch:
                return Outcome(steps.source, target, 0.0, False, observe(acked), None)
            generation = acked.metadata.generation
            ack = steps.acknowledge
            seen = await wait_for(lambda p: p if operator_saw(observe(p), generation, ack) else None, acked)
            view = observe(seen)
            steps = plan(view, target)
        if not steps.switch:
            return Outcome(steps.source, target, 0.0, False, view, None)
        baseline = view.last_transition
        started = time.monotonic()
        patched = await client.request_region(ref.namespace, ref.name, target, view.resource_version)
        done = await wait_for(lambda p: p if progress(observe(p), target, baseline) else None, patched)
        latency = time.monotonic() - started
        final = observe(done)
        last = final.last_transition
        this = last if last and last != baseline and last.to_region == target else None
        return Outcome(steps.source, target, latency, True, final, this)

    try:
        async with asyncio.timeout(timeout):
            return await kube.with_retries(attempt)
    except TimeoutError:
        seen = last_seen[0] if last_seen else None
        state = f"phase {seen.phase}, active {seen.active}" if seen else "nothing read"
        raise errors.UpstreamTimeoutError(
            f"RegionPair {ref.namespace}/{ref.name} did not report the requested region active and Healthy "
            f"within {timeout:g} s (last seen: {state})"
        ) from None
