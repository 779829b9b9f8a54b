"""Redis's ACL users: one per role, each allowed what its role needs and nothing more.

- `default` (any connection before AUTH: the readiness probe's `redis-cli ping`): PING only;
- `tier0-app` (region API, ingest workers, activity consumers, the AI command line): every data
  command, nothing of `@admin`/`@dangerous` but `INFO`, `ROLE` and `CONFIG GET` (finding the primary,
  `tier0_services.primary`; `/api/status`);
- `tier0-operator` (the operator): the probe (`INFO`, `CONFIG GET`, `TIME`), the write guard (`CONFIG
  SET`), transitions (`CLIENT PAUSE/UNPAUSE`, `REPLICAOF`), and the keys `pair:epoch` and
  `pipeline:heartbeats` only;
- `tier0-replication` (the other region's Redis, as `masteruser`): `PSYNC`, `REPLCONF`, `PING`;
- `tier0-exporter` (redis_exporter beside each Redis, and the Redis pod's preStop hook, which waits
  while `ROLE` says this Redis is a primary with a replica attached): `INFO`, `ROLE`, `CONFIG GET`,
  slow log, latency, memory stats, client list; no key;
- `tier0-admin` (a person: `redis-cli --user tier0-admin --askpass`): everything.

Both Redis of a pair carry the same users (either may be the primary), and each replicates as
`tier0-replication` (`masteruser`/`masterauth` in `auth.conf`), so the operator never has to hand
a password to `REPLICAOF`. The ACL file holds SHA-256 hashes, not passwords; `auth.conf` holds the
replication password, which Redis needs in clear, and lives on a memory-backed volume.

Rules name categories or commands Redis 7.0 (Debian, the process stack) and Redis 8 both know: an
unknown command in an ACL file stops the server.
"""

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from tier0_contract import keys
from tier0_services.access import secretfiles

ADMIN = "tier0-admin"
APP = "tier0-app"
OPERATOR = "tier0-operator"
REPLICATION = "tier0-replication"
EXPORTER = "tier0-exporter"

SECRET_KEYS = {
    ADMIN: "admin-password",
    APP: "app-password",
    OPERATOR: "operator-password",
    REPLICATION: "replication-password",
    EXPORTER: "exporter-password",
}
"""The key of each user's password in the Redis Secret (the chart's `<release>-redis`)."""

DEFAULT_RULES = "nopass resetkeys resetchannels -@all +ping"
RULES = {
    ADMIN: "~* &* +@all",
    APP: "~* resetchannels +@all -@admin -@dangerous +info +role +config|get",
    OPERATOR: (
        f"resetkeys ~{keys.PAIR_EPOCH} ~{keys.PIPELINE_HEARTBEATS} resetchannels -@all"
        " +ping +info +time +get +set +hgetall +config|get +config|set"
        " +client|pause +client|unpause +client|setname +replicaof"
    ),
    REPLICATION: "resetkeys resetchannels -@all +psync +replconf +ping",
    EXPORTER: (
        "resetkeys resetchannels -@all +ping +select +info +role +config|get +slowlog|get +slowlog|len"
        " +latency|latest +memory|stats +client|list +client|info +client|setname +cluster|info"
    ),
}

ACL_FILE = "users.acl"
AUTH_CONF = "auth.conf"
EXPORTER_PASSWORDS = "exporter-passwords.json"


def acl_file(passwords: Mapping[str, str]) -> str:
    """The ACL file (`aclfile`): every user of `RULES`, with the SHA-256 of its password."""
    lines = [f"user default on {DEFAULT_RULES}"]
    for user, rules in RULES.items():
        digest = hashlib.sha256(passwords[user].encode()).hexdigest()
        lines.append(f"user {user} on #{digest} {rules}")
    return "\n".join(lines) + "\n"


def quote(value: str) -> str:
    """A string as Redis's config parser reads it back unchanged (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def auth_conf(passwords: Mapping[str, str], acl_path: Path) -> str:
    """Config lines (`include`d): the ACL file, and how this Redis authenticates as a replica."""
    return f"aclfile {quote(str(acl_path))}\nmasteruser {REPLICATION}\nmasterauth {quote(passwords[REPLICATION])}\n"


def exporter_passwords(password: str, addr: str) -> str:
    """redis_exporter's `--redis.password-file` (JSON, URI -> password). v1.45 looks the address up
    as given, newer releases with the user name added: both keys are written."""
    scheme, _, rest = addr.partition("://")
    return json.dumps({addr: password, f"{scheme}://{EXPORTER}@{rest}": password}, indent=1) + "\n"


def read_passwords(secret_dir: Path) -> dict[str, str]:
    """`{user: password}` from the mounted Redis Secret."""
    values = secretfiles.read(secret_dir, SECRET_KEYS.values())
    return {user: values[key] for user, key in SECRET_KEYS.items()}


def write(secret_dir: Path, out: Path, *, exporter_addr: str | None = None) -> list[Path]:
    """Render the Redis files from the mounted Secret into `out` (a memory-backed volume): the ACL
    file, `auth.conf` (include it: `redis-server ... --include out/auth.conf`) and, with
    `exporter_addr`, the exporter's password file."""
    passwords = read_passwords(secret_dir)
    files = {ACL_FILE: acl_file(passwords), AUTH_CONF: auth_conf(passwords, out / ACL_FILE)}
    if exporter_addr:
        files[EXPORTER_PASSWORDS] = exporter_passwords(passwords[EXPORTER], exporter_addr)
    secretfiles.write(out, files, mode=0o640)
    return [out / name for name in files]
