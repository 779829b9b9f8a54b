"""The numpy search path over vectors stored in a real redis-server: exact (equal to brute force),
filtered by TAG fields, reloaded when another writer bumps the version, vectors of another model
or dimension never mixed in. (The RediSearch path is used only where the module answers FT._LIST.)"""

import numpy as np
import pytest
from redis.asyncio import Redis

from tier0_services.ai import vectors
from tier0_services.ai.vector_index import IndexSpec, VectorIndex, redisearch_available

SPEC = IndexSpec("t:item:", "t:ids", "t:version", "idx:t", ("site_id", "model"))


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
        found = await index.search(query, 5, {"model": "m1"})
        brute = sorted(range(300), key=lambda i: -float(matrix[i] @ query))[:5]
        assert [i for i, _ in found] == [f"i{n:03d}" for n in brute]
        assert found[0][1] == pytest.approx(float(matrix[brute[0]] @ query), abs=1e-6)
        only = await index.search(query, 50, {"model": "m1", "site_id": "S1"})
        assert len(only) == 50 and all(int(i[1:]) % 3 == 1 for i, _ in only)
        assert await index.search(query, 5, {"model": "other"}) == []

        # Another writer (a second API replica) adds a closer item: the cache notices the version.
        other = VectorIndex(redis, SPEC)
        await other.upsert([("new", {"embedding": vectors.to_bytes(query), "site_id": "S9", "model": "m1"})])
        assert (await index.search(query, 1, {"model": "m1"}))[0][0] == "new"
        # Vectors of another dimension live beside them and are never compared.
        await other.upsert(
            [("wide", {"embedding": vectors.to_bytes(rows(1, 48, 3)[0]), "site_id": "S9", "model": "m2"})]
        )
        assert [i for i, _ in await index.search(rows(1, 48, 3)[0], 3, {})] == ["wide"]
        await other.delete(["new"])
        assert (await index.search(query, 1, {"model": "m1"}))[0][0] != "new"
    finally:
        await redis.aclose()
