"""Image catalog and semantic search over it (`/api/images/*`).

Ingest embeds the pixels when the embedder can (Cohere: `"mode": "image"`) and the caption and
metadata with the local text model otherwise (`"mode": "caption"`), and stores one HASH per image
(`embedding:{image_id}`, as in the seeds). Only vectors of the current model are searched, so a
catalog ingested with one provider is never scored against another's query vectors.
"""

import asyncio
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from tier0_contract import keys
from tier0_services.ai import sample_images, vectors
from tier0_services.ai.providers import Embedder
from tier0_services.ai.sample_images import ImageMeta
from tier0_services.ai.vector_index import Backend, IndexSpec, VectorIndex

Mode = Literal["image", "caption"]
TAG_SEPARATOR = "|"

SPEC = IndexSpec(
    prefix=keys.IMAGE_EMBEDDING_PREFIX,
    ids_key=keys.IMAGE_IDS,
    version_key=keys.IMAGE_VERSION,
    index_name=keys.IMAGE_INDEX,
    tag_fields=("site_id", "device_type", "model"),
    max_items=keys.IMAGES_MAX,
    catalog="image catalog",
    items="images",
    bound_setting="TIER0_AI_IMAGES_MAX",
)
_META_FIELDS = ["site_id", "device_type", "description", "tags", "mode", "model"]


class UnknownSiteError(LookupError):
    """No catalogued image for that site (the router maps it to 404)."""


@dataclass(frozen=True)
class StoredImage:
    meta: ImageMeta
    mode: str
    model: str


@dataclass(frozen=True)
class Hit:
    image: StoredImage
    score: float


class ImageCatalog:
    def __init__(self, redis: Redis, embedder: Embedder, index: VectorIndex) -> None:
        self.redis = redis
        self.embedder = embedder
        self.index = index

    @property
    def mode(self) -> Mode:
        return "image" if self.embedder.supports_images else "caption"

    async def ingest(self, items: list[tuple[ImageMeta, bytes | None]]) -> Mode:
        """Embed and store; pixels are used only when every item has them and the model takes them.
        `CatalogFullError` (nothing stored) when the new ids would take the catalog past its bound."""
        # Checked before embedding too, so a full catalog costs no provider calls; `upsert` checks
        # again atomically with the write.
        await self.index.check_room([meta.image_id for meta, _ in items])
        mode: Mode = "image" if self.mode == "image" and all(png for _, png in items) else "caption"
        if mode == "image":
            uris = [sample_images.data_uri(png or b"") for _, png in items]
            matrix = await asyncio.to_thread(self.embedder.embed_images, uris)
        else:
            texts = [sample_images.caption(meta) for meta, _ in items]
            matrix = await asyncio.to_thread(self.embedder.embed_texts, texts, "search_document")
        rows: list[tuple[str, dict[str, str | bytes]]] = []
        for (meta, _), vector in zip(items, matrix, strict=True):
            rows.append(
                (
                    meta.image_id,
                    {
                        vectors.EMBEDDING_FIELD: vectors.to_bytes(vector),
                        "site_id": meta.site_id,
                        "device_type": meta.device_type,
                        "description": meta.description,
                        "tags": TAG_SEPARATOR.join(meta.tags),
                        "mode": mode,
                        "model": self.embedder.name,
                    },
                )
            )
        await self.index.upsert(rows)
        return mode

    async def ingest_samples(self) -> tuple[int, Mode]:
        catalog = sample_images.load_catalog()
        pngs: list[bytes | None] = (
            [sample_images.render(s) for s in catalog] if self.mode == "image" else [None for _ in catalog]
        )
        mode = await self.ingest(
            [(ImageMeta.model_validate(s.model_dump()), p) for s, p in zip(catalog, pngs, strict=True)]
        )
        return len(catalog), mode

    async def search(
        self, query: str, top_k: int, site_id: str | None = None, device_type: str | None = None
    ) -> tuple[list[Hit], Backend]:
        """The best `top_k` images for the query, and which backend searched (`redisearch`/`numpy`)."""
        matrix = await asyncio.to_thread(self.embedder.embed_texts, [query], "search_query")
        filters = {"site_id": site_id, "device_type": device_type, "model": self.embedder.name}
        found, backend = await self.index.search(matrix[0], top_k, filters)
        images = await self._fetch([image_id for image_id, _ in found])
        return [Hit(image, score) for (image_id, score) in found if (image := images.get(image_id))], backend

    async def all(self, site_id: str | None = None) -> list[StoredImage]:
        # A whole read, fine: the catalog holds at most `index.max_items` ids (`keys.IMAGES_MAX`).
        ids = sorted(m.decode() for m in await self.redis.smembers(keys.IMAGE_IDS))  # type: ignore[misc]
        images = await self._fetch(ids)
        out = [images[i] for i in ids if i in images]
        if site_id is not None:
            out = [image for image in out if image.meta.site_id == site_id]
        return out

    async def for_site(self, site_id: str) -> list[StoredImage]:
        # From the catalog itself, not a set of sites kept beside it: such a set keeps a site whose
        # images moved to another site, and grows without bound as ids are re-uploaded.
        if not (images := await self.all(site_id)):
            raise UnknownSiteError(f"no images for site {site_id!r}")
        return images

    async def _fetch(self, ids: list[str]) -> dict[str, StoredImage]:
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for image_id in ids:
                pipe.hmget(keys.image_embedding(image_id), _META_FIELDS)
            replies = await pipe.execute()
        out: dict[str, StoredImage] = {}
        for image_id, values in zip(ids, replies, strict=True):
            if values[0] is None:
                continue
            site, dtype, desc, tags, mode, model = (v.decode() if v else "" for v in values)
            meta = ImageMeta(
                image_id=image_id,
                site_id=site,
                device_type=dtype,
                description=desc,
                tags=[t for t in tags.split(TAG_SEPARATOR) if t],
            )
            out[image_id] = StoredImage(meta=meta, mode=mode, model=model)
        return out
