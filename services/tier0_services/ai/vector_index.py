"""Vectors stored in Redis HASHes, searched by RediSearch KNN when the module is loaded, by an
exact numpy scan of the same HASHes otherwise (plain redis-server, as here).

The numpy path keeps the matrix in process memory and reloads it only when the index's version
counter moves (every upsert bumps it), so a search costs one GET plus one matrix product.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tier0_services.ai import vectors
from tier0_services.ai.providers import Vectors

LOAD_CHUNK = 500


@dataclass(frozen=True)
class IndexSpec:
    prefix: str
    ids_key: str
    version_key: str
    index_name: str
    tag_fields: tuple[str, ...]


@dataclass
class _Snapshot:
    version: bytes | None = None
    by_dim: dict[int, tuple[list[str], Vectors, dict[str, np.ndarray[Any, Any]]]] = field(default_factory=dict)


async def redisearch_available(redis: Redis) -> bool:
    """True when the RediSearch module answers (`FT._LIST`), as in Redis Stack."""
    try:
        await redis.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
    except ResponseError:
        return False
    return True


class VectorIndex:
    def __init__(self, redis: Redis, spec: IndexSpec, use_ft: bool = False) -> None:
        self.redis = redis
        self.spec = spec
        self.use_ft = use_ft
        self._snapshot = _Snapshot()
        self._lock = asyncio.Lock()
        self._ft_dims: set[int] = set()

    @property
    def backend(self) -> str:
        return "redisearch" if self.use_ft else "numpy"

    def _ft_index(self, dim: int) -> str:
        return f"{self.spec.index_name}:{dim}"

    async def ensure_ft_index(self, dim: int) -> None:
        if not self.use_ft or dim in self._ft_dims:
            return
        cmd = vectors.create_index_command(self._ft_index(dim), self.spec.prefix, dim, self.spec.tag_fields)
        try:
            await self.redis.execute_command(*cmd)  # type: ignore[no-untyped-call]
        except ResponseError as exc:
            if "already exists" not in str(exc).lower():
                raise
        self._ft_dims.add(dim)

    async def upsert(self, items: Sequence[tuple[str, Mapping[str, str | bytes]]]) -> None:
        """Write HASHes (each mapping carries `embedding` bytes) and bump the version once."""
        if not items:
            return
        dims = {len(fields[vectors.EMBEDDING_FIELD]) // 4 for _, fields in items}
        for dim in dims:
            await self.ensure_ft_index(dim)
        async with self.redis.pipeline(transaction=True) as pipe:
            for item_id, fields in items:
                pipe.delete(self.spec.prefix + item_id)
                pipe.hset(self.spec.prefix + item_id, mapping=dict(fields))
                pipe.sadd(self.spec.ids_key, item_id)
            pipe.incr(self.spec.version_key)
            await pipe.execute()

    async def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for item_id in ids:
                pipe.delete(self.spec.prefix + item_id)
                pipe.srem(self.spec.ids_key, item_id)
            pipe.incr(self.spec.version_key)
            await pipe.execute()

    async def search(
        self, query: np.ndarray[Any, np.dtype[np.float32]], k: int, filters: Mapping[str, str | None]
    ) -> list[tuple[str, float]]:
        """(id, cosine) best first among the items whose TAG fields equal every given filter."""
        if self.use_ft:
            await self.ensure_ft_index(int(query.shape[0]))
            cmd = vectors.knn_command(self._ft_index(int(query.shape[0])), query, k, filters)
            reply = await self.redis.execute_command(*cmd)  # type: ignore[no-untyped-call]
            return vectors.parse_knn_reply(reply, self.spec.prefix)
        snapshot = await self._current()
        entry = snapshot.by_dim.get(int(query.shape[0]))
        if entry is None:
            return []
        ids, matrix, tags = entry
        mask = np.ones(len(ids), dtype=bool)
        for name, value in filters.items():
            if value:
                mask &= tags[name] == value
        return [(ids[i], score) for i, score in vectors.top_k(matrix, query, k, mask)]

    async def _current(self) -> _Snapshot:
        version = await self.redis.get(self.spec.version_key)
        if version == self._snapshot.version and self._snapshot.version is not None:
            return self._snapshot
        async with self._lock:
            version = await self.redis.get(self.spec.version_key)
            if version != self._snapshot.version or version is None:
                self._snapshot = await self._load(version)
            return self._snapshot

    async def _load(self, version: bytes | None) -> _Snapshot:
        ids = sorted(m.decode() for m in await self.redis.smembers(self.spec.ids_key))  # type: ignore[misc]
        fields = [vectors.EMBEDDING_FIELD, *self.spec.tag_fields]
        rows: dict[int, tuple[list[str], list[np.ndarray[Any, Any]], dict[str, list[str]]]] = {}
        for start in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[start : start + LOAD_CHUNK]
            async with self.redis.pipeline(transaction=False) as pipe:
                for item_id in chunk:
                    pipe.hmget(self.spec.prefix + item_id, fields)
                replies = await pipe.execute()
            for item_id, values in zip(chunk, replies, strict=True):
                if not values or values[0] is None:
                    continue
                vec = vectors.from_bytes(values[0])
                dim_ids, dim_vecs, dim_tags = rows.setdefault(
                    vec.shape[0], ([], [], {name: [] for name in self.spec.tag_fields})
                )
                dim_ids.append(item_id)
                dim_vecs.append(vec)
                for name, raw in zip(self.spec.tag_fields, values[1:], strict=True):
                    dim_tags[name].append(raw.decode() if raw else "")
        snapshot = _Snapshot(version=version)
        for dim, (dim_ids, dim_vecs, dim_tags) in rows.items():
            matrix: Vectors = np.vstack(dim_vecs).astype(np.float32)
            snapshot.by_dim[dim] = (
                dim_ids,
                matrix,
                {name: np.asarray(values, dtype=object) for name, values in dim_tags.items()},
            )
        return snapshot
