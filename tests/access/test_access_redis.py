"""Redis's ACL users (tier0_services.access.redis) on the real redis-server: each role can do what
its component does and nothing of what it must not.

What is tested: a connection without AUTH may only PING; the applications' user serves the region
API and writes through the ingest worker's store and the activity consumer's store, resolves the
primary, and is refused administration (FLUSHALL, CONFIG SET, REPLICAOF, KEYS, ACL, MONITOR,
SHUTDOWN); the operator's user probes, sets the write guard, pauses, demotes and promotes, and is
refused data and flushing; two Redis with the users replicate as `tier0-replication` (masteruser)
when the operator sends REPLICAOF without a password; the replication user reads no key; the AI
features' vector index (RediSearch, FT.*) works as the applications' user.
"""

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import numpy as np
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from redis.exceptions import AuthenticationError, NoPermissionError

from tier0_contract import keys
from tier0_contract import regionpair as rp
from tier0_dev import programs
from tier0_dev.procs import Process
from tier0_operator.decide import Guard
from tier0_operator.redisops import RegionRedis
from tier0_services import connect, primary
from tier0_services.access import redis as redis_access
from tier0_services.activity.store import ActivityStore
from tier0_services.ai import vectors
from tier0_services.ai.vector_index import IndexSpec, VectorIndex
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings
from tier0_services.ingest import batch, store
from tier0_simulators import fleet
from tier0_simulators.users import Population

pytestmark = pytest.mark.integration

RedisFactory = Callable[..., tuple[Process, int]]


def password_of(secrets: programs.Secrets, user: str) -> str:
    return (secrets.dir("redis") / redis_access.SECRET_KEYS[user]).read_text()


def as_user(port: int, secrets: programs.Secrets, user: str) -> Any:
    """redis.asyncio client authenticated as `user` (typed Any: redis-py's stubs mix sync and async)."""
    return aioredis.Redis(port=port, username=user, password=password_of(secrets, user))


async def test_a_connection_without_auth_may_only_ping(
    redis_factory: RedisFactory, local_secrets: programs.Secrets
) -> None:
    _, port = redis_factory(secrets=local_secrets)
    anonymous: Any = aioredis.Redis(port=port)
    assert await anonymous.ping()
    for command in (("GET", "x"), ("INFO",), ("CONFIG", "GET", "*"), ("FLUSHALL",)):
        with pytest.raises(NoPermissionError):
            await anonymous.execute_command(*command)
    with pytest.raises(AuthenticationError):
        await aioredis.Redis(port=port, username=redis_access.APP, password="wrong").ping()
    await anonymous.aclose()


async def test_the_applications_user_runs_the_applications_and_nothing_more(
    redis_factory: RedisFactory, local_secrets: programs.Secrets
) -> None:
    _, port = redis_factory(secrets=local_secrets)
    app_user = as_user(port, local_secrets, redis_access.APP)
    # The ingest worker's store (its Lua script, dead letters, counters).
    rng, now = random.Random(1), time.time()
    messages = [
        (d.topic.encode(), orjson.dumps(fleet.payload(d, 0, fleet.timestamp(now - 5), rng)))
        for d in (fleet.device(i) for i in range(20))
    ]
    prepared = batch.prepare([*messages, (b"og/field/bad", b"{")], now)
    applied = await store.Store(app_user).apply(prepared)
    assert (applied.stored, applied.invalid) == (20, 1)
    assert await store.Store(app_user).refresh_active_devices(now, 60) == 20
    # The activity consumer's store (a sync client).
    sync_user = redis.Redis(port=port, username=redis_access.APP, password=password_of(local_secrets, redis_access.APP))
    msg = Population(5, 10, seed=1).tick(datetime.now(UTC))
    assert ActivityStore(sync_user).apply(msg, msg.model_dump_json().encode())[0] == "stored"
    # Finding the primary (ROLE, GET pair:epoch, CONFIG GET min-replicas-to-write).
    auth = connect.RedisAuth(redis_access.APP, password_of(local_secrets, redis_access.APP))
    finder = primary.AsyncPrimary([f"redis://127.0.0.1:{port}/0"], auth=auth)
    choice = await finder.resolve()
    assert choice.endpoint == 0 and choice.observation is not None
    assert choice.observation.min_replicas_to_write == 0
    await finder.aclose()
    # The region API over this Redis as that user.
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{port}/0",
        redis_username=redis_access.APP,
        redis_password_file=local_secrets.dir("redis") / redis_access.SECRET_KEYS[redis_access.APP],
    )
    app = create_app(settings)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as api:
        for path in ("/ready", "/api/status", "/api/devices/active", "/api/users/active", "/api/devices/alerts"):
            answer = await api.get(path)
            assert answer.status_code == 200, (path, answer.text)
        assert (await api.get("/api/status")).json()["role"] == "primary"
    # ... and nothing of administration.
    for command in (
        ("FLUSHALL",),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("REPLICAOF", "127.0.0.1", "1"),
        ("KEYS", "*"),
        ("ACL", "LIST"),
        ("MONITOR",),
        ("SHUTDOWN", "NOSAVE"),
        ("CLIENT", "KILL", "ID", "1"),
    ):
        with pytest.raises(NoPermissionError):
            await app_user.execute_command(*command)
    await app_user.aclose()
    sync_user.close()


