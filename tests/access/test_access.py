"""Credentials and access rules, without servers (the servers enforcing them: tests/access/
test_access_*.py).

What is tested: a URL shown in a log keeps its user but not its password; a credential file's errors
name the file, never the value; the Redis ACL file holds hashes, not passwords, and every role's
user; the replication password survives Redis's config quoting; RabbitMQ's password hash is its
salted SHA-256; EMQX's bootstrap file lists the three MQTT users; the Mosquitto stand-in translates
the chart's acl.conf and refuses what it cannot reproduce.
"""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tier0_contract import credentials
from tier0_dev import programs
from tier0_services.access import mqtt, rabbitmq, redis, secretfiles

pytestmark = pytest.mark.unit

PASSWORDS = {user: f"pw-{user}" for user in redis.SECRET_KEYS}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@redis-region1:6379/0", "redis://:***@redis-region1:6379/0"),
        ("redis://tier0-app:s3cret@10.0.0.1:6379/0", "redis://tier0-app:***@10.0.0.1:6379/0"),
        ("amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://guest:***@127.0.0.1:5672/%2F"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("rediss://user@[::1]:6380/0", "rediss://user@[::1]:6380/0"),
        ("redis://:p@ss:word@host:bad/0", "redis://***"),
    ],
)
def test_a_url_in_a_log_keeps_its_user_never_its_password(url: str, shown: str) -> None:
    assert credentials.redact_url(url) == shown
    assert "s3cret" not in credentials.redact_url(url)


