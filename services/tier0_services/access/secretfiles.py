"""Reading a mounted Secret (a directory with one file per key) and writing files only the server's
user may read."""

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from tier0_contract import credentials

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""A password is written quoted (Redis's config) or as JSON, so any printable character is fine; a
control character (a second line pasted into a Secret) is refused, with the file named, not shown."""


class SecretFormatError(ValueError):
    """A password holding a control character."""


def read(directory: Path, keys: Iterable[str]) -> dict[str, str]:
    """`{key: value}` of a mounted Secret; every key must be there (CredentialError names the file)."""
    values = {key: credentials.read_secret(directory / key) for key in keys}
    for key, value in values.items():
        if CONTROL.search(value):
            raise SecretFormatError(f"{directory / key}: a password may not hold control characters or line breaks")
    return values


def write(out: Path, files: Mapping[str, str], mode: int = 0o600) -> None:
    """Write `files` into `out`, each created with `mode` before any byte of it is written."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        tmp.replace(path)
