"""RabbitMQ's users and virtual host, as a definitions file the server imports at boot
(`load_definitions`, RabbitMQ 3.10 and 4.1 alike).

- the administrator (`username` in the Secret; a person: management UI, `rabbitmqctl`): everything,
  tag `administrator`;
- `tier0-app` (activity consumers, the user simulator): in vhost `tier0` only, declare, publish to and
  consume the activity queue, its dead-letter exchange and queue; no management UI.

The application user's permissions are regular expressions over resource names (RabbitMQ's
configure / write / read): declaring a queue or exchange needs *configure* on it, binding the
dead-letter queue *write* on the queue and *read* on the exchange, publishing *write* on the
exchange (`amq.default` for the queue's own name), consuming *read* on the queue.

A node that imports definitions at boot creates no default user: there is no `guest`. The file
holds password hashes (RabbitMQ's salted SHA-256), not passwords, and is imported at every start,
so a changed password in the Secret applies after a restart of the RabbitMQ pod.
"""

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from tier0_contract import topics
from tier0_services.access import secretfiles

APP = "tier0-app"
ADMIN_USERNAME_KEY, ADMIN_PASSWORD_KEY, APP_PASSWORD_KEY = "username", "password", "app-password"
"""Keys of the RabbitMQ Secret (the chart's `<release>-rabbitmq`)."""

DEFINITIONS_FILE = "definitions.json"

_NAMES = "|".join(re.escape(n) for n in (topics.ACTIVITY_QUEUE, topics.ACTIVITY_DLX, topics.ACTIVITY_DEAD_LETTER_QUEUE))
APP_PERMISSIONS = {
    "configure": f"^({_NAMES})$",
    "write": f"^(amq\\.default|{_NAMES})$",
    "read": f"^({_NAMES})$",
}


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt + SHA-256(salt + password)), 4-byte salt."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(admin: str, admin_password: str, app_password: str) -> dict[str, Any]:
    """The definitions document: the vhost, both users and their permissions."""
    vhost = topics.ACTIVITY_VHOST

    def user(name: str, password: str, tags: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "password_hash": password_hash(password),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": tags,
            "limits": {},
        }

    return {
        "users": [user(admin, admin_password, ["administrator"]), user(APP, app_password, [])],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {"user": admin, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"},
            {"user": APP, "vhost": vhost, **APP_PERMISSIONS},
        ],
    }


def write(secret_dir: Path, out: Path) -> list[Path]:
    """Render the definitions file from the mounted RabbitMQ Secret into `out`."""
    values = secretfiles.read(secret_dir, (ADMIN_USERNAME_KEY, ADMIN_PASSWORD_KEY, APP_PASSWORD_KEY))
    doc = definitions(values[ADMIN_USERNAME_KEY], values[ADMIN_PASSWORD_KEY], values[APP_PASSWORD_KEY])
    secretfiles.write(out, {DEFINITIONS_FILE: json.dumps(doc, indent=1) + "\n"}, mode=0o640)
    return [out / DEFINITIONS_FILE]
