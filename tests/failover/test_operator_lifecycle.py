"""The operator against a real apiserver and real redis-servers: create -> Healthy, switchover
under a full-speed writer with zero acknowledged writes lost, automatic failover exactly once."""

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from tier0_dev.procs import Process
from tier0_kube import client as kube_client
from tier0_testing import operator as testing
from tier0_testing.operator import apply, run_kubectl

pytestmark = pytest.mark.controlplane

RedisFactory = Callable[..., tuple[Process, int]]
OperatorFactory = Callable[..., tuple[Process, int]]


async def healthy(kube: kube_client.Client, ns: str, name: str = "pair") -> dict[str, object]:
    async def check() -> dict[str, object] | None:
        body = await testing.get_pair(kube, ns, name)
        st = body.get("status") or {}
        return body if st.get("phase") == "Healthy" else None

    result: dict[str, object] = await testing.wait_for(f"{name} Healthy", check, timeout=20)
    return result


async def test_create_establishes_replication_and_reports_healthy(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    operator()
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}))
    body = await healthy(kube, namespace)
    status = body["status"]
    assert isinstance(status, dict)
    assert status["activeRegion"] == "region1"
    roles = {r["name"]: r["role"] for r in status["regions"]}
    assert roles == {"region1": "primary", "region2": "replica"}
    assert await testing.service_region(kube, namespace, "region-api") == "region1"
    out = run_kubectl(kubectl, "-n", namespace, "get", "rp")
    assert "region1" in out and "Healthy" in out
    print(out)


async def events(kube: kube_client.Client, ns: str, reason: str) -> list[dict[str, object]]:
    return await testing.list_events(kube, ns, reason)


async def start_pair(
    kubectl: list[str],
    ns: str,
    kube: kube_client.Client,
    redis_factory: RedisFactory,
    operator: OperatorFactory,
    **kw: object,
) -> tuple[dict[str, int], dict[str, Process]]:
    (r1, p1), (r2, p2) = redis_factory(), redis_factory()
    operator()
    ports = {"region1": p1, "region2": p2}
    apply(kubectl, ns, testing.pair_manifest("pair", ports, **kw))  # type: ignore[arg-type]
    await healthy(kube, ns)
    return ports, {"region1": r1, "region2": r2}


async def test_switchover_under_full_speed_writer_loses_no_acknowledged_write(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    ports, _ = await start_pair(kubectl, namespace, kube, redis_factory, operator)
    writer = testing.Writer(kube, namespace, "region-api", ports)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(1.0)
    before = len(writer.acked)
    assert before > 100, "the writer is not writing"
    started = time.monotonic()
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})

    async def flipped() -> bool:
        return await testing.service_region(kube, namespace, "region-api") == "region2"

    await testing.wait_for("selector on region2", flipped, timeout=10, every=0.005)
    flip = time.monotonic() - started
    await asyncio.sleep(0.5)
    writer.stop()
    await task
    body = await healthy(kube, namespace)
    status = body["status"]
    assert isinstance(status, dict)
    assert status["activeRegion"] == "region2"
    assert status["lastTransition"]["type"] == "Switchover"
    assert status["lastTransition"]["outcome"] == "Succeeded"
    assert status["lastTransition"]["lostBytes"] == 0
    assert len(writer.acked) > before
    assert "region2" in writer.first_ack_after
    assert await testing.missing_writes(ports["region2"], writer.acked) == 0
    assert flip < 2.0, f"selector flip took {flip:.3f} s"
    assert len(await events(kube, namespace, "SwitchoverCompleted")) == 1


