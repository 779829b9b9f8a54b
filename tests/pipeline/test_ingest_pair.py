"""Ingest over a real Redis pair (primary + REPLICAOF replica): acknowledged means replicated, the
at-risk policy, writers following the current primary, one share group across both regions.

Every program is real: mosquitto, two or three redis-servers, the worker. A replica that cannot
acknowledge is a real redis-server stopped with SIGSTOP.
"""

import asyncio
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.pipeline.test_ingest import client, messages, publish, stats, wait_for
from tier0_contract import keys, pipeline
from tier0_dev import programs
from tier0_dev.procs import Process
from tier0_services import aio
from tier0_services import primary as primary_mod
from tier0_services.ingest.worker import IngestWorker

pytestmark = pytest.mark.integration

pytest_plugins = ["tests.pipeline.test_ingest"]

RedisFactory = Callable[..., tuple[Process, int]]
StartWorker = Callable[..., Awaitable[IngestWorker]]
GUARDED = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2")
"""The local stack's and the chart's primary setting: refuse writes 2 s after losing the replica."""


async def pair(redis_factory: RedisFactory, guarded: bool = False) -> tuple[Process, int, Process, int]:
    """A primary (epoch 1) and its replica, in sync; `guarded`: with GUARDED set on both (the
    replica ignores it until promoted)."""
    p_proc, p_port = redis_factory()
    r_proc, r_port = redis_factory()
    p, r = client(p_port), client(r_port)
    await p.set(keys.PAIR_EPOCH, 1)
    await r.replicaof("127.0.0.1", p_port)
    await wait_for(lambda: _synced(r))
    if guarded:
        for c in (p, r):
            await c.config_set(GUARDED[0][2:], GUARDED[1])
            await c.config_set(GUARDED[2][2:], GUARDED[3])
    return p_proc, p_port, r_proc, r_port


def urls(*ports: int) -> dict[str, Any]:
    return {"peer_redis_urls": [f"redis://127.0.0.1:{p}/0" for p in ports]}


def counter(c: Any) -> float:
    return float(c._value.get())


async def test_acknowledged_only_once_the_replica_has_it(
    mosquitto_port: int, redis_factory: RedisFactory, start_worker: StartWorker, local_secrets: programs.Secrets
) -> None:
    _, p_port, r_proc, r_port = await pair(redis_factory, guarded=True)
    p, r = client(p_port), client(r_port)
    worker = await start_worker(mosquitto_port, p_port, **urls(r_port), replica_ack_timeout=0.2)
    rng, states = random.Random(1), dict[int, int]()
    await publish(mosquitto_port, messages(range(300), 1, rng, states), local_secrets)
    await wait_for(lambda: _acked(worker, 300))
    assert (await stats(r))["stored"] == 300  # on the replica by the time the broker had the PUBACKs
    assert counter(worker.metrics.at_risk) == 0

    # The replica stops acknowledging (SIGSTOP): the worker writes but holds every PUBACK.
    os.kill(r_proc.pid, signal.SIGSTOP)
    try:
        await publish(mosquitto_port, messages(range(100), 2, rng, states), local_secrets)
        await asyncio.sleep(3)  # > min-replicas-max-lag: the primary now refuses writes (NOREPLICAS)
        assert counter(worker.metrics.acks) == 300
        assert worker.metrics.pending._value.get() == 100
        assert counter(worker.metrics.replication_holds) + counter(worker.metrics.write_errors.labels("noreplicas")) > 0
    finally:
        os.kill(r_proc.pid, signal.SIGCONT)
    await wait_for(lambda: _acked(worker, 400), timeout=20)
    await wait_for(lambda: _stored_on(r, 400))
    assert await stats(p) == await stats(r) == {"stored": 400}
    assert counter(worker.metrics.at_risk) == 0


