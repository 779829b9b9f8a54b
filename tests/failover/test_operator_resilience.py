"""Failure modes: a returning old primary is fenced, a killed operator resumes its switchover,
two replicas act as one (Lease), a paused pair is left alone, a deleted pair leaves nothing."""

import asyncio
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tier0_dev import programs
from tier0_dev.procs import Process
from tier0_kube import client as kube_client
from tier0_kube import errors as kube_errors
from tier0_testing import operator as testing
from tier0_testing.operator import apply, run_kubectl

pytestmark = pytest.mark.controlplane

RedisFactory = Callable[..., tuple[Process, int]]
OperatorFactory = Callable[..., tuple[Process, int]]


async def phase_is(
    kube: kube_client.Client, ns: str, phase: str, active: str, timeout: float = 20
) -> dict[str, object]:
    async def check() -> dict[str, object] | None:
        st = (await testing.get_pair(kube, ns, "pair")).get("status") or {}
        return st if st.get("phase") == phase and st.get("activeRegion") == active else None

    result: dict[str, object] = await testing.wait_for(f"{phase} on {active}", check, timeout=timeout)
    return result


async def count_events(kube: kube_client.Client, ns: str, reason: str) -> int:
    return len(await testing.list_events(kube, ns, reason))


def metric(port: int, name: str) -> list[tuple[str, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            out.append((labels, float(value)))
    return out


async def role(port: int) -> tuple[str, int | None]:
    import redis.asyncio as aioredis

    c = aioredis.Redis(port=port, decode_responses=True, socket_timeout=1)
    try:
        info = await c.info("replication")
        return str(info["role"]), info.get("master_port")
    except OSError:
        return "down", None
    finally:
        await c.aclose()


async def test_restarted_old_primary_rejoins_as_replica_and_is_never_routed_to_while_writable(
    kubectl: list[str], namespace: str, kube: kube_client.Client, operator: OperatorFactory, tmp_path: Path
) -> None:
    from tier0_dev.procs import free_port

    p1, p2 = free_port(), free_port()
    r1 = programs.redis(p1, tmp_path / "r1", persistent=True)
    r2 = programs.redis(p2, tmp_path / "r2", persistent=True)
    started = [r1, r2]
    try:
        operator()
        apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}, interval=0.3))
        await phase_is(kube, namespace, "Healthy", "region1")
        r1.kill()
        await phase_is(kube, namespace, "Degraded", "region2")
        import redis.asyncio as aioredis

        c2 = aioredis.Redis(port=p2)
        await c2.set("written-after-failover", "yes")
        await c2.aclose()
        # The old primary comes back from its own (persistent) data, as a writable primary.
        r1 = programs.redis(p1, tmp_path / "r1", persistent=True)
        started.append(r1)
        violations = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r, master = await role(p1)
            routed = await testing.service_region(kube, namespace, "region-api")
            violations += routed == "region1" and r == "master"
            if r == "slave" and master == p2:
                break
            await asyncio.sleep(0.01)
        assert (r, master) == ("slave", p2), "the returning primary was not fenced"
        assert violations == 0
        await phase_is(kube, namespace, "Healthy", "region2")
        c1 = aioredis.Redis(port=p1, decode_responses=True)
        assert await testing.wait_for("data synced", lambda: c1.get("written-after-failover")) == "yes"
        await c1.aclose()
        assert await count_events(kube, namespace, "Fenced") == 1
    finally:
        for p in started:
            p.stop()


async def test_operator_killed_mid_switchover_resumes_and_converges(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    ports = {"region1": p1, "region2": p2}
    first, _ = operator(identity="doomed", env={"TIER0_OPERATOR_FAILPOINT": "demote"})
    apply(kubectl, namespace, testing.pair_manifest("pair", ports))
    await phase_is(kube, namespace, "Healthy", "region1")
    writer = testing.Writer(kube, namespace, "region-api", ports)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0.5)
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})
    await testing.wait_for("the operator to die at the failpoint", lambda: _dead(first), timeout=10)
    st = (await testing.get_pair(kube, namespace, "pair"))["status"]
    assert st["phase"] == "SwitchingOver" and st["transition"]["to"] == "region2"
    # Both Redis are replicas now: nothing accepts writes, nothing acknowledged can be lost.
    assert (await role(p1))[0] == "slave" and (await role(p2))[0] == "slave"
    operator(identity="successor")
    await phase_is(kube, namespace, "Healthy", "region2")
    assert await testing.service_region(kube, namespace, "region-api") == "region2"
    await asyncio.sleep(0.3)
    writer.stop()
    await task
    assert await testing.missing_writes(p2, writer.acked) == 0
    st = (await testing.get_pair(kube, namespace, "pair"))["status"]
    assert st["lastTransition"]["outcome"] == "Succeeded" and st["epoch"] == 2