async def test_killing_the_active_redis_fails_over_once_within_the_detection_time(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    interval, threshold = 0.3, 3
    ports, procs = await start_pair(
        kubectl, namespace, kube, redis_factory, operator, interval=interval, threshold=threshold
    )
    killed = time.monotonic()
    procs["region1"].kill()

    async def flipped() -> bool:
        return await testing.service_region(kube, namespace, "region-api") == "region2"

    await testing.wait_for("failover to region2", flipped, timeout=15, every=0.01)
    took = time.monotonic() - killed
    assert took < (threshold + 1) * interval + 1.0, f"failover took {took:.2f} s"
    await asyncio.sleep(3 * interval)
    body = await testing.get_pair(kube, namespace, "pair")
    status = body["status"]
    assert status["activeRegion"] == "region2"
    assert status["phase"] == "Degraded"  # region1 is still down
    assert status["lastTransition"]["type"] == "Failover"
    assert status["epoch"] == 2
    assert len(await events(kube, namespace, "FailoverStarted")) == 1
    assert len(await events(kube, namespace, "FailoverCompleted")) == 1
    cond = {c["type"]: c for c in status["conditions"]}
    assert cond["ActiveRegionMatchesSpec"]["reason"] == "FailedOver"


async def test_password_protected_redis_from_secrets(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    """Passwords come from passwordSecretRef; the replica authenticates with its primary's (masterauth)."""
    import redis.asyncio as aioredis

    (_, p1), (_, p2) = redis_factory(), redis_factory()
    for port, pw in ((p1, "s3cret-1"), (p2, "s3cret-2")):
        client = aioredis.Redis(port=port)  # (the fixture's readiness PING needs no password)
        await client.config_set("requirepass", pw)
        await client.aclose()
    for region, pw in (("region1", "s3cret-1"), ("region2", "s3cret-2")):
        run_kubectl(
            kubectl, "-n", namespace, "create", "secret", "generic", f"redis-{region}", f"--from-literal=password={pw}"
        )
    manifest = testing.pair_manifest("pair", {"region1": p1, "region2": p2})
    for r in manifest["spec"]["regions"]:
        r["redis"]["passwordSecretRef"] = {"name": f"redis-{r['name']}"}
    operator()
    apply(kubectl, namespace, manifest)
    await healthy(kube, namespace)
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})

    async def switched() -> bool:
        st = (await testing.get_pair(kube, namespace, "pair")).get("status") or {}
        return st.get("activeRegion") == "region2" and st.get("phase") == "Healthy"

    await testing.wait_for("switchover to region2 with passwords", switched, timeout=20)


async def test_every_service_of_the_pair_follows_a_switchover_in_its_order(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    """spec.services: the API's Service and a broker's, which selects the active region's broker
    pods (its own `app` label over the region's): both move, in the spec's order, recorded in
    status.services and one Routed Event."""
    mqtt = testing.service_manifest("mqtt", app="emqx")
    run_kubectl(kubectl, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(mqtt))
    services = [{"name": "region-api"}, {"name": "mqtt", "selector": {"app": "emqx"}}]
    await start_pair(kubectl, namespace, kube, redis_factory, operator, services=services)
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})

    async def moved() -> bool:
        st = await testing.get_status(kube, namespace, "pair")
        return st.active_region == "region2" and [s.region for s in st.services] == ["region2", "region2"]

    await testing.wait_for("both Services on region2", moved, timeout=20)
    assert await kube.service_selector(namespace, "mqtt") == {"app": "emqx", "tier0.dev/region": "region2"}
    assert await kube.service_selector(namespace, "region-api") == {"app": "region-api", "tier0.dev/region": "region2"}
    st = await testing.get_status(kube, namespace, "pair")
    assert [s.name for s in st.services] == ["region-api", "mqtt"]
    api, broker = st.services
    assert api.routed_at is not None and broker.routed_at is not None and api.routed_at <= broker.routed_at

    async def routed() -> list[dict[str, object]]:
        return [e for e in await events(kube, namespace, "Routed") if "region2" in str(e.get("message"))]

    (event,) = await testing.wait_for("a Routed Event", routed, timeout=10)
    assert str(event["message"]).startswith("region-api, mqtt routed to region2, in this order"), event
