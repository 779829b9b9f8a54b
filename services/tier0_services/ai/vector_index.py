"""Vectors stored in Redis HASHes, searched by RediSearch KNN when the query engine is loaded
(Redis Stack, Redis 8), by an exact numpy scan of the same HASHes otherwise (plain redis-server).
Both are exact (the RediSearch field is FLAT), so they return the same neighbours.

The numpy path keeps the matrix in process memory and reloads it only when the index's version
counter moves (every upsert bumps it), so a search costs one GET plus one matrix product.

Each index holds at most `max_items` ids: an upsert that would add ids beyond it is refused whole
(`CatalogFullError`), checked and written in one WATCH/MULTI, so concurrent uploads cannot overshoot.
"""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import ReadOnlyError, ResponseError, WatchError

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
    max_items: int
    """The contract's bound on the ids (`keys.IMAGES_MAX`, ...); a VectorIndex may be given another."""
    catalog: str
    """What the refusal calls the store and its items: `image catalog`, `images`."""
    items: str
    bound_setting: str
    """The setting that changes the bound, named in the refusal."""


class CatalogFullError(Exception):
    """An upsert would take the index past its bound; nothing was written (the routers answer 409)."""


@dataclass
class _Snapshot:
    version: bytes | None = None
    by_dim: dict[int, tuple[list[str], Vectors, dict[str, np.ndarray[Any, Any]]]] = field(default_factory=dict)


async def redisearch_available(redis: Redis) -> bool:
    """True when the query engine answers (`FT._LIST`): Redis Stack, or Redis 8 with it built in."""
    try:
        await redis.execute_command("FT._LIST")  # type: ignore[no-untyped-call]
    except ResponseError:
        return False
    return True


Backend = Literal["redisearch", "numpy"]


