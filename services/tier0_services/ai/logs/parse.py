"""Parse access-log lines: Apache/nginx combined log format and JSON lines, one entry per line.

Pure functions: the importer (CLI and endpoint) counts the lines these reject instead of failing
the whole file, and the region API's own access log builds `LogEntry` directly.
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_COMBINED = re.compile(
    r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?(?: (?P<latency>\d+(?:\.\d+)?))?\s*$'
)
_CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"


class LogParseError(ValueError):
    pass


@dataclass(frozen=True)
class LogEntry:
    ip: str
    ts: float
    """Seconds since the epoch (UTC)."""
    method: str
    path: str
    status: int
    latency_ms: float | None = None
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "ts": self.ts,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "size": self.size,
        }


def _path(target: str) -> str:
    """Path without query string: aggregates group `/a?x=1` and `/a?x=2` together."""
    return target.split("?", 1)[0] or "/"


def _status(value: Any) -> int:
    # Exactly an int or three digits: `400.0`, `"0400"`, `"400 "` and `true` are not status codes.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise LogParseError(f"status {value!r} is not an integer")
    if isinstance(value, str) and not (len(value) == 3 and value.isascii() and value.isdigit()):
        raise LogParseError(f"status {value!r} is not three digits")
    status = int(value)
    if not 100 <= status <= 599:
        raise LogParseError(f"status {status} outside 100-599")
    return status


def parse_combined(line: str) -> LogEntry:
    match = _COMBINED.match(line)
    if match is None:
        raise LogParseError("not a combined/common log format line")
    parts = match["request"].split()
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("-", "/")
    try:
        ts = datetime.strptime(match["time"], _CLF_TIME).timestamp()
    except ValueError as exc:
        raise LogParseError(f"bad time {match['time']!r}") from exc
    # A trailing number after the user agent is the request time; nginx writes seconds with a dot
    # ($request_time), Apache's %D microseconds: we take a dotted value as seconds.
    latency: float | None = None
    if match["latency"]:
        raw = match["latency"]
        latency = float(raw) * 1000.0 if "." in raw else float(raw) / 1000.0
    size = 0 if match["size"] == "-" else int(match["size"])
    return LogEntry(match["ip"], ts, method, _path(target), _status(match["status"]), latency, size)


def _first(obj: dict[str, Any], *names: str) -> Any:
    for name in names:
        if obj.get(name) is not None:
            return obj[name]
    return None


def _timestamp(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            try:
                return datetime.strptime(value, _CLF_TIME).timestamp()
            except ValueError as exc:
                raise LogParseError(f"bad timestamp {value!r}") from exc
    raise LogParseError("no timestamp")


def parse_json(line: str) -> LogEntry:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LogParseError(f"bad JSON: {exc.msg}") from exc
    if not isinstance(obj, dict):
        raise LogParseError("JSON line is not an object")
    ip = _first(obj, "ip", "client_ip", "remote_addr", "client")
    status = _first(obj, "status", "status_code", "code")
    if ip is None or status is None:
        raise LogParseError("JSON line needs an ip and a status")
    method = _first(obj, "method", "verb") or "-"
    path = _first(obj, "path", "url", "uri") or "/"
    request = obj.get("request")
    if isinstance(request, str) and len(request.split()) >= 2 and path == "/":
        method, path = request.split()[:2]
    latency = _first(obj, "latency_ms", "duration_ms", "response_time_ms")
    try:
        return LogEntry(
            ip=str(ip),
            ts=_timestamp(_first(obj, "ts", "timestamp", "time", "@timestamp")),
            method=str(method).upper(),
            path=_path(str(path)),
            status=_status(status),
            latency_ms=None if latency is None else float(latency),
            size=int(_first(obj, "size", "bytes", "body_bytes_sent") or 0),
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, LogParseError):
            raise
        raise LogParseError(str(exc)) from exc


def parse_line(line: str) -> LogEntry | None:
    """One entry, None for a blank line, LogParseError for anything else unreadable."""
    text = line.strip()
    if not text:
        return None
    return parse_json(text) if text.startswith("{") else parse_combined(text)


def format_combined(entry: LogEntry, agent: str = "tier0-sample/1.0") -> str:
    """The combined log format line of an entry, latency appended in seconds (nginx style)."""
    when = datetime.fromtimestamp(entry.ts).astimezone().strftime(_CLF_TIME)
    latency = "" if entry.latency_ms is None else f" {entry.latency_ms / 1000.0:.3f}"
    return (
        f'{entry.ip} - - [{when}] "{entry.method} {entry.path} HTTP/1.1" {entry.status} {entry.size} '
        f'"-" "{agent}"{latency}'
    )
