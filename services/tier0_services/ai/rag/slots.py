"""The entities and slots a question names (pure): status codes, percentiles, IPs, paths, years and
days, HTTP methods, sites, device types, device states, a "top N", a direction (most / least),
a time window, and the proper names it mentions.

They do not choose the route (`rag.router` does, by meaning); they say what the answer must honour.
A route that cannot honour a slot (the logs have no site, the live telemetry has no year) is not
grounded for that question, and an aggregate filters by the slots it can honour.
"""

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from tier0_services.ai.rag import text

_STATUS = re.compile(r"(?<!top )(?<!first )\b([2-5][0-9][0-9])(?:s|'s)?\b")
_STATUS_CLASS = re.compile(r"\b([1-5])xx\b", re.IGNORECASE)
_YEAR = re.compile(r"\b(19[5-9][0-9]|20[0-9][0-9])\b")
_IP = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
_PATH = re.compile(r"(?<![\w/.])(/[A-Za-z0-9_.{}-]+(?:/[A-Za-z0-9_.{}-]*)*)")
_SITE_ID = re.compile(r"\b([A-Za-z]{2}-[A-Za-z]{3,})\b")
_PERCENTILE = re.compile(r"\bp(\d{1,2}(?:\.\d{1,2})?)\b|\b(\d{1,2}(?:\.\d{1,2})?)(?:st|nd|rd|th)?[ -]percentile\b")
_ISO_DAY = re.compile(r"\b(20\d\d)-(\d\d)-(\d\d)\b")
_MONTHS = {
    m: n
    for n, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for m in names
}
MONTH_NAMES = frozenset(m[:3] for m in _MONTHS)
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\b\.?(?:,?\s+(20\d\d))?", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(20\d\d))?", re.IGNORECASE)
_TOP_N = re.compile(r"\b(?:top|first|best|worst|last)\s+(\d{1,3})\b|\b(\d{1,2})\s+(?:most|least|busiest|noisiest)\b")
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twenty": 20,
}
_TOP_WORD = re.compile(
    r"\b(?:top|first)\s+("
    + "|".join(_NUMBER_WORDS)
    + r")\b|\b("
    + "|".join(_NUMBER_WORDS)
    + r")\s+(?:most|least|busiest)\b",
    re.IGNORECASE,
)
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_METHOD = re.compile(r"\b(" + "|".join(_METHODS) + r")s?\b", re.IGNORECASE)
_WINDOW = re.compile(
    r"\b(?:(?:in|over|during|for|within)\s+the\s+)?(?:last|past|previous)\s+(\d+\s+)?"
    r"(second|minute|hour|day|week|month|year)s?\b|\b(today|yesterday|tonight|this\s+(?:morning|week|month))\b",
    re.IGNORECASE,
)
_SHARE_WITHIN = re.compile(
    r"\b(\d{1,2}(?:\.\d{1,2})?)\s*(?:%|percent|per cent)\s+of\s+(?:the\s+|all\s+)?(?:\w+\s+){0,2}"
    r"(?:requests|calls|responses|answers)\b.*\b(?:within|under|below|faster|in less than|completed|served|took)\b",
    re.IGNORECASE,
)
_HALF_WITHIN = re.compile(
    r"\bhalf\s+(?:of\s+)?(?:the\s+|all\s+)?(?:\w+\s+){0,2}(?:requests|calls|responses)\b.*"
    r"\b(?:within|under|below|faster|less than|completed|served|took)\b",
    re.IGNORECASE,
)
_MONTH_ONLY = re.compile(rf"\b(?:in|during|for|throughout|over)\s+({_MONTH})\b\.?(?:\s+(20\d\d))?", re.IGNORECASE)
_FUTURE = re.compile(
    r"\b(?:tomorrow|tonight|next\s+(?:week|month|year|quarter|day|hour|shift|summer|winter)|"
    r"in\s+\d+\s+(?:days|weeks|months|years)\s+from\s+now|forecast|predict(?:ed|ion)?|will\s+(?:be|there\s+be|have|get|happen|see|occur))\b",
    re.IGNORECASE,
)
Source = Literal["docs", "logs", "live"]
_SOURCES: tuple[tuple[Source, re.Pattern[str]], ...] = (
    (
        "logs",
        re.compile(
            r"\baccess[- ]logs?\b|\b(?:in|from|of|by|across|according to|judging by)\s+the\s+(?:access\s+)?logs?\b|"
            r"\bthe\s+logs?\s+(?:show|say|hold|record)|\blogged\s+(?:requests?|calls?|entries|errors?|traffic)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "docs",
        re.compile(
            r"\b(?:according to|in|per|as stated in|as described in)\s+the\s+(?:[\w-]+\s+){0,3}"
            r"(?:documents?|documentation|runbook|policy|report|notes?|guide|manual|overview|statements|readme)\b",
            re.IGNORECASE,
        ),
    ),
    ("live", re.compile(r"\b(?:right now|currently|at the moment|at present|at this moment)\b", re.IGNORECASE)),
)
_LEAST = frozenset("least fewest rarest lowest minimum min smallest quietest fastest".split())
_MOST = frozenset(
    "most top highest maximum max largest greatest biggest busiest noisiest heaviest slowest frequent common".split()
)
REASONS = {
    "bad request": 400,
    "unauthorized": 401,
    "unauthorised": 401,
    "forbidden": 403,
    "not found": 404,
    "method not allowed": 405,
    "conflict": 409,
    "payload too large": 413,
    "unprocessable entity": 422,
    "unprocessable content": 422,
    "too many requests": 429,
    "internal server error": 500,
    "bad gateway": 502,
    "service unavailable": 503,
    "gateway timeout": 504,
    "not modified": 304,
    "no content": 204,
}
"""HTTP reason phrases as a question names a status ("how many Not Found responses"): the code."""
_REASON = re.compile(r"\b(" + "|".join(sorted(REASONS, key=len, reverse=True)) + r")s?\b", re.IGNORECASE)
_SERVER_ERRORS = re.compile(r"\bserver(?:[- ]side)?\s+(?:error|failure)s?\b", re.IGNORECASE)
_CLIENT_ERRORS = re.compile(r"\bclient(?:[- ]side)?\s+(?:error|failure)s?\b", re.IGNORECASE)
_ERROR_WORDS = frozenset(
    "error errors errored failed failing failure failures fail fails unsuccessful bad broken erroring".split()
)
STATES: dict[str, Literal["OK", "WARN", "ALERT"]] = {
    "alert": "ALERT",
    "alerts": "ALERT",
    "alerting": "ALERT",
    "alarm": "ALERT",
    "alarms": "ALERT",
    "alarming": "ALERT",
    "critical": "ALERT",
    "warn": "WARN",
    "warning": "WARN",
    "warnings": "WARN",
    "ok": "OK",
    "healthy": "OK",
    "normal": "OK",
}
DEVICE_TYPES = {
    "turbine": "turbine",
    "turbines": "turbine",
    "engine": "thermal_engine",
    "engines": "thermal_engine",
    "thermal_engine": "thermal_engine",
    "rotor": "electrical_rotor",
    "rotors": "electrical_rotor",
    "electrical_rotor": "electrical_rotor",
    "sensor": "og_sensor",
    "sensors": "og_sensor",
    "og_sensor": "og_sensor",
}
"""The telemetry's device types (`tier0_contract`) as a question names them."""
_NAME = re.compile(r"\b[A-Z][A-Za-z0-9&]*(?:[-_][A-Za-z0-9]+)*\b|\b[a-z]+[A-Z][A-Za-z0-9]*\b|\b[a-z0-9]+_[a-z0-9_]+\b")
_NOT_NAMES = frozenset(
    """what how which who whom whose when where why list give show tell describe summarize summarise
    explain is are was were do does did can could should would will i in on at for of the a an and
    or if please name any all our my me there this that these those enumerate according top count
    number total""".split()
)
Direction = Literal["most", "least"]
_NAMES_ONE = re.compile(r"\b(?:which|who|whose)\b", re.IGNORECASE)
_STATISTIC = re.compile(
    r"\bhow (?:many|much|often|frequently)\b|\bnumber of\b|\bcount(?:s|ed)?\b|\btotals?\b|\brates?\b(?![- ]limit)|"
    r"\bpercent(?:age)?s?\b|%|\bshare\b|\bproportion\b|\bfraction\b|\bratio\b|\bdistribut\w*|\bbreak\s*down\b|"
    r"\bbreakdown\b|\bsplit\b|\b(?:per|by) (?:day|hour|status|code|method|ip|path|client)\b|"
    r"\brank\w*|\bdominat\w*|\bmajority\b|\bcompared?\b|\bpopular\b|\busual(?:ly)?\b|\boften\b|\brare(?:st|ly)?\b|\bheaviest\b",
    re.IGNORECASE,
)
_HOW_TO = re.compile(
    r"\bhow (?:do|can|should|would|must) (?:i|we|you|one|an? \w+)\b|\bhow to\b|"
    r"\b(?:which|what) (?:\w+ ){0,2}commands?\b|\bwhat (?:should|do|must) (?:i|we) (?:do|run|check)\b",
    re.IGNORECASE,
)
_HOW_MANY = re.compile(r"\bhow (?:many|much)\b|\bnumber of\b|\bcount\b", re.IGNORECASE)


@dataclass(frozen=True)
class Slots:
    status: int | None = None
    status_class: int | None = None
    """4 or 5 for "4xx"/"client errors" or "5xx"/"server errors"."""
    errors: bool = False
    """The question is about failed requests (error, failed...) without naming a code."""
    percentiles: tuple[float, ...] = ()
    ip: str | None = None
    path: str | None = None
    years: tuple[int, ...] = ()
    days: tuple[str, ...] = ()
    """ISO dates named (`2024-06-03`, "June 3", "3rd of June 2024"; a day without a year keeps
    year 0 until the data says which year: `0000-06-03`)."""
    method: str | None = None
    sites: tuple[str, ...] = ()
    device_type: str | None = None
    state: Literal["OK", "WARN", "ALERT"] | None = None
    limit: int | None = None
    direction: Direction | None = None
    window: str | None = None
    """A relative time window ("last hour", "today"), as written."""
    months: tuple[str, ...] = ()
    """Whole months named ("in May 2024": `2024-05`, "during June": `0000-06`)."""
    future: bool = False
    """The question asks about a time to come ("tomorrow", "next week", "will be"): no data holds it."""
    source: Source | None = None
    """The source the question names: "in the access logs", "according to the runbook", "right
    now" (the first one named)."""
    names: tuple[str, ...] = ()
    """Proper names and identifiers (capitalised words not opening the question, all-caps words,
    camelCase and snake_case identifiers)."""
    numbers: tuple[str, ...] = ()
    """Every number written in the question (codes, years, counts, IP octets excluded)."""
    how_to: bool = False
    """The question asks for a procedure or a command ("how do I ...", "which commands ..."): the
    documents say how; the logs and the live telemetry only say what happened or is."""
    statistic: bool = False
    """The question asks for a quantity or a ranking (most, top 5, how many, how often, a rate, a
    breakdown): without one, "which status code does a client get when ..." asks what a code
    means, not which one the logs hold most."""
    names_one: bool = False
    """The question asks to name something ("which clients ...", "who ..."), not for a figure ("how
    many"): a count cannot answer it."""


def canonical(question: str) -> str:
    """The question with its values replaced by one fixed stand-in of each kind (a status code or a
    class of them reads "code", an IP 10.0.0.1, a year 2024, a path /api/status): routing then
    weighs what is asked, not which code or address ("the most 429s" is not closer to a 429
    example than to a 404 one, nor "the most 5xx responses" to a count for want of a 5xx example)."""
    out = _IP.sub("10.0.0.1", question)
    out = _PATH.sub("/api/status", out)
    out = _YEAR.sub("2024", out)
    out = _STATUS_CLASS.sub("code", out)
    return _STATUS.sub("code", out)


def percentiles(question: str) -> tuple[float, ...]:
    """p50/p95/p99, "99th percentile", "median", "95 percent of requests within", "half of the
    requests took" -> (50.0, 95.0, 99.0); a bare "percentile(s)" without a number means the usual
    three."""
    q = question.lower()
    found = [float(a or b) for a, b in _PERCENTILE.findall(q)]
    if re.search(r"\bmedian\b", q) or _HALF_WITHIN.search(q):
        found.append(50.0)
    share = _SHARE_WITHIN.search(q)
    if share:
        found.append(float(share.group(1)))
    if not found and "percentile" in q:
        found = [50.0, 95.0, 99.0]
    return tuple(sorted({p for p in found if 0 < p <= 100}))


def years(question: str) -> tuple[int, ...]:
    return tuple(sorted({int(y) for y in _YEAR.findall(_ISO_DAY.sub(" ", question))} | set(_iso_years(question))))


def _iso_years(question: str) -> list[int]:
    return [int(m.group(1)) for m in _ISO_DAY.finditer(question)]


def days(question: str) -> tuple[str, ...]:
    found: list[str] = []
    for m in _ISO_DAY.finditer(question):
        found.append(f"{m.group(1)}-{m.group(2)}-{m.group(3)}")
    for m in _DAY_MONTH.finditer(question):
        found.append(_day(m.group(3), m.group(2), m.group(1)))
    for m in _MONTH_DAY.finditer(question):
        found.append(_day(m.group(3), m.group(1), m.group(2)))
    return tuple(dict.fromkeys(d for d in found if d))


def _day(year: str | None, month: str, day: str) -> str:
    number = _MONTHS[month.lower().rstrip(".")]
    try:
        date(int(year or 2000), number, int(day))  # 2000 is a leap year: 29 February passes
    except ValueError:
        return ""
    return f"{int(year or 0):04d}-{number:02d}-{int(day):02d}"


def months(question: str) -> tuple[str, ...]:
    """Whole months named without a day ("in May 2024", "during June")."""
    out = []
    for m in _MONTH_ONLY.finditer(question):
        rest = question[m.end() : m.end() + 4]
        if re.match(r"\s*\d{1,2}\b(?!\d)", rest) and not m.group(2):
            continue  # "in June 3" names a day
        out.append(f"{int(m.group(2) or 0):04d}-{_MONTHS[m.group(1).lower().rstrip('.')]:02d}")
    return tuple(dict.fromkeys(out))


def site_ids(question: str) -> tuple[str, ...]:
    return tuple(sorted({m.upper() for m in _SITE_ID.findall(question)}))


def names(question: str) -> tuple[str, ...]:
    q = re.sub(r"['’]s\b", "", question)
    start = len(q) - len(q.lstrip())
    found: list[str] = []
    for match in _NAME.finditer(q):
        token = match.group(0)
        if token.lower() in _NOT_NAMES:
            continue
        identifier = "_" in token or (token[:1].islower() and any(c.isupper() for c in token))
        # A capital opening the question is grammar; elsewhere (or all caps) it is a name.
        if identifier or (token.isupper() and len(token) >= 2) or match.start() != start:
            found.append(token)
    return tuple(dict.fromkeys(found))


def _limit(q: str) -> int | None:
    m = _TOP_N.search(q)
    if m:
        return max(1, min(int(m.group(1) or m.group(2)), 100))
    w = _TOP_WORD.search(q)
    if w:
        return _NUMBER_WORDS[(w.group(1) or w.group(2)).lower()]
    return None


def extract(question: str) -> Slots:
    q = question.lower()
    tokens = set(text.words(q))
    without_ips = _IP.sub(" ", question)
    without_dates = _ISO_DAY.sub(" ", without_ips)
    codes = [int(c) for c in _STATUS.findall(_YEAR.sub(" ", without_dates))]
    codes += [REASONS[m.group(1).lower()] for m in _REASON.finditer(question) if _as_status(m, question)]
    status = codes[0] if codes else None
    class_match = _STATUS_CLASS.search(question)
    status_class = int(class_match.group(1)) if class_match else None
    classes = {int(c) for c in _STATUS_CLASS.findall(question)}
    both_classes = {4, 5} <= classes
    if both_classes:
        status_class = None  # "4xx or 5xx" is every error
    if status_class is None and status is None and not both_classes:
        if _SERVER_ERRORS.search(question):
            status_class = 5
        elif _CLIENT_ERRORS.search(question):
            status_class = 4
    ip = _IP.search(question)
    path = _PATH.search(without_ips)
    method = _METHOD.search(question)
    site_list = site_ids(question)
    device_type = next((DEVICE_TYPES[t] for t in text.words(q) if t in DEVICE_TYPES), None)
    state = next((STATES[t] for t in text.words(q) if t in STATES), None)
    least = bool(tokens & _LEAST)
    most = bool(tokens & _MOST)
    window = _WINDOW.search(question)
    numbers = re.findall(r"\b\d+(?:\.\d+)?\b", _IP.sub(" ", question))
    return Slots(
        status=status,
        status_class=status_class,
        errors=(bool(tokens & _ERROR_WORDS) or both_classes) and status is None and status_class is None,
        percentiles=percentiles(question),
        ip=ip.group(1) if ip else None,
        path=path.group(1) if path else None,
        years=years(question),
        days=days(question),
        method=method.group(1).upper() if method and _is_method(method.group(0), question) else None,
        sites=site_list,
        device_type=device_type,
        state=state,
        limit=_limit(q),
        direction="least" if least else ("most" if most else None),
        window=window.group(0) if window else None,
        months=months(question) if not days(question) else (),
        future=bool(_FUTURE.search(question)),
        source=next((name for name, pattern in _SOURCES if pattern.search(question)), None),
        names=names(question),
        numbers=tuple(dict.fromkeys(numbers)),
        names_one=names_one(question),
        statistic=bool(least or most or _limit(q) or _STATISTIC.search(question)),
        how_to=bool(_HOW_TO.search(question)),
    )


def names_one(question: str) -> bool:
    """Does the question ask to name something? A "which/who/whose" asked before any "how many /
    number of": in "which caller got the largest number of 404s" the number is what the callers are
    ranked by; in "how many requests did the client that got the most 5xx send" the figure is asked."""
    ask = _NAMES_ONE.search(question)
    figure = _HOW_MANY.search(question)
    return ask is not None and (figure is None or ask.start() < figure.start())


def _as_status(match: re.Match[str], question: str) -> bool:
    """A reason phrase names a status when written as one ("Not Found", "HTTP service
    unavailable", "not found responses"), or is one of the phrases only HTTP uses ("bad
    request", "too many requests"); "is the service unavailable during failover?" names none."""
    phrase = match.group(1)
    if phrase[0].isupper() and match.start() > 0 or phrase.lower() in {"bad request", "too many requests"}:
        return True
    before = question[: match.start()].rstrip().lower()
    after = question[match.end() :].lstrip().lower()
    return before.endswith("http") or bool(re.match(r"(?:responses?|errors?|status|answers?|replies|codes?)\b", after))


def _is_method(found: str, question: str) -> bool:
    """`GET`/`POST` in capitals, or lower case beside "request(s)"/"method"/"call(s)"."""
    if found.rstrip("s").isupper():
        return True
    return bool(re.search(rf"\b{re.escape(found)}\s+(?:request|requests|call|calls|method)\b", question, re.IGNORECASE))
