"""EMQX stand-in: runs mosquitto with the chart's EMQX_* settings and serves /status for the probes.

Access is EMQX's, translated (the chart configures EMQX; this reads the same inputs):

- users: EMQX's built-in-database bootstrap file (`bootstrap_file` in EMQX_AUTHENTICATION, JSON
  `[{"user_id", "password", "is_superuser"}]`) become clients of Mosquitto's dynamic-security plugin
  (PBKDF2-SHA512 hashes, as `mosquitto_ctrl` writes them); anonymous clients are refused;
- topic rules: the acl.conf EMQX reads (`path` in EMQX_AUTHORIZATION__SOURCES, with
  `EMQX_AUTHORIZATION__NO_MATCH=deny`). Mosquitto's plain acl_file cannot refuse a subscription (it
  only filters deliveries, so a member of `$share/ingest` without read access would silently eat its
  share), so each user's rules become a dynamic-security role that allows or denies every subscribe
  and publish itself, except publishes on a topic with `${clientid}`/`${username}`: the plugin has no
  placeholders, so those become `pattern` lines (`%c`, `%u`) of an acl_file, consulted only for the
  users whose role leaves publishing to it.

Only the forms the chart's acl.conf uses are translated (`{allow, {username, "u"}, publish|subscribe,
[topics]}`, topics plain or `{eq, "..."}`, and a final `{deny, all}`); anything else stops the
stand-in with the rule named, so it never runs more open than EMQX would. One difference: EMQX
authorizes a shared subscription by its real filter only, Mosquitto by the full `$share/<group>/...`,
so a subscribe rule T is granted as `$share/+/T` too (any group, as in EMQX).

Run as a program (the image's entrypoint) or imported (`auth_config`): the process stack and the
tests start the real mosquitto with the same translation.
"""

import base64
import glob
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


def port_of(bind: str, default: int) -> int:
    return int(bind.rsplit(":", 1)[-1]) if bind else default


MQTT_PORT = port_of(os.environ.get("EMQX_LISTENERS__TCP__DEFAULT__BIND", ""), 1883)
STATUS_PORT = port_of(os.environ.get("EMQX_DASHBOARD__LISTENERS__HTTP__BIND", ""), 18083)
QUEUE = int(os.environ.get("EMQX_MQTT__MAX_MQUEUE_LEN", "1000000"))
MAX_PACKET = os.environ.get("EMQX_MQTT__MAX_PACKET_SIZE", "1MB")  # EMQX's default
DURABLE = os.environ.get("EMQX_DURABLE_SESSIONS__ENABLE", "false").lower() == "true"
CONF = "/opt/emqx/etc/mosquitto.conf"
AUTH_DIR = Path("/opt/emqx/etc/tier0-standin")
ITERATIONS = 101  # mosquitto_ctrl's and mosquitto_passwd's default


class TranslationError(ValueError):
    """An EMQX access setting the stand-in cannot reproduce with Mosquitto."""


# --- acl.conf: the subset of Erlang terms it is written in ----------------------------------------

_TOKEN = re.compile(r'\s*(?:(%%[^\n]*)|("(?:[^"\\]|\\.)*")|([a-z_]+)|([{}\[\],.]))', re.S)


class Atom(str):
    """An Erlang atom (`allow`, `publish`, ...), told apart from a string."""


def parse_terms(text: str) -> list[Any]:
    """The terms of an acl.conf: tuples as tuples, lists as lists, "strings" as str, atoms as Atom."""
    tokens: list[str | Atom] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise TranslationError(f"acl.conf: cannot read {text[pos : pos + 40]!r}")
        pos = m.end()
        comment, string, atom, punct = m.groups()
        if comment is not None:
            continue
        if string is not None:
            tokens.append(json.loads(string))
        elif atom is not None:
            tokens.append(Atom(atom))
        else:
            tokens.append(Atom("\0" + punct))
    terms: list[Any] = []
    i = 0

    def value() -> Any:
        nonlocal i
        tok = tokens[i]
        i += 1
        if tok in ("\0{", "\0["):
            close = "\0}" if tok == "\0{" else "\0]"
            items: list[Any] = []
            while tokens[i] != close:
                items.append(value())
                if tokens[i] == "\0,":
                    i += 1
            i += 1
            return tuple(items) if tok == "\0{" else items
        if isinstance(tok, Atom) and tok.startswith("\0"):
            raise TranslationError(f"acl.conf: unexpected {tok[1:]!r}")
        return tok

    while i < len(tokens):
        terms.append(value())
        if i >= len(tokens) or tokens[i] != "\0.":
            raise TranslationError("acl.conf: every rule ends with a period")
        i += 1
    return terms


def _topic(t: Any) -> tuple[str, bool]:
    """(filter, exact) of one topic match: "f" or {eq, "f"}."""
    if isinstance(t, str) and not isinstance(t, Atom):
        return t, False
    if isinstance(t, tuple) and len(t) == 2 and t[0] == "eq" and isinstance(t[1], str):
        return t[1], True
    raise TranslationError(f'acl.conf: topic {t!r} is not a string or {{eq, "..."}}')