async def test_standby_down_and_policy_accept_acks_at_risk(
    mosquitto_port: int, redis_factory: RedisFactory, start_worker: StartWorker, local_secrets: programs.Secrets
) -> None:
    _, p_port, r_proc, r_port = await pair(redis_factory, guarded=True)
    p = client(p_port)
    worker = await start_worker(mosquitto_port, p_port, **urls(r_port), replica_ack_timeout=0.2)
    r_proc.kill()  # the standby is gone
    rng, states = random.Random(2), dict[int, int]()
    await publish(mosquitto_port, messages(range(50), 1, rng, states), local_secrets)
    await asyncio.sleep(1.5)
    assert counter(worker.metrics.acks) == 0  # min-replicas-to-write 1: hold
    # The operator applies the pair's "keep accepting" policy: the primary no longer needs a replica.
    await p.config_set("min-replicas-to-write", 0)
    await wait_for(lambda: _acked(worker, 50), timeout=10)
    assert counter(worker.metrics.at_risk) == 50
    assert (await stats(p))["stored"] == 50


async def test_writes_follow_a_switchover_within_a_second(
    mosquitto_port: int, redis_factory: RedisFactory, start_worker: StartWorker, local_secrets: programs.Secrets
) -> None:
    _, p_port, _, r_port = await pair(redis_factory)
    p, r = client(p_port), client(r_port)
    worker = await start_worker(mosquitto_port, p_port, **urls(r_port), resolve_interval=0.25)
    rng, states = random.Random(3), dict[int, int]()
    await publish(mosquitto_port, messages(range(200), 1, rng, states), local_secrets)
    await wait_for(lambda: _stored_on(p, 200))
    await wait_for(lambda: _stored_on(r, 200))  # the operator promotes a caught-up replica only

    # Switchover as the operator does it: promote the replica with the next epoch, demote the old.
    await r.replicaof("NO", "ONE")
    await r.set(keys.PAIR_EPOCH, 2)
    await p.replicaof("127.0.0.1", r_port)
    await wait_for(lambda: _synced(p))
    switched = time.monotonic()
    await publish(mosquitto_port, messages(range(200), 2, rng, states), local_secrets)
    await wait_for(lambda: _stored_on(r, 400), timeout=10)
    assert time.monotonic() - switched < 2.0
    await asyncio.sleep(0.3)
    assert await stats(r) == {"stored": 400}
    assert worker.primary.choice.endpoint == 1


async def test_a_stale_master_with_a_lower_epoch_gets_no_writes(
    mosquitto_port: int, redis_factory: RedisFactory, start_worker: StartWorker, local_secrets: programs.Secrets
) -> None:
    _, p_port, _, r_port = await pair(redis_factory)
    p, r = client(p_port), client(r_port)
    worker = await start_worker(mosquitto_port, p_port, **urls(r_port), resolve_interval=0.25)
    rng, states = random.Random(4), dict[int, int]()
    await publish(mosquitto_port, messages(range(100), 1, rng, states), local_secrets)
    await wait_for(lambda: _stored_on(p, 100))
    # Promoting before the replica has it all would lose the tail (the unguarded primary acks it
    # at risk when its replica leaves mid-WAIT): not what this test is about.
    await wait_for(lambda: _stored_on(r, 100))
    # Failover around a partitioned old primary: it is never demoted and still says master.
    await r.replicaof("NO", "ONE")
    await r.set(keys.PAIR_EPOCH, 2)
    await wait_for(lambda: _writes_to(worker, 1), timeout=5)
    await publish(mosquitto_port, messages(range(100), 2, rng, states), local_secrets)
    await wait_for(lambda: _stored_on(r, 200))
    await asyncio.sleep(0.5)
    assert await stats(p) == {"stored": 100}  # nothing more on the stale one
    # Two masters at the same epoch are ambiguous: writers hold rather than pick one.
    await p.set(keys.PAIR_EPOCH, 2)
    await wait_for(lambda: _writes_to(worker, None), timeout=5)
    await publish(mosquitto_port, messages(range(10), 3, rng, states), local_secrets)
    await asyncio.sleep(1.0)
    assert (await stats(r))["stored"] == 200 and await stats(p) == {"stored": 100}
    await p.set(keys.PAIR_EPOCH, 1)
    await wait_for(lambda: _stored_on(r, 210))


