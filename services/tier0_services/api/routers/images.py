"""Image intelligence endpoints of the seeds (`/api/images/*`) over `tier0_services.ai.images`."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from tier0_services.ai import sample_images, vector_index
from tier0_services.ai.images import StoredImage, UnknownSiteError
from tier0_services.ai.providers import ProviderUnavailableError
from tier0_services.ai.runtime import AIDep
from tier0_services.ai.sample_images import ImageMeta
from tier0_services.api import errors
from tier0_services.api.ai_models import (
    ImageHit,
    ImageInfo,
    ImageIngest,
    ImageIngestResponse,
    ImageList,
    ImageSearch,
    ImageSearchResponse,
    SiteImages,
)
from tier0_services.api.deps import Authorized
from tier0_services.api.schemas import SITE_ID_PATTERN

router = APIRouter(prefix="/api/images", tags=["images"])
SiteId = Annotated[str, Path(min_length=1, max_length=64, pattern=SITE_ID_PATTERN)]


def _info(image: StoredImage) -> ImageInfo:
    return ImageInfo(**image.meta.model_dump(), mode=image.mode)


@router.post("/search", responses=errors.responses(503))
async def search(request: ImageSearch, ai: AIDep) -> ImageSearchResponse:
    """Semantic image search: the images whose embedding is closest to the query's."""
    try:
        hits, backend = await ai.images.search(request.query, request.top_k, request.site_id, request.device_type)
    except ProviderUnavailableError as exc:
        raise errors.UnavailableError(str(exc)) from exc
    results = [
        ImageHit(**_info(hit.image).model_dump(), rank=n, score=round(hit.score, 6))
        for n, hit in enumerate(hits, start=1)
    ]
    return ImageSearchResponse(
        query=request.query,
        mode=ai.images.mode,
        model=ai.providers.embedder.name,
        backend=backend,
        count=len(results),
        results=results,
        timestamp=datetime.now(UTC),
    )


@router.get("/list", responses=errors.responses(503))
async def list_images(
    ai: AIDep, site_id: Annotated[str | None, Query(max_length=64, pattern=SITE_ID_PATTERN)] = None
) -> ImageList:
    """Every processed image with its site, device type and description."""
    images = [_info(i) for i in await ai.images.all(site_id)]
    return ImageList(count=len(images), images=images, timestamp=datetime.now(UTC))


@router.get("/site/{site_id}", responses=errors.responses(404, 503))
async def site_images(site_id: SiteId, ai: AIDep) -> SiteImages:
    """The processed images of one site (404 when the site has none)."""
    try:
        images = [_info(i) for i in await ai.images.for_site(site_id)]
    except UnknownSiteError as exc:
        raise errors.NotFoundError(str(exc)) from exc
    return SiteImages(site_id=site_id, count=len(images), images=images, timestamp=datetime.now(UTC))


@router.post("/ingest", dependencies=[Authorized], responses=errors.responses(401, 403, 409, 503))
async def ingest(request: ImageIngest, ai: AIDep) -> ImageIngestResponse:
    """Embed and store images (uploads and/or the labelled samples). Needs the bearer token.
    409 when the new ids would take the catalog past its bound (nothing is stored then)."""
    count = 0
    mode = ai.images.mode
    try:
        if request.samples and request.images:
            # Both fit or neither is stored: the samples are written before the uploads.
            ids = [s.image_id for s in sample_images.load_catalog()] + [u.image_id for u in request.images]
            await ai.images.index.check_room(ids)
        if request.samples:
            count, mode = await ai.images.ingest_samples()
        if request.images:
            items: list[tuple[ImageMeta, bytes | None]] = []
            for upload in request.images:
                meta = ImageMeta.model_validate(upload.model_dump(exclude={"image_base64"}))
                items.append((meta, upload.pixels()))
            mode = await ai.images.ingest(items)
            count += len(items)
    except ProviderUnavailableError as exc:
        raise errors.UnavailableError(str(exc)) from exc
    except vector_index.CatalogFullError as exc:
        # 409, not 413: the body is within its limits; the catalog's state refuses it.
        raise errors.ConflictError(str(exc)) from exc
    return ImageIngestResponse(ingested=count, mode=mode, model=ai.providers.embedder.name, timestamp=datetime.now(UTC))
