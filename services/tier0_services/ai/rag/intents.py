"""From a route (`rag.router`, chosen by meaning) and the slots a question names (`rag.slots`) to
an exact computation: an access-log aggregate (`LogQuery`) or a read of the live telemetry
(`LiveQuery`). Pure.

Which aggregate is the route's part after the dot (`logs.top_ips`); the slots filter it (a status
code, a class, errors only, an IP, a path, a method, a day), size it (top N) and order it (most or
least). What a computation cannot honour (a year the logs do not cover, a site the logs do not
aggregate by, a year asked of the live telemetry) is checked where the data is known
(`diagnostics`, `live`), and makes the route ungrounded or the answer an abstention.
"""

import re
from dataclasses import dataclass
from typing import Literal, get_args

from tier0_services.ai.rag.slots import Direction, Slots

Kind = Literal[
    "count",
    "error_rate",
    "status_breakdown",
    "top_ips",
    "top_paths",
    "latency",
    "unique_ips",
    "methods",
    "days",
    "recent_errors",
]
LiveKind = Literal[
    "devices_in_state",
    "active_devices",
    "active_users",
    "active_connections",
    "site",
    "sites",
    "sites_ranked",
    "server",
]
LOG_KINDS: tuple[str, ...] = get_args(Kind)
LIVE_KINDS: tuple[str, ...] = get_args(LiveKind)
DEFAULT_LIMIT = 5
_ENUMERATE = re.compile(
    r"^\s*(?:which|list|show|name|enumerate|give me (?:all|every|the list))\b|\bwhat are the\b", re.I
)


@dataclass(frozen=True)
class LogQuery:
    kind: Kind
    status: int | None = None
    status_class: int | None = None
    """4 or 5 for "4xx"/"5xx"; with `errors_only` meaning any status >= 400."""
    errors_only: bool = False
    limit: int = DEFAULT_LIMIT
    percentiles: tuple[float, ...] = ()
    ip: str | None = None
    path: str | None = None
    years: tuple[int, ...] = ()
    sites: tuple[str, ...] = ()
    days: tuple[str, ...] = ()
    method: str | None = None
    direction: Direction | None = None
    window: str | None = None
    months: tuple[str, ...] = ()
    future: bool = False


@dataclass(frozen=True)
class LiveQuery:
    kind: LiveKind
    state: Literal["OK", "WARN", "ALERT"] | None = None
    site_id: str | None = None
    device_type: str | None = None
    enumerate: bool = False
    """"Which devices ..." / "list ...": every matching item, not only the count."""
    direction: Direction | None = None


def log_query(label: str, slots: Slots) -> LogQuery:
    kind = label.removeprefix("logs.")
    if kind not in LOG_KINDS:
        raise ValueError(f"not a log route: {label}")
    if slots.percentiles and kind in {"count", "top_ips", "top_paths", "status_breakdown"}:
        kind = "latency"  # "p99 of the requests" is a latency question whatever its words
    return LogQuery(
        kind=kind,  # type: ignore[arg-type]
        status=slots.status,
        status_class=slots.status_class,
        errors_only=slots.errors or (kind == "recent_errors" and slots.status is None and slots.status_class is None),
        limit=slots.limit or DEFAULT_LIMIT,
        percentiles=slots.percentiles,
        ip=slots.ip,
        path=slots.path,
        years=slots.years,
        sites=slots.sites,
        days=slots.days,
        method=slots.method,
        direction=slots.direction,
        window=slots.window,
        months=slots.months,
        future=slots.future,
    )


def live_query(label: str, slots: Slots, question: str, site_id: str | None = None) -> LiveQuery:
    """`site_id`: the site the question names, resolved against the region's sites (an ID as
    written, or its name in prose); else the first ID-shaped site it names."""
    kind = label.removeprefix("live.")
    if kind not in LIVE_KINDS:
        raise ValueError(f"not a live route: {label}")
    site = site_id or (slots.sites[0] if len(slots.sites) == 1 else None)
    state = slots.state
    if kind == "site" and site is None:
        kind = "sites"
    if kind == "active_devices" and state is not None:
        kind = "devices_in_state"
    if kind == "devices_in_state" and slots.state is None:
        kind = "active_devices"  # devices "reporting in" with no state named: the active ones
    return LiveQuery(
        kind=kind,  # type: ignore[arg-type]
        state=state,
        site_id=site,
        device_type=slots.device_type,
        enumerate=bool(_ENUMERATE.search(question)),
        direction=slots.direction,
    )