def test_a_credential_file_error_names_the_file_not_the_value(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(credentials.CredentialError, match="empty"):
        credentials.read_secret(tmp_path / "empty")
    with pytest.raises(credentials.CredentialError, match="missing"):
        credentials.read_secret(tmp_path / "missing")
    (tmp_path / "ok").write_text("value\n")
    assert credentials.read_secret(tmp_path / "ok") == "value"
    assert credentials.read_optional(None) is None


def test_a_password_with_a_line_break_is_refused_unshown(tmp_path: Path) -> None:
    (tmp_path / "app-password").write_text("first\nsecond-line-secret")
    with pytest.raises(secretfiles.SecretFormatError) as err:
        secretfiles.read(tmp_path, ["app-password"])
    assert "app-password" in str(err.value) and "second-line-secret" not in str(err.value)


def test_the_redis_acl_file_holds_hashes_and_every_role() -> None:
    text = redis.acl_file(PASSWORDS)
    lines = {line.split()[1]: line for line in text.splitlines()}
    assert set(lines) == {"default", *redis.RULES}
    assert lines["default"] == f"user default on {redis.DEFAULT_RULES}"
    for user, password in PASSWORDS.items():
        assert password not in text
        assert f"#{hashlib.sha256(password.encode()).hexdigest()}" in lines[user]
    assert "-@dangerous" in lines[redis.APP] and "~*" in lines[redis.APP]
    assert "~pair:epoch ~pipeline:heartbeats" in lines[redis.OPERATOR] and "~*" not in lines[redis.OPERATOR]
    assert lines[redis.REPLICATION].endswith("-@all +psync +replconf +ping")
    # The Redis pod's preStop hook asks ROLE as the exporter, which reads no key.
    assert (
        " +role " in lines[redis.EXPORTER] and "resetkeys" in lines[redis.EXPORTER] and "~" not in lines[redis.EXPORTER]
    )


@pytest.mark.parametrize("password", ["plain", 'with "quotes" and \\ backslash', "sp ace#hash"])
def test_the_replication_password_survives_redis_config_quoting(password: str) -> None:
    conf = redis.auth_conf({**PASSWORDS, redis.REPLICATION: password}, Path("/run/redis/users.acl"))
    line = next(x for x in conf.splitlines() if x.startswith("masterauth "))
    # Redis reads a double-quoted argument with backslash escapes (sdssplitargs).
    quoted = line.removeprefix("masterauth ")
    assert quoted.startswith('"') and quoted.endswith('"')
    assert json.loads(quoted) == password  # JSON's string escapes agree with Redis's for " and \
    assert f"masteruser {redis.REPLICATION}" in conf and 'aclfile "/run/redis/users.acl"' in conf


def test_the_exporter_password_file_serves_old_and_new_exporters() -> None:
    keys = json.loads(redis.exporter_passwords("pw", "redis://127.0.0.1:6379"))
    assert keys == {"redis://127.0.0.1:6379": "pw", f"redis://{redis.EXPORTER}@127.0.0.1:6379": "pw"}


def test_rabbitmq_definitions_hold_salted_sha256_hashes_and_a_vhost_bound_app_user() -> None:
    doc = rabbitmq.definitions("admin", "admin-pw", "app-pw")
    users = {u["name"]: u for u in doc["users"]}
    assert set(users) == {"admin", rabbitmq.APP} and "app-pw" not in json.dumps(doc)
    raw = base64.b64decode(users[rabbitmq.APP]["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert digest == hashlib.sha256(salt + b"app-pw").digest()
    assert users["admin"]["tags"] == ["administrator"] and users[rabbitmq.APP]["tags"] == []
    (perm,) = [p for p in doc["permissions"] if p["user"] == rabbitmq.APP]
    assert perm["vhost"] == "tier0"
    assert perm["configure"] == r"^(webapp_active_users|webapp_active_users\.dlx|webapp_active_users\.dead)$"


def test_the_emqx_bootstrap_file_lists_the_mqtt_users() -> None:
    users = json.loads(mqtt.bootstrap({u: f"pw-{u}" for u in mqtt.SECRET_KEYS}))
    assert [(u["user_id"], u["is_superuser"]) for u in users] == [(u, False) for u in mqtt.SECRET_KEYS]


def test_the_access_cli_writes_owner_only_files_and_prints_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tier0_services.access import __main__ as cli

    secrets = programs.Secrets.generate(tmp_path / "secrets")
    assert cli.main(["redis", "--secrets", str(secrets.dir("redis")), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert not any(v in printed for v in secrets.values())
    for path in (tmp_path / "out").iterdir():
        assert path.stat().st_mode & 0o007 == 0, path
    assert cli.main(["mqtt", "--secrets", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 1
    assert "nothing" in capsys.readouterr().err


# --- the Mosquitto stand-in's translation of acl.conf ---------------------------------------------


def standin() -> Any:
    return programs.mosquitto_standin()


def users(*names: str) -> list[dict[str, Any]]:
    return [{"user_id": n, "password": f"pw-{n}", "is_superuser": False} for n in names]


def test_the_charts_acl_conf_is_read_as_three_roles() -> None:
    rules = standin().rules_by_user(standin().parse_terms(programs.EMQX_ACL.read_text()))
    assert rules == {
        mqtt.INGEST: {"publish": [], "subscribe": [("og/field/#", True)]},
        mqtt.GATEWAY: {"publish": [("og/field/+/+/+", False)], "subscribe": []},
        mqtt.DEVICE: {"publish": [("og/field/+/+/${clientid}", False)], "subscribe": []},
    }


def test_only_the_device_role_leaves_publishing_to_its_client_id_pattern() -> None:
    config, patterns = standin().translate(programs.EMQX_ACL.read_text(), users(mqtt.INGEST, mqtt.GATEWAY, mqtt.DEVICE))
    assert patterns == "pattern write og/field/+/+/%c\n"
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}

    def denied(user: str, acltype: str) -> bool:
        return {"acltype": acltype, "topic": "#", "allow": False, "priority": 0} in roles[f"acl-{user}"]

    assert denied(mqtt.INGEST, "publishClientSend") and denied(mqtt.GATEWAY, "publishClientSend")
    assert not denied(mqtt.DEVICE, "publishClientSend")
    assert all(denied(u, "subscribePattern") for u in (mqtt.INGEST, mqtt.GATEWAY, mqtt.DEVICE))
    ingest = roles[f"acl-{mqtt.INGEST}"]
    assert {"acltype": "subscribePattern", "topic": "$share/+/og/field/#", "allow": True, "priority": 10} in ingest
    assert config["defaultACLAccess"]["subscribe"] is False
    assert all("pw-" not in json.dumps(c) for c in config["clients"])  # PBKDF2 hashes only


def test_a_client_hash_is_what_mosquitto_computes() -> None:
    client = standin().dynsec_client("u", "secret", salt=b"0123456789ab")
    digest = hashlib.pbkdf2_hmac("sha512", b"secret", b"0123456789ab", 101, 64)
    assert base64.b64decode(client["password"]) == digest and client["iterations"] == 101


@pytest.mark.parametrize(
    ("acl", "why"),
    [
        ("{allow, all}.\n{deny, all}.", "only allow rules"),
        ('{allow, {username, "a"}, publish, ["t"]}.', "last rule must be {deny, all}"),
        ('{deny, {username, "a"}, publish, ["t"]}.\n{deny, all}.', "only allow rules"),
        ('{allow, {clientid, "a"}, publish, ["t"]}.\n{deny, all}.', "subjects"),
        ('{allow, {username, "a"}, all, ["t"]}.\n{deny, all}.', "publish/subscribe"),
        ('{allow, {username, "a"}, publish, ["${cert_common_name}/t"]}.\n{deny, all}.', "placeholder"),
        ('{allow, {username, "a"}, publish, ["t"]}\n{deny, all}.', "period"),
    ],
)
def test_the_standin_refuses_what_it_cannot_reproduce(acl: str, why: str) -> None:
    with pytest.raises(standin().TranslationError, match=why.replace("{", r"\{").replace("}", r"\}")):
        standin().translate(acl, users("a"))


def test_the_standin_refuses_a_superuser() -> None:
    with pytest.raises(standin().TranslationError, match="superuser"):
        standin().translate("{deny, all}.", [{"user_id": "root", "password": "x", "is_superuser": True}])


def test_the_standin_reads_the_charts_emqx_settings(tmp_path: Path) -> None:
    env = {
        "EMQX_AUTHENTICATION": "[{mechanism = password_based, backend = built_in_database, "
        'bootstrap_file = "/b/users.json", bootstrap_type = plain}]',
        "EMQX_AUTHORIZATION__SOURCES": '[{type = file, enable = true, path = "/a/acl.conf"}]',
        "EMQX_AUTHORIZATION__NO_MATCH": "deny",
    }
    assert standin().emqx_access(env) == (Path("/b/users.json"), Path("/a/acl.conf"))
    assert standin().emqx_access({}) is None  # EMQX without an authenticator lets everyone in: so does the stand-in
    with pytest.raises(standin().TranslationError, match="NO_MATCH"):
        standin().emqx_access({**env, "EMQX_AUTHORIZATION__NO_MATCH": "allow"})