async def test_the_operators_user_drives_replication_and_reads_no_data(
    redis_factory: RedisFactory, local_secrets: programs.Secrets
) -> None:
    _, p_port = redis_factory(secrets=local_secrets)
    _, r_port = redis_factory(secrets=local_secrets)
    writer = as_user(p_port, local_secrets, redis_access.APP)
    await writer.set("region1:status", "active")
    password = (local_secrets.dir("redis") / redis_access.SECRET_KEYS[redis_access.OPERATOR]).read_text()

    def endpoint(port: int) -> rp.RedisEndpoint:
        return rp.RedisEndpoint(host="127.0.0.1", port=port, username=redis_access.OPERATOR)

    p = RegionRedis("region1", endpoint(p_port), password, 1.0)
    r = RegionRedis("region2", endpoint(r_port), password, 1.0)
    http = aiohttp.ClientSession()
    try:
        assert (await p.probe(None, http)).role == "primary"
        await p.apply_guard(Guard("region1", epoch=1, min_replicas_to_write=0, min_replicas_max_lag=2))
        await r.replicaof(p)  # no CONFIG SET masterauth: the server replicates as tier0-replication
        replica = as_user(r_port, local_secrets, redis_access.APP)
        for _ in range(100):
            if await replica.get("region1:status") == b"active":
                break
            await asyncio.sleep(0.05)
        assert await replica.get("region1:status") == b"active"
        probe = await r.probe(None, http)
        assert probe.role == "replica" and probe.link_up
        await p.pause_writes(100)
        await p.unpause()
        await r.promote()
        await r.take_primary(2, 0, 2)
        assert (await r.probe(None, http)).role == "primary"
        for command in (("FLUSHALL",), ("GET", "region1:status"), ("SET", "other", "1"), ("KEYS", "*")):
            with pytest.raises(NoPermissionError):
                await p.client.execute_command(*command)  # type: ignore[no-untyped-call]
        assert await p.client.get(keys.PAIR_EPOCH) == "1"
        await replica.aclose()
    finally:
        await http.close()
        await p.close()
        await r.close()
        await writer.aclose()


async def test_the_replication_user_replicates_and_reads_nothing(
    redis_factory: RedisFactory, local_secrets: programs.Secrets
) -> None:
    _, port = redis_factory(secrets=local_secrets)
    replication = as_user(port, local_secrets, redis_access.REPLICATION)
    assert await replication.ping()
    for command in (("GET", "x"), ("INFO",), ("SET", "x", "1")):
        with pytest.raises(NoPermissionError):
            await replication.execute_command(*command)
    await replication.aclose()


async def test_the_vector_index_works_as_the_applications_user(
    redis_search_factory: RedisFactory, local_secrets: programs.Secrets
) -> None:
    _, port = redis_search_factory(secrets=local_secrets)
    app_user = as_user(port, local_secrets, redis_access.APP)
    index = VectorIndex(
        app_user,
        IndexSpec("t:item:", "t:ids", "t:version", "idx:t", ("model",), 1000, "test catalog", "items", "TEST_MAX"),
        use_ft=True,
    )
    matrix = np.eye(8, dtype=np.float32)
    await index.upsert([(f"i{n}", {"embedding": vectors.to_bytes(v), "model": "m"}) for n, v in enumerate(matrix)])
    found, backend = await index.search(matrix[3], 1, {"model": "m"})
    assert backend == "redisearch" and found[0][0] == "i3"
    await app_user.aclose()


async def test_the_primary_log_line_hides_a_password_given_in_the_url(
    redis_factory: RedisFactory, local_secrets: programs.Secrets, caplog: pytest.LogCaptureFixture
) -> None:
    """Reproduction of issue 17 ("the Redis password is in the logs"): the workers' INFO line
    `primary: redis://:PASSWORD@...` on every primary change. A URL given by hand may still hold a
    password; the line shows the endpoint, never the password."""
    _, port = redis_factory(secrets=local_secrets)
    password = password_of(local_secrets, redis_access.APP)
    finder = primary.AsyncPrimary([f"redis://{redis_access.APP}:{password}@127.0.0.1:{port}/0"])
    with caplog.at_level("INFO", logger="tier0.primary"):
        choice = await finder.resolve()
    await finder.aclose()
    assert choice.endpoint == 0
    assert f"primary: redis://{redis_access.APP}:***@127.0.0.1:{port}/0" in caplog.text
    assert password not in caplog.text