def rules_by_user(terms: list[Any]) -> dict[str, dict[str, list[tuple[str, bool]]]]:
    """`{user: {"publish": [...], "subscribe": [...]}}` of allow rules followed by `{deny, all}`."""
    if not terms or terms[-1] != ("deny", "all"):
        raise TranslationError("acl.conf: the last rule must be {deny, all}")
    users: dict[str, dict[str, list[tuple[str, bool]]]] = {}
    for rule in terms[:-1]:
        if not (isinstance(rule, tuple) and len(rule) == 4 and rule[0] == "allow"):
            raise TranslationError(f"acl.conf: only allow rules before {{deny, all}} are translated: {rule!r}")
        _, who, action, topics = rule
        named = isinstance(who, tuple) and len(who) == 2 and who[0] in ("username", "user")
        if not (named and isinstance(who[1], str)):
            raise TranslationError(f'acl.conf: only {{username, "..."}} subjects are translated: {who!r}')
        if action not in ("publish", "subscribe") or not isinstance(topics, list):
            raise TranslationError(f"acl.conf: only publish/subscribe with a topic list are translated: {rule!r}")
        users.setdefault(who[1], {"publish": [], "subscribe": []})[action] += [_topic(t) for t in topics]
    return users


# --- Mosquitto's files --------------------------------------------------------------------------

PLACEHOLDERS = {"${clientid}": "%c", "${username}": "%u"}


def _pattern(topic: str) -> str | None:
    """The acl_file pattern of a topic with placeholders, None for a plain topic."""
    rendered = topic
    for placeholder, mosq in PLACEHOLDERS.items():
        rendered = rendered.replace(placeholder, mosq)
    if "${" in rendered:
        raise TranslationError(f"acl.conf: unsupported placeholder in {topic!r}")
    return None if rendered == topic else rendered