class VectorIndex:
    """`use_ft=None` probes the server on first use (so an API started while Redis was down still
    finds the module later); `model` restricts the RediSearch index to that model's vectors
    (`FILTER @model==...`), so changing the model or its dimension rebuilds the index."""

    def __init__(
        self,
        redis: Redis,
        spec: IndexSpec,
        use_ft: bool | None = None,
        model: str | None = None,
        max_items: int | None = None,
    ) -> None:
        self.redis = redis
        self.spec = spec
        self.max_items = spec.max_items if max_items is None else max_items
        self.use_ft = use_ft
        self.model = model
        self._snapshot = _Snapshot()
        self._lock = asyncio.Lock()
        self._ft_dim: int | None = None

    @property
    def backend(self) -> Backend:
        return "redisearch" if self.use_ft else "numpy"

    async def _probe(self) -> bool:
        if self.use_ft is None:
            self.use_ft = await redisearch_available(self.redis)
        return self.use_ft

    def _wanted(self, dim: int) -> vectors.IndexSchema:
        filter_expr = vectors.model_filter(self.model) if self.model else None
        return vectors.IndexSchema(dim=dim, filter=filter_expr)

    async def _ft_schema(self) -> vectors.IndexSchema | None:
        try:
            reply = await self.redis.execute_command("FT.INFO", self.spec.index_name)  # type: ignore[no-untyped-call]
        except ResponseError as exc:
            if vectors.is_unknown_index(exc):
                return None
            raise
        return vectors.parse_index_schema(reply)

    async def ensure_ft_index(self, dim: int) -> bool:
        """Make the index match (dimension, model filter), migrating it when either changed: drop
        the index (never the HASHes) and create it again, then wait until the stored HASHes are
        indexed. False when it cannot be used: no module, or a replica whose primary has not made it."""
        if not await self._probe():
            return False
        if self._ft_dim == dim:
            return True
        wanted = self._wanted(dim)
        current = await self._ft_schema()
        if current != wanted:
            try:
                if current is not None:
                    await self.redis.execute_command("FT.DROPINDEX", self.spec.index_name)  # type: ignore[no-untyped-call]
                cmd = vectors.create_index_command(
                    self.spec.index_name, self.spec.prefix, dim, self.spec.tag_fields, wanted.filter
                )
                await self.redis.execute_command(*cmd)  # type: ignore[no-untyped-call]
            except ReadOnlyError:
                return False
            except ResponseError as exc:
                # Another API process migrated it at the same moment: check what it made.
                if not (vectors.is_unknown_index(exc) or "already exists" in str(exc).lower()):
                    raise
                if await self._ft_schema() != wanted:
                    return False
        await self._wait_indexed()
        self._ft_dim = dim
        return True

    async def _wait_indexed(self, timeout_s: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            reply = await self.redis.execute_command("FT.INFO", self.spec.index_name)  # type: ignore[no-untyped-call]
            if not vectors.is_indexing(reply):
                return
            await asyncio.sleep(0.01)

    async def check_room(self, ids: Sequence[str], remove: Sequence[str] = (), client: Redis | None = None) -> None:
        """Raise `CatalogFullError` when adding `ids` (and removing `remove`) would take the index
        past `max_items`. Replacing stored ids never counts, so updates work in a full index."""
        redis = self.redis if client is None else client
        added = list(dict.fromkeys(ids))
        removed = [i for i in dict.fromkeys(remove) if i not in set(ids)]
        held = int(await redis.scard(self.spec.ids_key))  # type: ignore[misc]
        new = len(added) - sum(await redis.smismember(self.spec.ids_key, added)) if added else 0  # type: ignore[misc]
        gone = sum(await redis.smismember(self.spec.ids_key, removed)) if removed else 0  # type: ignore[misc]
        if new > gone and held - gone + new > self.max_items:
            s = self.spec
            raise CatalogFullError(
                f"the {s.catalog} has no room: it holds {held} {s.items}, at most {self.max_items} "
                f"({s.bound_setting}), and this upload would add {new - gone} more, so nothing was stored. "
                f"Replacing {s.items} already stored under the same ids still works."
            )

    async def upsert(self, items: Sequence[tuple[str, Mapping[str, str | bytes]]], remove: Sequence[str] = ()) -> None:
        """Write HASHes (each mapping carries `embedding` bytes), delete the ids in `remove`, and
        bump the version once, all or nothing; `CatalogFullError` when past the bound."""
        if not items:
            return
        dims = {len(fields[vectors.EMBEDDING_FIELD]) // 4 for _, fields in items}
        if len(dims) == 1:
            await self.ensure_ft_index(dims.pop())
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                # WATCH the ids: a concurrent upsert that adds ids between the check and EXEC makes
                # EXEC fail and this one check again (some writer always succeeds, so it ends).
                await pipe.watch(self.spec.ids_key)
                await self.check_room([item_id for item_id, _ in items], remove, client=pipe)
                pipe.multi()  # type: ignore[no-untyped-call]
                for item_id in remove:
                    pipe.delete(self.spec.prefix + item_id)
                    pipe.srem(self.spec.ids_key, item_id)
                for item_id, fields in items:
                    pipe.delete(self.spec.prefix + item_id)
                    pipe.hset(self.spec.prefix + item_id, mapping=dict(fields))
                    pipe.sadd(self.spec.ids_key, item_id)
                pipe.incr(self.spec.version_key)
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return

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
    ) -> tuple[list[tuple[str, float]], Backend]:
        """(id, cosine) best first among the items whose TAG fields equal every given filter, and
        the backend that answered."""
        dim = int(query.shape[0])
        if await self.ensure_ft_index(dim):
            # The index holds only `self.model`'s vectors: a model filter equal to it is implied.
            tags = {name: value for name, value in filters.items() if not (name == "model" and value == self.model)}
            cmd = vectors.knn_command(self.spec.index_name, query, k, tags)
            reply = await self.redis.execute_command(*cmd)  # type: ignore[no-untyped-call]
            return vectors.parse_knn_reply(reply, self.spec.prefix), "redisearch"
        return await self.exact_search(query, k, filters), "numpy"

    async def exact_search(
        self, query: np.ndarray[Any, np.dtype[np.float32]], k: int, filters: Mapping[str, str | None]
    ) -> list[tuple[str, float]]:
        """The numpy path: an exact scan of the same stored vectors (cached until the version moves)."""
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
        # A whole read, fine: the ids are bounded (`max_items`, checked on every upsert).
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
