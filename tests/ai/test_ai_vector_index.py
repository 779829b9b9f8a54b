"""Both vector search paths over a real Redis: the numpy path on plain redis-server (exact, filtered
by TAG fields, reloaded when another writer bumps the version, other models and dimensions never
mixed in) and the RediSearch KNN path on redis-stack-server (the index created, filtered, migrated
when the model or the dimension changes, used from a replica, and equal to the numpy path id for id
on the same data). The RediSearch tests need `hack/install-tools.sh --redis-stack` (make tools)."""

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tier0_dev.procs import Process
from tier0_services.ai import vectors
from tier0_services.ai.vector_index import IndexSpec, VectorIndex, redisearch_available

pytestmark = pytest.mark.integration

SPEC = IndexSpec(
    "t:item:", "t:ids", "t:version", "idx:t", ("site_id", "model"), 1000, "test catalog", "items", "TEST_MAX"
)


def rows(n: int, dim: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    out: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


async def test_numpy_path_is_exact_filtered_and_reloads(redis_port: int) -> None:
    redis = Redis(port=redis_port)
    try:
        assert await redisearch_available(redis) is False
        index = VectorIndex(redis, SPEC, use_ft=False)
        matrix = rows(300, 24, seed=2)
        await index.upsert(
            [
                (f"i{n:03d}", {"embedding": vectors.to_bytes(v), "site_id": f"S{n % 3}", "model": "m1"})
                for n, v in enumerate(matrix)
            ]
        )
        query = matrix[17] + 0.05 * matrix[200]
        query = (query / np.linalg.norm(query)).astype(np.float32)
        found, backend = await index.search(query, 5, {"model": "m1"})
        assert backend == "numpy"
        brute = sorted(range(300), key=lambda i: -float(matrix[i] @ query))[:5]
        assert [i for i, _ in found] == [f"i{n:03d}" for n in brute]
        assert found[0][1] == pytest.approx(float(matrix[brute[0]] @ query), abs=1e-6)
        only, _ = await index.search(query, 50, {"model": "m1", "site_id": "S1"})
        assert len(only) == 50 and all(int(i[1:]) % 3 == 1 for i, _ in only)
        assert await index.exact_search(query, 5, {"model": "other"}) == []

        # Another writer (a second API replica) adds a closer item: the cache notices the version.
        other = VectorIndex(redis, SPEC)
        await other.upsert([("new", {"embedding": vectors.to_bytes(query), "site_id": "S9", "model": "m1"})])
        assert (await index.exact_search(query, 1, {"model": "m1"}))[0][0] == "new"
        # Vectors of another dimension live beside them and are never compared.
        await other.upsert(
            [("wide", {"embedding": vectors.to_bytes(rows(1, 48, 3)[0]), "site_id": "S9", "model": "m2"})]
        )
        assert [i for i, _ in await index.exact_search(rows(1, 48, 3)[0], 3, {})] == ["wide"]
        await other.delete(["new"])
        assert (await index.exact_search(query, 1, {"model": "m1"}))[0][0] != "new"
    finally:
        await redis.aclose()


def items(matrix: np.ndarray, model: str, offset: int = 0) -> list[tuple[str, dict[str, str | bytes]]]:
    return [
        (
            f"{model}-{offset + n:04d}",
            {"embedding": vectors.to_bytes(v), "site_id": f"S{n % 5}", "device_type": f"T{n % 3}", "model": model},
        )
        for n, v in enumerate(matrix)
    ]


SPEC3 = IndexSpec(
    "k:item:",
    "k:ids",
    "k:version",
    "idx:k",
    ("site_id", "device_type", "model"),
    1000,
    "test catalog",
    "items",
    "TEST_MAX",
)


async def ft_info(redis: Redis) -> vectors.IndexSchema | None:
    return vectors.parse_index_schema(await redis.execute_command("FT.INFO", SPEC3.index_name))  # type: ignore[no-untyped-call]


async def test_redisearch_knn_equals_exact_numpy_search_id_for_id(redis_search_port: int) -> None:
    redis = Redis(port=redis_search_port)
    try:
        assert await redisearch_available(redis) is True
        index = VectorIndex(redis, SPEC3, use_ft=None, model="m1")  # probed on first use
        matrix = rows(600, 32, seed=5)
        await index.upsert(items(matrix, "m1"))
        assert index.backend == "redisearch"
        assert await ft_info(redis) == vectors.IndexSchema(dim=32, filter='@model=="m1"')
        queries = rows(40, 32, seed=6)
        cases: list[dict[str, str | None]] = [
            {"model": "m1"},
            {"model": "m1", "site_id": "S2"},
            {"model": "m1", "device_type": "T1"},
            {"model": "m1", "site_id": "S4", "device_type": "T0"},
        ]
        compared = 0
        for n, query in enumerate(queries):
            filters = cases[n % len(cases)]
            knn, backend = await index.search(query, 10, filters)
            exact = await index.exact_search(query, 10, filters)
            assert backend == "redisearch"
            assert [i for i, _ in knn] == [i for i, _ in exact], filters
            assert [s for _, s in knn] == pytest.approx([s for _, s in exact], abs=1e-5)
            for item_id, _ in knn:
                n_item = int(item_id.split("-")[1])
                assert filters.get("site_id") in {None, f"S{n_item % 5}"}
                assert filters.get("device_type") in {None, f"T{n_item % 3}"}
            compared += len(knn)
        assert compared == 400
        # Fewer matches than k: both return exactly the matching ones.
        few, _ = await index.search(queries[0], 500, {"site_id": "S1", "device_type": "T2"})
        assert len(few) == 40 == len(await index.exact_search(queries[0], 500, {"site_id": "S1", "device_type": "T2"}))
    finally:
        await redis.aclose()


async def test_redisearch_index_migrates_when_the_model_or_dimension_changes(redis_search_port: int) -> None:
    redis = Redis(port=redis_search_port)
    try:
        old = VectorIndex(redis, SPEC3, model="m1")
        m1 = rows(50, 16, seed=1)
        await old.upsert(items(m1, "m1"))
        assert await ft_info(redis) == vectors.IndexSchema(16, '@model=="m1"')

        # A new embedding model of another dimension: the index is rebuilt for it, the HASHes stay.
        new = VectorIndex(redis, SPEC3, model="m2")
        m2 = rows(30, 24, seed=2)
        await new.upsert(items(m2, "m2"))
        assert await ft_info(redis) == vectors.IndexSchema(24, '@model=="m2"')
        found, backend = await new.search(m2[7], 5, {"model": "m2"})
        assert backend == "redisearch" and found[0][0] == "m2-0007"
        assert all(i.startswith("m2-") for i, _ in found)
        assert await redis.exists(f"{SPEC3.prefix}m1-0000") == 1

        # Same dimension, another model: rebuilt too (the index only holds the current model).
        same_dim = VectorIndex(redis, SPEC3, model="m3")
        m3 = rows(20, 24, seed=3)
        await same_dim.upsert(items(m3, "m3"))
        assert await ft_info(redis) == vectors.IndexSchema(24, '@model=="m3"')
        found, _ = await same_dim.search(m2[7], 40, {"model": "m3"})
        assert len(found) == 20 and all(i.startswith("m3-") for i, _ in found)

        # Back to the first model: its stored HASHes are indexed again, nothing re-embedded.
        back = VectorIndex(redis, SPEC3, model="m1")
        found, _ = await back.search(m1[3], 3, {"model": "m1"})
        assert found[0][0] == "m1-0003"
        assert [i for i, _ in found] == [i for i, _ in await back.exact_search(m1[3], 3, {"model": "m1"})]
    finally:
        await redis.aclose()


async def test_redisearch_from_a_replica_and_numpy_without_the_module(
    redis_search_factory: Callable[..., tuple[Process, int]], redis_port: int
) -> None:
    _, primary_port = redis_search_factory()
    _, replica_port = redis_search_factory("--replicaof", "127.0.0.1", str(primary_port))
    primary, replica, plain = Redis(port=primary_port), Redis(port=replica_port), Redis(port=redis_port)
    try:
        matrix = rows(80, 12, seed=9)
        # A replica whose primary has no index yet cannot create one: it answers from numpy.
        await VectorIndex(primary, SPEC3, use_ft=False).upsert(items(matrix, "m1"))
        for _ in range(200):
            if await replica.scard(SPEC3.ids_key) == 80:  # type: ignore[misc]
                break
            await asyncio.sleep(0.02)
        on_replica = VectorIndex(replica, SPEC3, model="m1")
        found, backend = await on_replica.search(matrix[5], 3, {"model": "m1"})
        assert backend == "numpy" and found[0][0] == "m1-0005"
        # Once the primary made the index, the replica has it too (replicated) and uses it.
        await VectorIndex(primary, SPEC3, model="m1").ensure_ft_index(12)
        for _ in range(200):
            if await ft_info_on(replica) is not None:
                break
            await asyncio.sleep(0.02)
        fresh = VectorIndex(replica, SPEC3, model="m1")
        found, backend = await fresh.search(matrix[5], 3, {"model": "m1"})
        assert backend == "redisearch" and found[0][0] == "m1-0005"
        # Plain redis-server: chosen automatically, and reported.
        numpy_only = VectorIndex(plain, SPEC3, model="m1")
        await numpy_only.upsert(items(matrix, "m1"))
        found, backend = await numpy_only.search(matrix[5], 3, {"model": "m1"})
        assert backend == "numpy" and numpy_only.backend == "numpy" and found[0][0] == "m1-0005"
    finally:
        for client in (primary, replica, plain):
            await client.aclose()


async def ft_info_on(redis: Redis) -> vectors.IndexSchema | None:
    try:
        return vectors.parse_index_schema(await redis.execute_command("FT.INFO", SPEC3.index_name))  # type: ignore[no-untyped-call]
    except ResponseError:  # unknown index until it replicates
        return None