async def _dead(proc: Process) -> bool:
    return not proc.alive()


async def test_two_operator_replicas_only_the_lease_holder_acts(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    a, port_a = operator(identity="a")
    await testing.wait_for("a leads", lambda: _leads(port_a), timeout=15)
    b, port_b = operator(identity="b")
    await testing.wait_for("b serves metrics", lambda: _serves(port_b), timeout=15)
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}))
    await phase_is(kube, namespace, "Healthy", "region1")
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})
    await phase_is(kube, namespace, "Healthy", "region2")
    await asyncio.sleep(1)
    assert await count_events(kube, namespace, "SwitchoverStarted") == 1
    assert metric(port_a, "tier0_operator_leader")[0][1] == 1
    assert metric(port_b, "tier0_operator_leader")[0][1] == 0
    # The leader dies without releasing the Lease: b takes over after it expires and acts.
    a.kill()
    await testing.wait_for("b leads", lambda: _leads(port_b), timeout=15)
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region1"})
    await phase_is(kube, namespace, "Healthy", "region1")
    assert await count_events(kube, namespace, "SwitchoverStarted") == 2
    assert metric(port_b, "tier0_operator_transitions_total")[0][1] >= 1


async def _serves(port: int) -> bool:
    try:
        return bool(metric(port, "tier0_operator_leader"))
    except OSError:
        return False


async def _leads(port: int) -> bool:
    try:
        return metric(port, "tier0_operator_leader")[0][1] == 1
    except OSError:
        return False


async def test_paused_pair_is_left_alone(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (r1, p1), (_, p2) = redis_factory(), redis_factory()
    operator()
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}, interval=0.2))
    await phase_is(kube, namespace, "Healthy", "region1")
    await testing.patch_pair(kube, namespace, "pair", {"paused": True, "activeRegion": "region2"})

    async def paused_condition() -> bool:
        st = (await testing.get_pair(kube, namespace, "pair")).get("status") or {}
        return any(c["type"] == "Paused" and c["status"] == "True" for c in st.get("conditions", []))

    await testing.wait_for("Paused condition", paused_condition, timeout=10)
    r1.kill()  # even the active region dying does not make a paused pair fail over
    await asyncio.sleep(2.0)
    st = (await testing.get_pair(kube, namespace, "pair"))["status"]
    assert st["activeRegion"] == "region1" and st["phase"] == "Failed"
    assert await testing.service_region(kube, namespace, "region-api") == "region1"
    assert (await role(p2))[0] == "slave"
    assert await count_events(kube, namespace, "SwitchoverStarted") == 0
    assert await count_events(kube, namespace, "FailoverStarted") == 0


async def test_deleting_a_pair_leaves_nothing_behind(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    _, port = operator()
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}))
    await phase_is(kube, namespace, "Healthy", "region1")
    pair = f'pair="{namespace}/pair"'
    body = await testing.get_pair(kube, namespace, "pair")
    assert body["metadata"].get("finalizers") == ["tier0.dev/operator"]  # daemons stop before deletion
    assert any(pair in labels for labels, _ in metric(port, "tier0_operator_region_healthy"))
    run_kubectl(kubectl, "-n", namespace, "delete", "rp", "pair", "--timeout=15s")
    with pytest.raises(kube_errors.KubeNotFoundError):
        await kube.read_pair(namespace, "pair")
    await asyncio.sleep(0.5)
    for name in ("tier0_operator_region_healthy", "tier0_operator_region_role", "tier0_operator_replication_lag_bytes"):
        assert not any(pair in labels for labels, _ in metric(port, name)), name
    # The data plane keeps running as it was: deleting the resource is not a failover.
    assert (await role(p1))[0] == "master" and (await role(p2)) == ("slave", p1)


