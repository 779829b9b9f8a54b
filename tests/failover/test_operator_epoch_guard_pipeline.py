"""Issue 9's operator parts on the real apiserver with real redis-servers: the pair's epoch is in
every new primary before traffic moves to it; the write guard (`min-replicas-to-write`) follows
the standby by spec.replication (Accept lowers it and reports the risk, Hold never does, so a
primary cut from its replica stops accepting writes); pipeline heartbeats (written here by hand,
as the workers write them) make the pair Degraded with the reason, and onStall: Failover fails over."""

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from tier0_contract import keys, pipeline
from tier0_contract import regionpair as rp
from tier0_dev import programs
from tier0_dev.procs import Process, free_port
from tier0_kube import client as kube_client
from tier0_testing import operator as testing
from tier0_testing.operator import apply, run_kubectl

pytestmark = pytest.mark.controlplane

RedisFactory = Callable[..., tuple[Process, int]]
OperatorFactory = Callable[..., tuple[Process, int]]


async def status_where(
    kube: kube_client.Client, ns: str, what: str, check: Callable[[rp.RegionPairStatus], bool], timeout: float = 20
) -> rp.RegionPairStatus:
    async def probe() -> rp.RegionPairStatus | None:
        st = await testing.get_status(kube, ns, "pair")
        return st if check(st) else None

    result: rp.RegionPairStatus = await testing.wait_for(what, probe, timeout=timeout, every=0.05)
    return result


def healthy_on(region: str) -> Callable[[rp.RegionPairStatus], bool]:
    return lambda st: st.phase == "Healthy" and st.active_region == region


async def redis_get(port: int, *command: Any) -> Any:
    c = aioredis.Redis(port=port, decode_responses=True)
    try:
        return await c.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await c.aclose()


async def min_replicas(port: int) -> int:
    return int((await redis_get(port, "CONFIG", "GET", "min-replicas-to-write"))[1])


async def test_the_epoch_is_in_every_new_primary_before_the_selector_flips(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (r2, p2) = redis_factory(), redis_factory()
    operator()
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}))
    await status_where(kube, namespace, "Healthy on region1", healthy_on("region1"))
    assert await testing.wait_for("epoch 1 in region1", lambda: _epoch_is(p1, 1)), "first reconcile"
    # Switchover: the moment the Service routes to region2, region2 already carries epoch 2.
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})

    async def routed_to_region2() -> str | None:
        if await testing.service_region(kube, namespace, "region-api") == "region2":
            return str(await redis_get(p2, "GET", keys.PAIR_EPOCH))
        return None

    assert await testing.wait_for("selector on region2", routed_to_region2, every=0.002) == "2"
    st = await status_where(kube, namespace, "Healthy on region2", healthy_on("region2"))
    assert st.epoch == 2
    # Failover: region2 dies, region1 is promoted with epoch 3.
    r2.kill()
    st = await status_where(kube, namespace, "failed over", lambda s: s.active_region == "region1" and s.epoch == 3)
    assert await redis_get(p1, "GET", keys.PAIR_EPOCH) == "3"


async def _epoch_is(port: int, epoch: int) -> bool:
    return bool(await redis_get(port, "GET", keys.PAIR_EPOCH) == str(epoch))


async def test_accept_lowers_the_write_guard_while_the_standby_is_down_and_reports_the_risk(
    kubectl: list[str], namespace: str, kube: kube_client.Client, operator: OperatorFactory, tmp_path: Path
) -> None:
    p1, p2 = free_port(), free_port()
    r1, r2 = programs.redis(p1, tmp_path / "r1"), programs.redis(p2, tmp_path / "r2")
    try:
        operator()
        apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}))
        await status_where(kube, namespace, "Healthy", healthy_on("region1"))
        assert await testing.wait_for("guard 1", lambda: _min_is(p1, 1))
        assert (await redis_get(p1, "CONFIG", "GET", "min-replicas-max-lag"))[1] == "2"
        r2.kill()
        st = await status_where(kube, namespace, "at risk", lambda s: bool(s.replication and s.replication.at_risk))
        assert await min_replicas(p1) == 0
        risk = st.condition(rp.WRITES_AT_RISK)
        assert risk is not None and (risk.status, risk.reason) == ("True", "StandbyDown")
        await redis_get(p1, "SET", "written-while-alone", "1")  # accepted: the policy is Accept
        assert await testing.wait_for(
            "WritesAtRisk event", lambda: testing.list_events(kube, namespace, "WritesAtRisk")
        )
        out = run_kubectl(kubectl, "-n", namespace, "get", "rp", "-o", "wide")
        assert "true" in out.lower(), out  # the At risk column
        # The standby is back and in sync: protected again.
        r2 = programs.redis(p2, tmp_path / "r2")
        st = await status_where(kube, namespace, "Healthy again", healthy_on("region1"))
        assert await testing.wait_for("guard back to 1", lambda: _min_is(p1, 1))
        st = await status_where(
            kube, namespace, "not at risk", lambda s: bool(s.replication and not s.replication.at_risk)
        )
        assert await testing.wait_for(
            "WritesProtected", lambda: testing.list_events(kube, namespace, "WritesProtected")
        )
    finally:
        r1.stop()
        r2.stop()


