"""Request and response models of the AI endpoints (`/api/images/*`, `/api/diagnostics/*`).

Shapes follow the seeds (`question`, `answer`, `timestamp` for a query) and add what a grounded
answer needs: `mode` (how it was answered), `citations` (the passages used), `data` (the exact
figures of an aggregation) and `fallback` (why a provider was skipped), the same for every provider.
"""

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from tier0_services.api.schemas import SITE_ID_PATTERN

Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=SITE_ID_PATTERN)]


class ImageSearch(BaseModel):
    query: Annotated[str, Field(min_length=1, max_length=1000)]
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    site_id: Ident | None = None
    device_type: Ident | None = None


class ImageInfo(BaseModel):
    image_id: str
    site_id: str
    device_type: str
    description: str
    tags: list[str]
    mode: str
    """`image` (pixels embedded) or `caption` (caption and metadata embedded)."""


class ImageHit(ImageInfo):
    rank: int
    score: float
    """Cosine similarity of the query and the image's embedding."""


class ImageSearchResponse(BaseModel):
    query: str
    mode: Literal["image", "caption"]
    model: str
    backend: Literal["redisearch", "numpy"]
    """`redisearch` (FT.SEARCH KNN: Redis Stack or Redis 8's query engine) or `numpy` (exact scan of
    the same stored vectors, for a Redis without the module); both return the same neighbours."""
    count: int
    results: list[ImageHit]
    timestamp: datetime


class ImageList(BaseModel):
    count: int
    images: list[ImageInfo]
    timestamp: datetime


class SiteImages(ImageList):
    site_id: str


class ImageUpload(BaseModel):
    image_id: Annotated[str, Field(min_length=1, max_length=128, pattern=SITE_ID_PATTERN)]
    site_id: Ident
    device_type: Ident
    description: Annotated[str, Field(min_length=1, max_length=1000)]
    tags: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=32)] = []
    image_base64: Annotated[str | None, Field(max_length=8_000_000)] = None
    """PNG or JPEG bytes, base64; embedded as pixels when the provider can (Cohere)."""

    @field_validator("image_base64")
    @classmethod
    def _is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("image_base64 is not valid base64") from exc
        return value

    def pixels(self) -> bytes | None:
        return base64.b64decode(self.image_base64) if self.image_base64 else None


class ImageIngest(BaseModel):
    samples: bool = False
    """Ingest the labelled sample catalog (generated pictures)."""
    images: Annotated[list[ImageUpload], Field(max_length=96)] = []


class ImageIngestResponse(BaseModel):
    ingested: int
    mode: Literal["image", "caption"]
    model: str
    timestamp: datetime


class DiagnosticsQuestion(BaseModel):
    question: Annotated[str, Field(min_length=1, max_length=2000)]
    top_k: Annotated[int, Field(ge=1, le=10)] = 4


class CitationOut(BaseModel):
    ref: int
    """The `[n]` marker in the answer."""
    passage_id: str
    doc_id: str
    title: str
    source: str
    text: str
    score: float


class ProviderInfo(BaseModel):
    kind: str
    embedder: str
    answerer: str
    reranker: str | None


class EvidenceOut(BaseModel):
    """Which data answered (every answer has one)."""

    source: Literal["logs", "live", "documents", "none"]
    """`logs`: exact access-log aggregates; `live`: the live telemetry keys; `documents`: the
    cited passages; `none`: nothing supports an answer (an abstention)."""
    query: str | None
    """The Redis commands that computed the figures (`logs`/`live`)."""
    covers: dict[str, Any]
    """What that data holds: the logs' time span, the region's sites, the documents' titles."""


class DiagnosticsAnswer(BaseModel):
    question: str
    answer: str
    mode: Literal["aggregation", "retrieval", "abstain"]
    citations: list[CitationOut]
    data: dict[str, Any] | None
    evidence: EvidenceOut
    provider: ProviderInfo
    fallback: str | None
    timestamp: datetime


class ErrorIPs(BaseModel):
    status_code: int
    total: int
    top_ips: list[dict[str, Any]]
    timestamp: datetime


class DocumentIn(BaseModel):
    doc_id: Annotated[str, Field(min_length=1, max_length=128, pattern=SITE_ID_PATTERN)]
    title: Annotated[str, Field(min_length=1, max_length=300)]
    text: Annotated[str, Field(min_length=1, max_length=200_000)]
    tags: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=32)] = []


class DocumentAdded(BaseModel):
    doc_id: str
    passages: int
    changed: bool
    timestamp: datetime


class LogImportResponse(BaseModel):
    imported: int
    rejected: int
    errors: list[str]
    timestamp: datetime