def dynsec_client(username: str, password: str, salt: bytes | None = None) -> dict[str, Any]:
    salt = os.urandom(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return {
        "username": username,
        "textname": "",
        "salt": base64.b64encode(salt).decode(),
        "password": base64.b64encode(digest).decode(),
        "iterations": ITERATIONS,
        "roles": [{"rolename": f"acl-{username}", "priority": 0}],
    }


def translate(acl_conf: str, users: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """(dynamic-security config, acl_file text) for the bootstrap `users` under `acl_conf`."""
    rules = rules_by_user(parse_terms(acl_conf))
    clients, roles, patterns = [], [], []
    for user in users:
        name, password = user.get("user_id"), user.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
            raise TranslationError("bootstrap file: every user needs a user_id and a password")
        if user.get("is_superuser") in (True, "true"):
            raise TranslationError(f"bootstrap file: {name} is a superuser, which the stand-in does not translate")
        mine = rules.get(name, {"publish": [], "subscribe": []})
        acls: list[dict[str, Any]] = []
        for topic, exact in mine["subscribe"]:
            if "${" in topic:
                raise TranslationError(f"acl.conf: placeholders in subscribe rules are not translated: {topic!r}")
            acls.append({"acltype": "subscribeLiteral" if exact else "subscribePattern", "topic": topic})
            acls.append({"acltype": "subscribePattern", "topic": f"$share/+/{topic}"})
            acls.append({"acltype": "publishClientReceive", "topic": topic})
        deferred = False
        for topic, _exact in mine["publish"]:  # a publish names one topic: {eq, t} is t
            pattern = _pattern(topic)
            if pattern is not None:
                patterns.append(f"pattern write {pattern}")
                deferred = True
            else:
                acls.append({"acltype": "publishClientSend", "topic": topic})
        for acl in acls:
            acl.update(allow=True, priority=10)
        denies = [("subscribePattern", "#"), ("subscribePattern", "$share/#"), ("publishClientReceive", "#")]
        if not deferred:
            denies.append(("publishClientSend", "#"))
        acls += [{"acltype": t, "topic": topic, "allow": False, "priority": 0} for t, topic in denies]
        clients.append(dynsec_client(name, password))
        roles.append({"rolename": f"acl-{name}", "textname": "", "acls": acls})
    config = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }
    return config, "".join(f"{line}\n" for line in dict.fromkeys(patterns))


def dynsec_plugin() -> str:
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so") + glob.glob("/usr/lib/mosquitto_dyn*.so"))
    if not found:
        raise TranslationError("mosquitto_dynamic_security.so not found (Debian's mosquitto package ships it)")
    return found[0]


def auth_config(bootstrap: Path, acl_conf: Path, out: Path) -> list[str]:
    """Write the dynamic-security config and the acl_file into `out`; the mosquitto.conf lines that
    use them."""
    config, patterns = translate(acl_conf.read_text(), json.loads(bootstrap.read_text()))
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("dynamic-security.json", json.dumps(config, indent=1)), ("acl", patterns)):
        fd = os.open(out / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return [
        "allow_anonymous false",
        f"plugin {dynsec_plugin()}",
        f"plugin_opt_config_file {out / 'dynamic-security.json'}",
        f"acl_file {out / 'acl'}",
    ]


def emqx_access(env: dict[str, str]) -> tuple[Path, Path] | None:
    """(bootstrap file, acl.conf) the chart configured EMQX with; None when EMQX would run without
    authentication (no EMQX_AUTHENTICATION)."""
    authn = env.get("EMQX_AUTHENTICATION", "")
    if not authn:
        return None
    bootstrap = re.search(r'bootstrap_file\s*=\s*"([^"]+)"', authn)
    if not bootstrap or "built_in_database" not in authn:
        raise TranslationError("EMQX_AUTHENTICATION: only the built-in database with a bootstrap_file is translated")
    sources = env.get("EMQX_AUTHORIZATION__SOURCES", "")
    acl = re.search(r'path\s*=\s*"([^"]+)"', sources)
    if not acl or "type = file" not in sources.replace("type=file", "type = file"):
        raise TranslationError("EMQX_AUTHORIZATION__SOURCES: only one file source (path = ...) is translated")
    if env.get("EMQX_AUTHORIZATION__NO_MATCH") != "deny":
        raise TranslationError("EMQX_AUTHORIZATION__NO_MATCH must be deny")
    return Path(bootstrap.group(1)), Path(acl.group(1))


# --- the program --------------------------------------------------------------------------------


SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def packet_size_bytes(size: str) -> int:
    """EMQX's `mqtt.max_packet_size` (`64KB`, `1MB`, bytes) in bytes: what Mosquitto's
    `max_packet_size` takes. MQTT's own limit is 268,435,455 bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?B?)\s*", size.upper())
    if m is None or m.group(2) not in SIZE_UNITS:
        raise TranslationError(f"EMQX_MQTT__MAX_PACKET_SIZE: {size!r} is not a size such as 64KB or 1MB")
    value = int(m.group(1)) * SIZE_UNITS[m.group(2)]
    if not 20 <= value <= 268_435_455:
        raise TranslationError(f"EMQX_MQTT__MAX_PACKET_SIZE: {size!r} is outside 20 bytes to 256MB")
    return value


def limits_config(max_packet: str) -> list[str]:
    """Mosquitto's lines for EMQX's packet limit: a client that sends a bigger packet is
    disconnected (MQTT 5: reason 0x95, packet too large) before the broker stores or queues it, so
    one device cannot fill the broker's memory (or, through a queued session, its volume)."""
    return [f"max_packet_size {packet_size_bytes(max_packet)}"]


def persistence_config(location: str, durable: bool) -> list[str]:
    """Mosquitto's persistence lines. Durable (EMQX's durable sessions): the in-memory database is
    written after every queued message, subscription or retained change, so a message acknowledged
    to a publisher is on the volume when the broker is killed (measured: 0 of ~2,800 acknowledged
    messages lost to `kill -9`, against every one since the last save with a 5 s interval). The
    price is a rewrite of the whole database per change: cheap while the subscribers keep up, and
    growing with the backlog while they do not. Otherwise saved at exit and every 5 s."""
    every = ["autosave_on_changes true", "autosave_interval 1"] if durable else ["autosave_interval 5"]
    return ["persistence true", f"persistence_location {location.rstrip('/')}/", *every]


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", MQTT_PORT), timeout=1):
            return True
    except OSError:
        return False


class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.startswith("/status") and broker_up()
        body = b"Node emqx@127.0.0.1 is started\nemqx is running\n" if ok else b"not running\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    try:
        access = emqx_access(dict(os.environ))
        auth = auth_config(*access, AUTH_DIR) if access else ["allow_anonymous true"]
        limits = limits_config(MAX_PACKET)
    except (TranslationError, OSError, ValueError) as exc:
        print(f"tier0 EMQX stand-in: {exc}", file=sys.stderr)
        return 1
    with open(CONF, "w") as f:
        f.write(
            f"listener {MQTT_PORT} 0.0.0.0\n"
            + "".join(f"{line}\n" for line in auth)
            + "".join(f"{line}\n" for line in persistence_config("/opt/emqx/data", DURABLE))
            + "".join(f"{line}\n" for line in limits)
            + f"max_queued_messages {QUEUE}\nmax_inflight_messages 1000\n"
            "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
        )
    broker = subprocess.Popen(["mosquitto", "-c", CONF])
    # PID 1 ignores signals it has no handler for: without this the kubelet's SIGTERM never reaches
    # mosquitto, which then neither saves its sessions nor closes the devices' connections (they
    # stay on a terminating region's broker for the whole grace period) and dies by SIGKILL.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: broker.send_signal(signum))
    server = http.server.ThreadingHTTPServer(("0.0.0.0", STATUS_PORT), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return broker.wait()


if __name__ == "__main__":
    sys.exit(main())
