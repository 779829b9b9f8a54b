"""Route a question to an exact log aggregation when it asks for counts or top-N over the logs.

Pure and deliberately conservative: a question is a log question only when it names the logs'
vocabulary (IPs, requests, status codes, endpoints, error rate); "How many safety incidents..."
is not, and goes to retrieval. Anything unmatched returns None.
"""

import re
from dataclasses import dataclass
from typing import Literal

from tier0_services.ai.rag.text import words

_STATUS = re.compile(r"\b([1-5][0-9][0-9])\b")
_TOP_N = re.compile(r"\btop\s+(\d{1,3})\b")
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "twenty": 20}
LOG_WORDS = frozenset(
    "log logs request requests ip ips address addresses client clients http endpoint endpoints "
    "path paths route routes hits status traffic latency".split()
)
_TOP_WORDS = frozenset("most top frequent common busiest noisiest highest largest which".split())

Kind = Literal["top_ips", "count", "top_paths", "error_rate", "latency"]


@dataclass(frozen=True)
class LogQuery:
    kind: Kind
    status: int | None = None
    status_class: int | None = None
    """4 or 5 for "4xx"/"5xx"; with `errors_only` meaning any status >= 400."""
    errors_only: bool = False
    limit: int = 5


def _limit(question: str, tokens: list[str]) -> int:
    m = _TOP_N.search(question.lower())
    if m:
        return max(1, min(int(m.group(1)), 100))
    for i, tok in enumerate(tokens[:-1]):
        if tok == "top" and tokens[i + 1] in _NUMBER_WORDS:
            return _NUMBER_WORDS[tokens[i + 1]]
    return 5


def route(question: str) -> LogQuery | None:
    q = question.lower()
    tokens = words(q)
    token_set = set(tokens)
    status_match = _STATUS.search(q)
    status = int(status_match.group(1)) if status_match else None
    class_match = re.search(r"\b([45])xx\b", q)
    status_class = int(class_match.group(1)) if class_match else None
    erroneous = bool(token_set & {"error", "errors", "failed", "failing", "failures"})
    loggy = bool(token_set & LOG_WORDS) or (
        status is not None and bool(token_set & {"error", "errors", "code", "codes", "response", "responses"})
    )
    if "error rate" in q or "failure rate" in q:
        return LogQuery("error_rate")
    if not loggy:
        return None
    errors_only = erroneous and status is None and status_class is None
    limit = _limit(q, tokens)
    if "latency" in token_set or "slowest" in token_set or "response time" in q:
        return LogQuery("latency")
    wants_top = bool(token_set & _TOP_WORDS)
    if wants_top and token_set & {"ip", "ips", "address", "addresses", "client", "clients", "device", "devices"}:
        return LogQuery("top_ips", status, status_class, errors_only, limit)
    if wants_top and token_set & {"endpoint", "endpoints", "path", "paths", "route", "routes", "url", "urls"}:
        return LogQuery("top_paths", status, status_class, errors_only or erroneous, limit)
    if "how many" in q or "count" in token_set or "number of" in q or "total" in token_set:
        return LogQuery("count", status, status_class, errors_only)
    return None
