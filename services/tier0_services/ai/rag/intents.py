"""Route a question to an exact computation: an access-log aggregate (`LogQuery`) or a read of the
live telemetry (`LiveQuery`); anything else goes to document retrieval (None).

Pure and deliberately conservative: a question is a log question only when it names the logs'
vocabulary (IPs, requests, status codes, endpoints, latency, error rate), and a live question only
when it asks for a count or a list of devices, alerts, users, connections or sites ("How many
safety incidents..." is neither). The entities a question names (status code, percentile, IP,
path, year, site, device type) are parsed here, so the computation can honour them or abstain.
"""

import re
from dataclasses import dataclass, field
from typing import Literal

from tier0_services.ai.rag.text import words

_STATUS = re.compile(r"\b([1-5][0-9][0-9])\b")
_TOP_N = re.compile(r"\btop\s+(\d{1,3})\b")
_YEAR = re.compile(r"\b(19[5-9][0-9]|20[0-9][0-9])\b")
_IP = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
_PATH = re.compile(r"(?<![\w/])(/[A-Za-z0-9_./{}-]*)")
_SITE_ID = re.compile(r"\b([A-Za-z]{2}-[A-Za-z]{3,})\b")
_PERCENTILE = re.compile(r"\bp(\d{1,2}(?:\.\d)?)\b|\b(\d{1,2}(?:\.\d)?)(?:st|nd|rd|th)?[ -]percentile\b")
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "twenty": 20}
LOG_WORDS = frozenset(
    "log logs request requests ip ips address addresses http endpoint endpoints path paths route "
    "routes hits status traffic latency latencies".split()
)
_TOP_WORDS = frozenset("most top frequent common busiest noisiest highest largest which".split())
_COUNT_WORDS = frozenset("many number count total".split())
_ASK_WORDS = frozenset("many number count total which list show".split())
_DEVICE_WORDS = frozenset("device devices unit units equipment machine machines".split())
DEVICE_TYPES = {
    "turbine": "turbine",
    "turbines": "turbine",
    "engine": "thermal_engine",
    "engines": "thermal_engine",
    "rotor": "electrical_rotor",
    "rotors": "electrical_rotor",
    "sensor": "og_sensor",
    "sensors": "og_sensor",
}
_NOW_WORDS = frozenset("now currently current live presently".split())

Kind = Literal["top_ips", "count", "top_paths", "error_rate", "latency"]
LiveKind = Literal["devices_in_state", "active_devices", "active_users", "active_connections", "site", "sites"]


@dataclass(frozen=True)
class LogQuery:
    kind: Kind
    status: int | None = None
    status_class: int | None = None
    """4 or 5 for "4xx"/"5xx"; with `errors_only` meaning any status >= 400."""
    errors_only: bool = False
    limit: int = 5
    percentiles: tuple[float, ...] = ()
    ip: str | None = None
    path: str | None = None
    years: tuple[int, ...] = ()
    sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class LiveQuery:
    kind: LiveKind
    state: Literal["OK", "WARN", "ALERT"] | None = None
    site_id: str | None = None
    device_type: str | None = None
    enumerate: bool = False
    """"Which devices ..." / "list ...": every matching item, not only the count."""
    years: tuple[int, ...] = field(default=())


def _limit(question: str, tokens: list[str]) -> int:
    m = _TOP_N.search(question.lower())
    if m:
        return max(1, min(int(m.group(1)), 100))
    for i, tok in enumerate(tokens[:-1]):
        if tok == "top" and tokens[i + 1] in _NUMBER_WORDS:
            return _NUMBER_WORDS[tokens[i + 1]]
    return 5


def percentiles(question: str) -> tuple[float, ...]:
    """p50/p95/p99, "99th percentile", "median" -> (50.0, 95.0, 99.0); a bare "percentile(s)"
    without a number means the usual three."""
    q = question.lower()
    found = [float(a or b) for a, b in _PERCENTILE.findall(q)]
    if re.search(r"\bmedian\b", q):
        found.append(50.0)
    if not found and "percentile" in q:
        found = [50.0, 95.0, 99.0]
    return tuple(sorted({p for p in found if 0 < p <= 100}))


def years(question: str) -> tuple[int, ...]:
    return tuple(sorted({int(y) for y in _YEAR.findall(question)}))


def site_ids(question: str) -> tuple[str, ...]:
    return tuple(sorted({m.upper() for m in _SITE_ID.findall(question)}))


