"""What every answer to `POST /api/diagnostics/query` is made of, whichever reader gave it (the
documents, the access logs, the live telemetry): the text, its mode, its citations and its
`Evidence`. One place, so the readers and the orchestrator (`diagnostics`) share one shape and the
API maps it once (`api.routers.diagnostics`)."""

from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["aggregation", "retrieval", "abstain"]
ABSTAIN = (
    "I could not find this in the logs or the documents I hold, so I cannot answer it. "
    "Add a document that covers it (POST /api/diagnostics/documents) and ask again."
)


@dataclass(frozen=True)
class Citation:
    ref: int
    passage_id: str
    doc_id: str
    title: str
    source: str
    text: str
    score: float


@dataclass(frozen=True)
class Evidence:
    """Which data answered: an exact aggregate over the access logs (`logs`) or the live telemetry
    (`live`) with the Redis commands that computed it (`query`), cited passages (`documents`), or
    nothing (`none`, an abstention). `covers` says what that data holds (time span, sites,
    documents), so an abstention can say what it does have."""

    source: Literal["logs", "live", "documents", "none"]
    query: str | None = None
    covers: dict[str, Any] = field(default_factory=dict)
    route: dict[str, Any] | None = None
    """How the question was routed (`router.Router.describe`, the families tried, the one kept)."""


@dataclass
class QueryResult:
    question: str
    answer: str
    mode: Mode
    citations: list[Citation] = field(default_factory=list)
    data: dict[str, Any] | None = None
    fallback: str | None = None
    evidence: Evidence = field(default_factory=lambda: Evidence("none"))


def abstain_text(docs: dict[str, Any]) -> str:
    """The plain abstention, with the documents held."""
    titles = docs.get("documents") or []
    held = f" The documents I hold are: {'; '.join(titles)}." if titles else " I hold no documents yet."
    return ABSTAIN + held