async def test_one_share_group_across_regions_writes_once_into_the_primary(
    mosquitto_port: int, redis_factory: RedisFactory, start_worker: StartWorker, local_secrets: programs.Secrets
) -> None:
    _, p_port, _, r_port = await pair(redis_factory)
    p = client(p_port)
    group = f"pair-{random.randrange(1 << 30)}"
    w1 = await start_worker(mosquitto_port, p_port, **urls(r_port), region="region1", share_group=group)
    w2 = await start_worker(mosquitto_port, r_port, **urls(p_port), region="region2", share_group=group)
    rng, states = random.Random(5), dict[int, int]()
    await publish(mosquitto_port, messages(range(2000), 1, rng, states), local_secrets)
    await wait_for(lambda: _stored_on(p, 2000))
    # Acknowledged once on the replica: a moment after the primary has it (WAIT's round trip).
    await wait_for(lambda: _acked_by((w1, w2), 2000), timeout=10)
    await asyncio.sleep(0.3)
    assert await stats(p) == {"stored": 2000}
    # The standby region's worker takes its share and writes it into the active region's Redis.
    assert counter(w1.metrics.acks) > 0 and counter(w2.metrics.acks) > 0
    assert counter(w1.metrics.acks) + counter(w2.metrics.acks) == 2000
    # Both heartbeats are in the primary, each judged for its own region.
    for region in ("region1", "region2"):
        await wait_for(lambda region=region: _assessed(p, region, "ok"), timeout=5)  # type: ignore[misc]


async def _synced(r: Any) -> bool:
    return bool((await r.info("replication")).get("master_link_status") == "up")


async def _acked(worker: IngestWorker, n: int) -> bool:
    return counter(worker.metrics.acks) >= n


async def _acked_by(workers: tuple[IngestWorker, ...], n: int) -> bool:
    return sum(counter(w.metrics.acks) for w in workers) >= n


async def _stored_on(r: Any, n: int) -> bool:
    try:
        return (await stats(r)).get("stored", 0) >= n
    except OSError:
        return False


async def _assessed(r: Any, region: str, state: str) -> bool:
    raw = await r.hgetall(keys.PIPELINE_HEARTBEATS)
    secs, micros = await r.time()
    return pipeline.assess(pipeline.parse(raw), "ingest", region, secs + micros / 1e6).state == state


async def _writes_to(worker: IngestWorker, endpoint: int | None) -> bool:
    return worker.primary.choice.endpoint == endpoint


async def test_the_promoted_primary_is_found_fast_while_the_old_one_hangs(redis_factory: RedisFactory) -> None:
    """A lost region's Redis often vanishes without a reset (a pod address that no longer answers,
    here a redis-server stopped with SIGSTOP). Its probe is bounded by RECHECK_TIMEOUT once it has
    failed, and with no primary the writers look again every HOLDING_INTERVAL, so they find the
    promoted one within a fraction of a second instead of waiting out timeouts and intervals."""
    p_proc, p_port, r_proc, r_port = await pair(redis_factory)
    resolver = primary_mod.AsyncPrimary([f"redis://127.0.0.1:{p}/0" for p in (p_port, r_port)], interval=0.5)
    sync = primary_mod.SyncPrimary([f"redis://127.0.0.1:{p}/0" for p in (p_port, r_port)], interval=0.5)
    task = asyncio.create_task(resolver.run())
    try:
        assert await resolver.primary() == 0 and sync.current().endpoint == 0
        os.kill(p_proc.pid, signal.SIGSTOP)  # the active region is lost, silently
        resolver.poke()
        sync.resolve()
        await asyncio.sleep(1.2)  # their first (full-timeout) probes of it fail: now a suspect
        started = time.monotonic()
        assert (await resolver.resolve()).endpoint is None
        assert sync.resolve().endpoint is None and sync.resolve().endpoint is None
        assert time.monotonic() - started < 3 * primary_mod.RECHECK_TIMEOUT + 0.3
        r = client(r_port)
        await r.replicaof("no", "one")  # the operator promotes the standby, with a higher epoch
        await r.set(keys.PAIR_EPOCH, 2)
        promoted = time.monotonic()
        assert await asyncio.wait_for(resolver.primary(), 2) == 1
        async_took = time.monotonic() - promoted
        while sync.current().endpoint != 1:
            time.sleep(0.005)
        sync_took = time.monotonic() - promoted
        assert async_took < 0.5 and sync_took < 0.5, (async_took, sync_took)
    finally:
        os.kill(p_proc.pid, signal.SIGCONT)
        await aio.cancel_and_wait(task)
        await resolver.aclose()
