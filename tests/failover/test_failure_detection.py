"""Triangulated failure detection on real programs (kube-apiserver, two redis-servers behind
toxiproxy, the operator as a subprocess; `tier0_testing.detection`):

- a killed active Redis is failed over on the fast path (its standby's link drops at once), with
  the witnesses in lastTransition, the condition and the Events, faster than the same kill with the
  fast path out of reach (the slow budget, measured in the same test);
- a crash between two probes is heard at once (the Redis hangs up on the operator's idle
  connection): at a 5 s probe interval the Service still follows within about the confirmation;
- the operator cut off from the active Redis alone (the standby still replicating) keeps the slow
  budget, and says its probes were the only witness;
- a primary frozen (SIGSTOP) for 0.6 s, its link up, is no failover; frozen for good, the
  standby's silent link is a witness and the fast path fails over long before the budget;
- the soak: 60 s of latency and jitter up to 500 ms, 5 % loss, blackouts of the operator's link to
  the active Redis and restarts of the standby: 0 failovers.
"""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tier0_contract import regionpair as rp
from tier0_kube import client as kube_client
from tier0_testing import detection
from tier0_testing import operator as testing

pytestmark = pytest.mark.controlplane

OperatorFactory = Callable[..., tuple[object, int]]
Starter = Callable[..., AbstractAsyncContextManager[detection.Stack]]


@pytest.fixture
def stack(
    kubectl: list[str], namespace: str, kube: kube_client.Client, operator: OperatorFactory, tmp_path: Path
) -> Starter:
    """`async with stack(interval=..., threshold=...) as s:`: the operator's fixture writes
    operator-op-0.log; everything else is stopped afterwards."""

    @asynccontextmanager
    async def start(**kw: Any) -> AsyncIterator[detection.Stack]:
        log = tmp_path / "operator-op-0.log"
        s = await detection.start(tmp_path / "stack", kubectl, kube, namespace, operator, log, **kw)
        try:
            yield s
        finally:
            s.stop()

    return start


async def event_messages(s: detection.Stack, reason: str) -> list[str]:
    return [str(e.get("message")) for e in await testing.list_events(s.kube, s.namespace, reason)]


@pytest.mark.timeout(120)
async def test_a_killed_active_redis_fails_over_on_the_fast_path_with_its_witnesses(stack: Starter) -> None:
    interval, threshold = 1.0, 3
    async with stack(interval=interval, threshold=threshold) as s:
        fast = await detection.kill_active(s)
        assert fast.witnesses == ("Probes", "StandbyLink"), fast
        assert fast.detection_seconds is not None and fast.detection_seconds < 1.0, fast  # confirm 0.25 s
        st = await s.status()
        cond = st.condition("ActiveRegionMatchesSpec")
        assert cond is not None and cond.reason == "FailedOver"
        assert "witnesses: Probes, StandbyLink; detected in" in cond.message, cond.message
        assert st.last_transition is not None and "fast path" in st.last_transition.reason

        async def posted() -> list[str]:
            return [m for m in await event_messages(s, "FailoverStarted") if "witnesses: Probes, StandbyLink" in m]

        await testing.wait_for("FailoverStarted naming the witnesses", posted, timeout=10)
        assert s.log_lines("fast path: region1 failed")

        # The same kill with the fast path out of reach: the slow budget, side by side.
        await s.patch_failover({"fastConfirmSeconds": 60})
        await asyncio.sleep(2 * interval)  # the operator reads the spec each round
        slow = await detection.kill_active(s)
        assert slow.detection_seconds is not None
        assert slow.detection_seconds >= (threshold - 1 - 0.1) * interval, slow
        assert fast.detection_seconds < slow.detection_seconds
        print(f"kill -9 of the active Redis: fast path {fast}, slow path {slow}")


@pytest.mark.timeout(120)
async def test_a_crash_between_two_probes_is_heard_at_once(stack: Starter) -> None:
    """Without the hang-up watch the kill would wait for the next probe: uniformly up to 5 s here."""
    interval = 5.0
    async with stack(interval=interval, threshold=3) as s:
        kill = await detection.kill_active(s)
        assert kill.witnesses == ("Probes", "StandbyLink"), kill
        confirm = rp.FailoverPolicy().fast_confirm_seconds
        assert kill.flip_seconds < confirm + 1.0, f"the Service followed {kill.flip_seconds:.2f} s after the kill"
        assert s.log_lines("closed the operator's idle connection: probing now")


