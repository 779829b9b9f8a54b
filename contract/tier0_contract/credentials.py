"""How every tier0 component holds a credential: read from a mounted file at start, never taken from
argv or an environment variable's value, and never shown in a log line or an error.

A Kubernetes Secret mounted as a volume is a file per key; the settings of each component name the
file (`*_password_file`), and `read_secret` reads it. Connection URLs carry no password any more,
but one given by hand still might: whatever prints or raises a URL passes it through `redact_url`,
the one place that decides what of a URL may be shown.
"""

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


class CredentialError(RuntimeError):
    """A credential file is missing, unreadable or empty (the message names the file, never a value)."""


def read_secret(path: Path | str) -> str:
    """The value held in `path` (a mounted Secret key), without the trailing newline an editor adds."""
    try:
        value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(f"cannot read the credential file {path}: {type(exc).__name__}") from None
    if not value:
        raise CredentialError(f"the credential file {path} is empty")
    return value


def read_optional(path: Path | str | None) -> str | None:
    """`read_secret(path)`, or None when no file is configured."""
    return None if path is None or str(path) == "" else read_secret(path)


def redact_url(url: str) -> str:
    """`url` fit for a log line: a password becomes `***` (the user name stays, it names the role).
    Anything that does not parse is shown only up to its scheme."""
    try:
        parts = urlsplit(url)
        password = parts.password
        host = parts.hostname
        port = parts.port
    except ValueError:
        return url.split("://", 1)[0] + "://" + REDACTED if "://" in url else REDACTED
    if password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    netloc = f"{user}:{REDACTED}@" if password is not None else (f"{user}@" if user else "")
    netloc += f"[{host}]" if host and ":" in host else (host or "")
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
