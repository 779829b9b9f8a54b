"""Request and response models of the AI endpoints (`/api/images/*`, `/api/diagnostics/*`).

Shapes follow the seeds (`question`, `answer`, `timestamp` for a query) and add what a grounded
answer needs: `mode` (how it was answered), `citations` (the passages used), `data` (the exact
figures of an aggregation) and `fallback` (why a provider was skipped), the same for every provider.
"""

import base64
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from tier0_services.api.schemas import INTEGER_ONLY, SITE_ID_PATTERN, not_blank

Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=SITE_ID_PATTERN)]

# Request bodies are strict: `true` is not a count, `0` is not a boolean, unknown fields are refused
# (a misspelt `topk` would otherwise be silently ignored).
_REQUEST = ConfigDict(extra="forbid")

IMAGE_BASE64_PATTERN = (
    r"^(?:iVBORw0KGg[o-r][A-Za-z0-9+/]|/9j/)(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)
"""Base64 of a PNG (signature 89 50 4E 47 0D 0A 1A 0A) or a JPEG (FF D8 FF): what an upload may be,
spelled as a pattern so that the OpenAPI schema says it too."""
_IMAGE_BASE64 = re.compile(IMAGE_BASE64_PATTERN)


class ImageSearch(BaseModel):
    model_config = _REQUEST
    query: Annotated[str, not_blank(1000)]
    top_k: Annotated[int, Field(ge=1, le=100), INTEGER_ONLY] = 5
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
    model_config = _REQUEST
    image_id: Annotated[str, Field(min_length=1, max_length=128, pattern=SITE_ID_PATTERN)]
    site_id: Ident
    device_type: Ident
    description: Annotated[str, not_blank(1000)]
    tags: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=32)] = []
    image_base64: Annotated[
        str | None, Field(min_length=4, max_length=8_000_000, json_schema_extra={"pattern": IMAGE_BASE64_PATTERN})
    ] = None
    """PNG or JPEG bytes, base64; embedded as pixels when the provider can (Cohere)."""

    @field_validator("image_base64")
    @classmethod
    def _is_image(cls, value: str | None) -> str | None:
        # The pattern checked here rather than by `Field(pattern=)`, to say what is wrong in words.
        if value is not None and not _IMAGE_BASE64.match(value):
            raise ValueError("image_base64 is not base64 of a PNG or JPEG image")
        return value

    def pixels(self) -> bytes | None:
        return base64.b64decode(self.image_base64) if self.image_base64 else None


class ImageIngest(BaseModel):
    model_config = _REQUEST
    samples: StrictBool = False
    """Ingest the labelled sample catalog (generated pictures)."""
    images: Annotated[list[ImageUpload], Field(max_length=96)] = []


class ImageIngestResponse(BaseModel):
    ingested: int
    mode: Literal["image", "caption"]
    model: str
    timestamp: datetime


class DiagnosticsQuestion(BaseModel):
    model_config = _REQUEST
    question: Annotated[str, not_blank(2000)]
    top_k: Annotated[int, Field(ge=1, le=10), INTEGER_ONLY] = 4


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
    route: dict[str, Any] | None = None
    """How the question was routed: each family's closest route and its score (`routes`), the
    families tried (`tried`) and the one kept (`chosen`)."""


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
    model_config = _REQUEST
    doc_id: Annotated[str, Field(min_length=1, max_length=128, pattern=SITE_ID_PATTERN)]
    title: Annotated[str, not_blank(300)]
    text: Annotated[str, not_blank(200_000)]
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