@pytest.mark.timeout(120)
async def test_the_operator_cut_off_alone_keeps_the_slow_budget(stack: Starter) -> None:
    interval, threshold = 0.5, 3
    async with stack(interval=interval, threshold=threshold) as s:
        for direction in ("upstream", "downstream"):
            s.toxi.add_toxic("redis-region1", f"cut-{direction}", "timeout", direction, {"timeout": 0})
        cut = time.monotonic()

        async def failed_over() -> bool:
            st = await s.status()
            return st.last_transition is not None and st.last_transition.type == "Failover"

        await testing.wait_for("a failover", failed_over, timeout=30, every=0.02)
        took = time.monotonic() - cut
        st = await s.status()
        assert st.last_transition is not None
        assert st.last_transition.witnesses == ("Probes",), st.last_transition
        assert st.last_transition.detection_seconds is not None
        assert st.last_transition.detection_seconds >= (threshold - 1 - 0.1) * interval
        assert took >= (threshold - 1) * interval, f"failed over {took:.2f} s after the cut"
        assert not s.log_lines(": fast path: ")
        for direction in ("upstream", "downstream"):
            s.toxi.remove_toxic("redis-region1", f"cut-{direction}")
        await s.wait_healthy("region2")  # the old primary, reachable again, is fenced


@pytest.mark.timeout(120)
async def test_a_brief_freeze_is_no_failover_and_a_long_one_is_witnessed_by_the_silent_link(stack: Starter) -> None:
    """0.6 s of SIGSTOP at a 0.25 s interval: a probe started in the first 0.4 s of the freeze gets no
    answer within its 0.2 s timeout (one at least), three at most (the budget is eight); the standby
    heard its primary within 1.6 s (its link counts as silent from 3 s): no witness, no failover.
    Then SIGSTOP for good: the standby's link stays up (nothing resets it) but goes silent, a
    witness, and the fast path fails over long before the slow budget of 40 probes."""
    interval = 0.25
    async with stack(interval=interval, threshold=8) as s:
        pid = s.redis["region1"].pid
        for _ in range(3):
            mark = len(s.log_lines("probe of region1 failed"))
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(0.6)
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(4 * interval)
            assert len(s.log_lines("probe of region1 failed")) > mark, "the freeze failed no probe"
            await asyncio.sleep(2.0)
        st = await s.wait_healthy("region1")
        assert st.epoch == 1 and st.last_transition is None, st
        assert not s.log_lines(": fast path: ")

        await s.patch_failover({"failureThreshold": 40})
        await asyncio.sleep(4 * interval)
        frozen = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:

            async def failed_over() -> bool:
                return await testing.service_region(s.kube, s.namespace, detection.SERVICE) == "region2"

            await testing.wait_for("failover to region2", failed_over, timeout=20, every=0.02)
            took = time.monotonic() - frozen
        finally:
            os.kill(pid, signal.SIGCONT)
        st = await s.wait_healthy("region2")  # region1 answers again: fenced, a replica of region2
        assert st.last_transition is not None and st.last_transition.witnesses == ("Probes", "StandbyLink")
        budget = 39 * interval
        assert took < budget, f"took {took:.2f} s: the slow budget ({budget:.2f} s), not the fast path"
        assert "has heard nothing from region1" in st.last_transition.reason, st.last_transition.reason
        print(f"SIGSTOP for good: failed over after {took:.2f} s (slow budget {budget:.2f} s)")


@pytest.mark.timeout(240)
async def test_soak_no_false_failovers(stack: Starter) -> None:
    seconds = float(os.environ.get("TIER0_SOAK_SECONDS", "60"))
    async with stack(interval=1.0, threshold=3) as s:
        result = await detection.soak(s, seconds)
        print(result)
        assert result.failovers == 0, result
        assert result.active_after == "region1"
        assert result.fast_paths == 0, f"a witness agreed with the probes: {result}"
        # What was injected reached the operator: failed probes, standby restarts, stalls.
        assert result.failed_probes >= 2 and result.standby_restarts >= 2, result
        assert result.loss_slots > 0 and result.longest_streak < 3, result