async def test_failed_health_url_fails_over_and_fences_the_still_running_primary(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    from aiohttp import web

    from tier0_dev.procs import free_port

    up = {"region1": True, "region2": True}

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200 if up[request.match_info["region"]] else 503)

    app = web.Application()
    app.router.add_get("/{region}/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    hport = free_port()
    await web.TCPSite(runner, "127.0.0.1", hport).start()
    try:
        (_, p1), (_, p2) = redis_factory(), redis_factory()
        operator()
        urls = {r: f"http://127.0.0.1:{hport}/{r}/health" for r in ("region1", "region2")}
        manifest = testing.pair_manifest("pair", {"region1": p1, "region2": p2}, interval=0.2, health_urls=urls)
        apply(kubectl, namespace, manifest)
        await phase_is(kube, namespace, "Healthy", "region1")
        up["region1"] = False  # the region API dies; its Redis keeps running as a writable primary
        two_primaries = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # region2 first: the operator demotes region1 before it promotes region2, so if
            # region2 is already a primary, region1 read afterwards must no longer be one.
            r2 = (await role(p2))[0]
            roles = (await role(p1))[0], r2
            two_primaries += roles == ("master", "master")
            if roles == ("slave", "master"):
                break
            await asyncio.sleep(0.002)
        assert roles == ("slave", "master")
        assert two_primaries == 0, "both Redis accepted writes at the same time"
        st = await phase_is(kube, namespace, "Degraded", "region2")  # region1's API is still down
        assert await testing.service_region(kube, namespace, "region-api") == "region2"
        assert (await role(p1)) == ("slave", p2)
        last = st["lastTransition"]
        assert isinstance(last, dict) and last["type"] == "Failover"
        up["region1"] = True
        await phase_is(kube, namespace, "Healthy", "region2")
    finally:
        await runner.cleanup()


async def test_switchover_past_its_timeout_rolls_back_cleanly(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    """The operator dies right after pausing writes; its successor finds the switchover past
    switchoverTimeoutSeconds and rolls back: writes resume on the old primary, nothing lost. As
    spec.activeRegion still asks for region2, the switchover is tried again after its backoff
    (5 s here) and succeeds, still losing nothing."""
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    ports = {"region1": p1, "region2": p2}
    first, _ = operator(identity="doomed", env={"TIER0_OPERATOR_FAILPOINT": "pause"})
    apply(kubectl, namespace, testing.pair_manifest("pair", ports, switchover_timeout=0.5))
    await phase_is(kube, namespace, "Healthy", "region1")
    writer = testing.Writer(kube, namespace, "region-api", ports)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0.3)
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})
    await testing.wait_for("the operator to die at the failpoint", lambda: _dead(first), timeout=10)
    acked_while_paused = len(writer.acked)
    await asyncio.sleep(1.0)  # past the 0.5 s timeout; the pause (timeout + 2 s) still holds
    assert len(writer.acked) == acked_while_paused, "writes were acknowledged while paused"
    operator(identity="successor")
    st = await phase_is(kube, namespace, "Healthy", "region1")
    last = st["lastTransition"]
    assert isinstance(last, dict) and last["outcome"] == "RolledBack" and last["to"] == "region2"
    conds = {c["type"]: c for c in st["conditions"]}  # type: ignore[attr-defined]
    assert conds["ActiveRegionMatchesSpec"]["reason"] == "SwitchoverRolledBack"
    assert "(attempt 2)" in conds["ActiveRegionMatchesSpec"]["message"]
    await testing.wait_for("writes to resume", lambda: _more(writer, acked_while_paused), timeout=5)
    assert await testing.service_region(kube, namespace, "region-api") == "region1"
    assert (await role(p2)) == ("slave", p1)
    # (what was acknowledged meanwhile is checked on region2 at the end: the retry may be running)
    st = await phase_is(kube, namespace, "Healthy", "region2", timeout=30)
    last = st["lastTransition"]
    assert isinstance(last, dict) and (last["outcome"], last["attempt"]) == ("Succeeded", 2), last
    writer.stop()
    await task
    assert await testing.service_region(kube, namespace, "region-api") == "region2"
    assert await testing.missing_writes(p2, writer.acked) == 0
    assert await count_events(kube, namespace, "SwitchoverRolledBack") == 1


async def _more(writer: testing.Writer, than: int) -> bool:
    return len(writer.acked) > than