def _statuses(q: str) -> tuple[int | None, int | None]:
    without_ips = _IP.sub(" ", q)
    status_match = _STATUS.search(_YEAR.sub(" ", without_ips))
    class_match = re.search(r"\b([1-5])xx\b", q)
    return (int(status_match.group(1)) if status_match else None, int(class_match.group(1)) if class_match else None)


def route(question: str) -> "LogQuery | LiveQuery | None":
    q = question.lower()
    tokens = words(q)
    token_set = set(tokens)
    status, status_class = _statuses(q)
    ip_match = _IP.search(question)
    path_match = _PATH.search(question)
    pct = percentiles(question)
    loggy = (
        bool(token_set & LOG_WORDS)
        or ip_match is not None
        or bool(pct and token_set & {"latency", "latencies", "response", "duration"})
        or (status is not None and bool(token_set & {"error", "errors", "code", "codes", "response", "responses"}))
        or status_class is not None
        or "error rate" in q
        or "failure rate" in q
    )
    if not loggy:
        return _live(q, token_set)
    erroneous = bool(token_set & {"error", "errors", "failed", "failing", "failures"})
    common = {
        "ip": ip_match.group(1) if ip_match else None,
        "path": path_match.group(1) if path_match else None,
        "years": years(question),
        "sites": site_ids(question),
    }
    if "error rate" in q or "failure rate" in q:
        return LogQuery("error_rate", **common)  # type: ignore[arg-type]
    errors_only = erroneous and status is None and status_class is None
    limit = _limit(q, tokens)
    if token_set & {"latency", "latencies", "slowest"} or "response time" in q or pct:
        return LogQuery("latency", status, status_class, errors_only, limit, pct, **common)  # type: ignore[arg-type]
    wants_top = bool(token_set & _TOP_WORDS)
    if wants_top and token_set & {"ip", "ips", "address", "addresses", "client", "clients", "device", "devices"}:
        return LogQuery("top_ips", status, status_class, errors_only, limit, **common)  # type: ignore[arg-type]
    if wants_top and token_set & {"endpoint", "endpoints", "path", "paths", "route", "routes", "url", "urls"}:
        return LogQuery("top_paths", status, status_class, errors_only or erroneous, limit, **common)  # type: ignore[arg-type]
    if "how many" in q or token_set & _COUNT_WORDS or "number of" in q:
        return LogQuery("count", status, status_class, errors_only, **common)  # type: ignore[arg-type]
    return None


def _live(q: str, token_set: set[str]) -> LiveQuery | None:
    """Live telemetry questions: counts or lists of devices by state, active devices, users,
    connections, sites and one site's metrics."""
    now = bool(token_set & _NOW_WORDS) or "at the moment" in q or "right now" in q
    # "What vibration raises an ALERT?" is a document question; "what ... right now" is live.
    asks = bool(token_set & _ASK_WORDS) or (bool(token_set & {"what", "are", "is"}) and now)
    if not asks:
        return None
    enumerate_items = bool(token_set & {"which", "list", "show"})
    device_type = next((DEVICE_TYPES[t] for t in token_set if t in DEVICE_TYPES), None)
    sites = site_ids(q)
    site_id = sites[0] if len(sites) == 1 else None
    has_devices = bool(token_set & _DEVICE_WORDS) or device_type is not None
    state: Literal["OK", "WARN", "ALERT"] | None = None
    if token_set & {"alert", "alerts", "alerting", "alarm", "alarms"}:
        state = "ALERT"
    elif token_set & {"warn", "warning", "warnings"}:
        state = "WARN"
    elif "ok" in token_set and has_devices:
        state = "OK"
    if state is not None and (has_devices or now):
        return LiveQuery("devices_in_state", state, site_id, device_type, enumerate_items)
    if token_set & {"user", "users"} and (token_set & {"active", "online", "logged", "connected"} or now):
        return LiveQuery("active_users", enumerate=enumerate_items)
    if token_set & {"connection", "connections", "sessions"} and (token_set & {"active", "open"} or now):
        return LiveQuery("active_connections", enumerate=enumerate_items)
    if has_devices and token_set & {"active", "online", "reporting", "connected", "live"}:
        return LiveQuery("active_devices", site_id=site_id, device_type=device_type)
    if site_id is not None and (has_devices or token_set & {"metrics", "status", "state"}):
        return LiveQuery("site", site_id=site_id, device_type=device_type)
    if token_set & {"site", "sites"} and not sites and (enumerate_items or "how many" in q):
        return LiveQuery("sites", enumerate=enumerate_items)
    if has_devices and (now or "how many" in q):
        return LiveQuery("active_devices", site_id=site_id, device_type=device_type)
    return None
