"""Diagnostics endpoints of the seeds (`/api/diagnostics/*`): grounded questions
(`ai.diagnostics`), exact access-log aggregates and log import (`ai.logs.store`), the document
corpus (`ai.documents`)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from tier0_services.ai import vector_index
from tier0_services.ai.answers import QueryResult
from tier0_services.ai.providers import ProviderUnavailableError
from tier0_services.ai.rag.corpus import Document
from tier0_services.ai.runtime import AIDep, AIRuntime
from tier0_services.api import errors
from tier0_services.api.ai_models import (
    CitationOut,
    DiagnosticsAnswer,
    DiagnosticsQuestion,
    DocumentAdded,
    DocumentIn,
    ErrorIPs,
    EvidenceOut,
    LogImportResponse,
    ProviderInfo,
)
from tier0_services.api.deps import Authorized

router = APIRouter(prefix="/api/diagnostics", tags=["diagnostics"])
Limit = Annotated[int, Query(ge=1, le=1000)]
MAX_IMPORT_BYTES = 50 * 1024 * 1024
# Exactly a status code: not `400.0`, `0400` or `"400 "`, which a lax int would turn into 400.
STATUS_CODE_PATTERN = r"^[1-5][0-9]{2}$"


def _provider(ai: AIRuntime) -> ProviderInfo:
    p = ai.providers
    return ProviderInfo(
        kind=p.kind,
        embedder=p.embedder.name,
        answerer=p.answerer.name,
        reranker=p.reranker.name if p.reranker else None,
    )


def _answer(result: QueryResult, ai: AIRuntime) -> DiagnosticsAnswer:
    return DiagnosticsAnswer(
        question=result.question,
        answer=result.answer,
        mode=result.mode,
        citations=[CitationOut(**vars(c)) for c in result.citations],
        data=result.data,
        evidence=EvidenceOut(**vars(result.evidence)),
        provider=_provider(ai),
        fallback=result.fallback,
        timestamp=datetime.now(UTC),
    )


@router.post("/query", responses=errors.responses(503))
async def query(request: DiagnosticsQuestion, ai: AIDep) -> DiagnosticsAnswer:
    """Answer a question from the logs (exact aggregates) or the documents (cited passages);
    abstain when neither supports an answer."""
    try:
        result = await ai.diagnostics.query(request.question, request.top_k)
    except ProviderUnavailableError as exc:
        raise errors.UnavailableError(str(exc)) from exc
    return _answer(result, ai)


@router.get("/logs/errors/{code}", responses=errors.responses(503))
async def errors_by_code(
    code: Annotated[str, Path(pattern=STATUS_CODE_PATTERN, description="HTTP status code: three digits, 100-599")],
    ai: AIDep,
    limit: Limit = 10,
) -> ErrorIPs:
    """The client IPs that most often got this status code, with exact counts."""
    found = await ai.logs.errors_for(int(code), limit)
    return ErrorIPs(**found, timestamp=datetime.now(UTC))


@router.get("/logs/stats", responses=errors.responses(503))
async def log_stats(ai: AIDep) -> dict[str, object]:
    """Request counts by status code, class, method and day; latency mean and max; unique IPs."""
    return {**await ai.logs.stats(), "timestamp": datetime.now(UTC).isoformat()}


@router.get("/logs/summary", responses=errors.responses(503))
async def log_summary(ai: AIDep, limit: Annotated[int, Query(ge=1, le=50)] = 5) -> dict[str, object]:
    """Error rate, top error codes with their top IPs, top (error) paths and the latest errors."""
    return {**await ai.logs.summary(limit), "timestamp": datetime.now(UTC).isoformat()}


@router.post("/logs/import", dependencies=[Authorized], responses=errors.responses(401, 403, 503))
async def import_logs(
    ai: AIDep,
    body: Annotated[str, Body(media_type="text/plain", max_length=MAX_IMPORT_BYTES)] = "",
) -> LogImportResponse:
    """Import access-log lines (combined log format and/or JSON lines) into the aggregates.
    Unreadable lines are counted and sampled in `errors`, never fail the import."""
    result = await ai.logs.import_lines(body.splitlines())
    return LogImportResponse(
        imported=result.imported, rejected=result.rejected, errors=result.errors, timestamp=datetime.now(UTC)
    )


@router.post("/documents", dependencies=[Authorized], responses=errors.responses(401, 403, 409, 503))
async def add_document(request: DocumentIn, ai: AIDep) -> DocumentAdded:
    """Add (or replace) a document of the corpus questions are answered from. 409 when its new
    passages would take the corpus past its bound (nothing is stored then)."""
    doc = Document(doc_id=request.doc_id, title=request.title, body=request.text, tags=tuple(request.tags))
    try:
        passages, changed = await ai.documents.add(doc)
    except ProviderUnavailableError as exc:
        raise errors.UnavailableError(str(exc)) from exc
    except vector_index.CatalogFullError as exc:
        # 409, not 413: the body is within its limits; the corpus's state refuses it.
        raise errors.ConflictError(str(exc)) from exc
    return DocumentAdded(doc_id=doc.doc_id, passages=passages, changed=changed, timestamp=datetime.now(UTC))


@router.get("/documents", responses=errors.responses(503))
async def list_documents(ai: AIDep) -> dict[str, object]:
    """The corpus: each document with its title, source and number of passages."""
    docs = await ai.corpus.documents()
    return {"count": len(docs), "documents": docs, "timestamp": datetime.now(UTC).isoformat()}