async def _min_is(port: int, value: int) -> bool:
    return await min_replicas(port) == value


async def test_hold_keeps_the_guard_so_a_primary_without_its_replica_stops_accepting_writes(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (r2, p2) = redis_factory(), redis_factory()
    operator()
    manifest = testing.pair_manifest("pair", {"region1": p1, "region2": p2}, replication={"whenStandbyDown": "Hold"})
    apply(kubectl, namespace, manifest)
    await status_where(kube, namespace, "Healthy", healthy_on("region1"))
    assert await testing.wait_for("guard 1", lambda: _min_is(p1, 1))
    r2.kill()
    killed = time.monotonic()
    st = await status_where(kube, namespace, "held", lambda s: _reason(s, rp.WRITES_AT_RISK) == "WritesHeld")
    assert st.replication is not None and not st.replication.at_risk

    async def refused() -> bool:
        try:
            await redis_get(p1, "SET", "k", "v")
        except ResponseError as e:
            return "NOREPLICAS" in str(e)
        return False

    assert await testing.wait_for("writes refused", refused, timeout=10, every=0.1)
    assert time.monotonic() - killed < 2 + 1.5 + 1  # min-replicas-max-lag + Redis's 1 s replica ping
    await asyncio.sleep(2)  # well past the detection budget: Hold never lowers it
    assert await min_replicas(p1) == 1


def _reason(st: rp.RegionPairStatus, type_: str) -> str | None:
    c = st.condition(type_)
    return c.reason if c else None


async def write_heartbeat(
    port: int, component: pipeline.Component, region: str, age: float, pending: int = 0, connected: bool = True
) -> None:
    """A worker's heartbeat as the workers write it: times on the Redis server's clock. Like the
    workers, it holds and retries while the guarded primary answers NOREPLICAS (a replica that has
    just synced counts as good only after its first acknowledgement)."""
    c = aioredis.Redis(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            seconds, micros = await c.time()
            now = seconds + micros / 1e6
            hb = pipeline.Heartbeat(
                component=component,
                worker=f"{component}-{region}",
                region=region,
                at=now - age,
                last_stored_at=now - age,
                pending=pending,
                connected=connected,
            )
            field = pipeline.heartbeat_field(component, hb.worker)
            try:
                await c.hset(keys.PIPELINE_HEARTBEATS, field, hb.model_dump_json())  # type: ignore[misc]
                return
            except ResponseError as exc:
                if not str(exc).startswith("NOREPLICAS") or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await c.aclose()


async def test_a_dead_pipeline_of_the_active_region_degrades_the_pair_with_the_reason(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    operator()
    apply(
        kubectl,
        namespace,
        testing.pair_manifest("pair", {"region1": p1, "region2": p2}, pipeline={"stallAfterSeconds": 5}),
    )
    st = await status_where(kube, namespace, "Healthy", healthy_on("region1"))
    for component in ("ingest", "activity"):
        await write_heartbeat(p1, component, "region1", age=0.1)
    st = await status_where(kube, namespace, "pipeline ok", lambda s: _reason(s, rp.PIPELINE_HEALTHY) == "PipelineOk")
    assert st.phase == "Healthy"
    # The ingest worker's last heartbeat is 30 s old: it died.
    await write_heartbeat(p1, "ingest", "region1", age=30)
    st = await status_where(kube, namespace, "Degraded", lambda s: s.phase == "Degraded")
    r1 = st.region("region1")
    assert r1 is not None and r1.pipeline is not None and r1.pipeline.state == "dead"
    cond = st.condition(rp.PIPELINE_HEALTHY)
    assert cond is not None and cond.reason == "PipelineDead" and "no heartbeat for 30 s" in cond.message
    out = run_kubectl(kubectl, "-n", namespace, "get", "rp")
    assert "Degraded" in out and "PipelineDead" in out, out
    assert await testing.wait_for("event", lambda: testing.list_events(kube, namespace, "PipelineUnhealthy"))
    assert st.active_region == "region1"  # onStall: Report does not fail over
    await write_heartbeat(p1, "ingest", "region1", age=0.1)
    await status_where(kube, namespace, "Healthy again", healthy_on("region1"))


async def test_on_stall_failover_moves_to_the_region_whose_pipeline_works(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    operator()
    policy = {"stallAfterSeconds": 5, "onStall": "Failover"}
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}, pipeline=policy))
    await status_where(kube, namespace, "Healthy", healthy_on("region1"))
    await write_heartbeat(p1, "ingest", "region2", age=0.1)
    await write_heartbeat(p1, "ingest", "region1", age=0.1, pending=100)
    await asyncio.sleep(1)
    await write_heartbeat(p1, "ingest", "region1", age=20, pending=100)  # holding messages, nothing stored
    st = await status_where(kube, namespace, "failed over", lambda s: s.active_region == "region2", timeout=20)
    assert st.last_transition is not None and st.last_transition.type == "Failover"
    assert "pipeline is dead" in st.last_transition.reason or "pipeline is stalled" in st.last_transition.reason


async def test_the_mqtt_service_waits_for_a_region_whose_ingest_is_subscribed(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    """A Service that `feeds: ingest` moves to a region only once an ingest worker there says it is
    connected and subscribed: a broker nobody subscribes to acknowledges devices' messages and drops
    them (kind CI: a region's broker restarted, its worker's connect hung, the region was made active
    and 1,254 acknowledged messages were gone). The API's Service moves at once; the MQTT Service
    stays, says why (status.services, a RouteHeld Event) and follows once the worker reports in."""
    mqtt = testing.service_manifest("mqtt", app="emqx")
    run_kubectl(kubectl, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(mqtt))
    services: list[dict[str, Any]] = [
        {"name": "region-api"},
        {"name": "mqtt", "selector": {"app": "emqx"}, "feeds": "ingest"},
    ]
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    operator()
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}, services=services))
    await status_where(kube, namespace, "Healthy", healthy_on("region1"))
    assert await testing.service_region(kube, namespace, "mqtt") == "region1"
    await write_heartbeat(p1, "ingest", "region1", age=0.1)
    await write_heartbeat(p1, "ingest", "region2", age=0.1, connected=False)  # replicated to region2
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})

    def held(st: rp.RegionPairStatus) -> bool:
        by_name = {s.name: s for s in st.services}
        mq, api = by_name.get("mqtt"), by_name.get("region-api")
        return bool(st.active_region == "region2" and api and api.region == "region2" and mq and mq.region == "region1")

    st = await status_where(kube, namespace, "the API on region2, MQTT held on region1", held)
    (mq,) = [s for s in st.services if s.name == "mqtt"]
    assert "held off region2: no ingest worker of region2 is connected to its broker" in mq.message, mq
    assert await testing.service_region(kube, namespace, "mqtt") == "region1"
    assert await testing.wait_for("a RouteHeld Event", lambda: testing.list_events(kube, namespace, "RouteHeld"))
    await asyncio.sleep(1.5)  # rounds go by: still held while the worker says it is not connected
    assert await testing.service_region(kube, namespace, "mqtt") == "region1"
    await write_heartbeat(p2, "ingest", "region2", age=0.1)  # into the new primary, as the worker does

    async def followed() -> bool:
        return await testing.service_region(kube, namespace, "mqtt") == "region2"

    await testing.wait_for("the MQTT Service on region2", followed, timeout=10)

    def recorded(st: rp.RegionPairStatus) -> bool:
        return any(s.name == "mqtt" and s.region == "region2" and s.message == "" for s in st.services)

    await status_where(kube, namespace, "status.services: mqtt on region2, no longer held", recorded, timeout=10)
