"""The MQTT broker's users: three roles, whose topic rules are the chart's `files/emqx/acl.conf`.

- `tier0-ingest` (ingest workers): subscribe to `og/field/#`, as `$share/<group>/og/field/#` too;
  publish nothing;
- `tier0-gateway` (the device simulator, one connection for thousands of devices; field gateways):
  publish on any device topic `og/field/+/+/+`; subscribe to nothing;
- `tier0-device` (devices): publish only on `og/field/+/+/<its client id>`; subscribe to nothing.

Anonymous clients are refused. Why a shared device credential and not one per device: 100,000
devices must not need 100,000 chart-rendered Secrets, and the rule that binds a device to its own
topic has to be one both EMQX (`${clientid}` in acl.conf) and Mosquitto (a `%c` pattern) enforce.
A device publishes under its client id, which the broker ties to the connection; what the shared
password does not prevent is a holder of it choosing another device's client id. Per-device
passwords close that: EMQX's built-in database keyed by client id (`user_id_type = clientid`),
filled from a device registry through its REST API or a CSV import, with the same acl.conf
(charts/README.md, "MQTT users"). The gateway credential can publish for every device: it belongs
to the simulator and to gateways, never to a device.

EMQX reads the users from a bootstrap file of its built-in database (`users.json`, plain passwords,
which EMQX hashes on import; it imports a user once and never overwrites it, so a rotated password
is applied with EMQX's REST API or by deleting the user). The Mosquitto stand-in reads the same file.
"""

import json
from collections.abc import Mapping
from pathlib import Path

from tier0_services.access import secretfiles

INGEST = "tier0-ingest"
GATEWAY = "tier0-gateway"
DEVICE = "tier0-device"

SECRET_KEYS = {INGEST: "ingest-password", GATEWAY: "gateway-password", DEVICE: "device-password"}
"""The key of each user's password in the MQTT Secret (the chart's `<release>-mqtt`)."""

BOOTSTRAP_FILE = "users.json"


def bootstrap(passwords: Mapping[str, str]) -> str:
    """EMQX's built-in-database bootstrap file (JSON, `bootstrap_type = plain`)."""
    users = [{"user_id": user, "password": passwords[user], "is_superuser": False} for user in SECRET_KEYS]
    return json.dumps(users, indent=1) + "\n"


def write(secret_dir: Path, out: Path) -> list[Path]:
    """Render the users from the mounted MQTT Secret into `out`."""
    values = secretfiles.read(secret_dir, SECRET_KEYS.values())
    passwords = {user: values[key] for user, key in SECRET_KEYS.items()}
    secretfiles.write(out, {BOOTSTRAP_FILE: bootstrap(passwords)}, mode=0o640)
    return [out / BOOTSTRAP_FILE]
