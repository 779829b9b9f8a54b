"""Pure parts of the region API: decoding stored values, the bearer-token check, Redis roles."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr

from tier0_services.api import auth, errors
from tier0_services.api.routers.core import role_of
from tier0_services.api.routers.devices import decode_alerts, filter_by_state, site_metrics_from_hash
from tier0_services.api.schemas import UserOut, decode_stored
from tier0_services.api.settings import Settings

pytestmark = pytest.mark.unit


def test_site_metrics_from_the_ingest_hash() -> None:
    fields = {
        b"device_count": b"40",
        b"ok_count": b"34",
        b"warn_count": b"5",
        b"alert_count": b"1",
        b"turbine_count": b"10",
        b"og_sensor_count": b"30",
        b"last_seen": b"1763294400.5",
    }
    body = site_metrics_from_hash("WY-ALPHA", fields)
    assert (body.device_count, body.ok_count, body.warn_count, body.alert_count) == (40, 34, 5, 1)
    assert body.devices_by_type == {"turbine": 10, "thermal_engine": 0, "electrical_rotor": 0, "og_sensor": 30}
    assert body.last_seen == datetime.fromtimestamp(1763294400.5, UTC)
    assert site_metrics_from_hash("X", {}).last_seen is None


def payload(device_id: str, state: str) -> bytes:
    return json.dumps(
        {
            "device_id": device_id,
            "device_type": "turbine",
            "site_id": "WY-ALPHA",
            "timestamp_utc": "2025-11-16T12:00:00Z",
            "firmware": "3.2.1",
            "metrics": {"rpm": 3487},
            "status": {"state": state, "code": "TURB-X", "message": "x"},
            "future_field": 1,
        }
    ).encode()


def test_alerts_skip_missing_recovered_and_unreadable_entries() -> None:
    alerts = decode_alerts([payload("A", "ALERT"), None, payload("B", "OK"), b"{not json", payload("C", "ALERT")])
    assert [a.device_id for a in alerts] == ["A", "C"]
    assert alerts[0].location is None and alerts[0].metrics == {"rpm": 3487}


def test_filter_by_state_entries() -> None:
    ids = [b"A", b"B", b"C", b"D"]
    states = [b"WY-ALPHA|turbine|ALERT", b"TX-BRAVO|turbine|ALERT", None, b"WY-ALPHA|og_sensor|ALERT"]
    assert list(filter_by_state(ids, states, "WY-ALPHA", None)) == [b"A", b"D"]
    assert list(filter_by_state(ids, states, None, "turbine")) == [b"A", b"B"]
    assert list(filter_by_state(ids, states, "WY-ALPHA", "og_sensor")) == [b"D"]


def test_decode_stored_ignores_extra_fields_and_skips_bad_values() -> None:
    user = {
        "user_id": "u1",
        "session_id": "s1",
        "login_time_utc": "2025-11-16T12:00:00Z",
        "last_activity_utc": "2025-11-16T12:01:00Z",
        "ip_address": "10.0.0.1",
        "client": "web",
        "location": "SJ",
        "connections": 2,
        "new_field": True,
    }
    assert [u.user_id for u in decode_stored(UserOut, [json.dumps(user).encode(), b"[]", None])] == ["u1"]


def test_redis_roles() -> None:
    assert role_of({"role": "master"}) == "primary"
    assert role_of({"role": "slave", "master_link_status": "up"}) == "replica"


def bearer(token: str, scheme: str = "Bearer") -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)


def test_bearer_token_checks() -> None:
    auth.check_bearer(bearer("s3cret"), ["other", "s3cret"])
    with pytest.raises(errors.UnauthorizedError):
        auth.check_bearer(None, ["s3cret"])
    with pytest.raises(errors.UnauthorizedError):
        auth.check_bearer(bearer("s3cret", scheme="Basic"), ["s3cret"])
    with pytest.raises(errors.ForbiddenError, match="not valid"):
        auth.check_bearer(bearer("guess"), ["s3cret"])
    with pytest.raises(errors.ForbiddenError, match="no API token is configured"):
        auth.check_bearer(bearer("anything"), [])


def test_tokens_from_env_and_a_rotated_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    settings = Settings(api_token=SecretStr("from-env"), api_token_file=secret)
    assert auth.accepted_tokens(settings) == ["from-env", "from-file"]
    secret.write_text("rotated")
    assert auth.accepted_tokens(settings) == ["from-env", "rotated"]
    assert auth.accepted_tokens(Settings()) == []
    with pytest.raises(errors.ForbiddenError, match="unreadable"):
        auth.accepted_tokens(Settings(api_token_file=tmp_path / "missing"))
