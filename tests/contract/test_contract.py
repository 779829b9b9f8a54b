"""The telemetry contract: topic build/parse, payload validation (accepts the seeds' sample and what
the simulator sends, rejects malformed input), key names."""

import orjson
import pytest
from pydantic import ValidationError

from tier0_contract import keys, models, topics

pytestmark = pytest.mark.unit

SEED_SAMPLE = {
    "device_id": "TURB-00912",
    "device_type": "turbine",
    "site_id": "WY-ALPHA",
    "timestamp_utc": "2025-11-16T12:00:00Z",
    "firmware": "3.2.1",
    "metrics": {
        "rpm": 3487,
        "inlet_temp_c": 412.6,
        "exhaust_temp_c": 532.4,
        "vibration_mm_s": 2.1,
        "pressure_bar": 17.8,
        "power_kw": 12850.4,
    },
    "status": {"state": "OK", "code": "TURB-OK", "message": "Nominal"},
    "location": {"lat": 43.4231, "lon": -106.3148},
    "tags": {"vendor": "HanTech", "loop": "A1"},
}


def test_topic_round_trip_and_shared_subscription() -> None:
    t = topics.device_topic("WY-ALPHA", "turbine", "TURB-00912")
    assert t == "og/field/WY-ALPHA/turbine/TURB-00912"
    assert topics.parse_device_topic(t) == ("WY-ALPHA", "turbine", "TURB-00912")
    assert topics.shared_subscription() == "$share/ingest/og/field/#"
    assert topics.shared_subscription("ingest-region2") == "$share/ingest-region2/og/field/#"


@pytest.mark.parametrize(
    "topic", ["og/field/A/turbine", "og/field/A/turbine/X/extra", "og/other/A/turbine/X", "og/field//turbine/X", ""]
)
def test_parse_rejects_other_topics(topic: str) -> None:
    assert topics.parse_device_topic(topic) is None


def test_seed_sample_is_valid() -> None:
    msg = models.parse_device_payload(orjson.dumps(SEED_SAMPLE))
    assert msg["device_type"] == "turbine" and msg["status"]["state"] == "OK"
    assert msg["timestamp_utc"].timestamp() == 1763294400.0
    assert msg["metrics"]["rpm"] == 3487.0


def _with(path: str, value: object) -> bytes:
    doc = orjson.loads(orjson.dumps(SEED_SAMPLE))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("status.state", "BROKEN"),  # unknown state
        ("device_type", "toaster"),  # unknown type
        ("metrics.rpm", -5),  # out of physical bounds
        ("metrics.rpm", "fast"),  # not a number
        ("metrics.rpm", KeyError),  # missing metric
        ("metrics.coolant_temp_c", 80),  # a metric of another type
        ("timestamp_utc", "2025-11-16T12:00:00"),  # naive time
        ("timestamp_utc", "yesterday"),
        ("device_id", "TURB/1"),  # would break the topic
        ("site_id", "a b"),
        ("location.lat", 123),
        ("surprise", 1),  # unknown field
        ("firmware", KeyError),
    ],
)
def test_malformed_payloads_are_rejected(path: str, value: object) -> None:
    with pytest.raises(ValidationError):
        models.parse_device_payload(_with(path, value))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"null", b'{"device_type": "turbine"}'])
def test_garbage_is_rejected(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        models.parse_device_payload(raw)


def test_key_names_follow_the_seeds() -> None:
    assert keys.region_status("region1") == "region1:status"
    assert keys.site_metrics("WY-ALPHA") == "site:WY-ALPHA:metrics"
    assert keys.ACTIVE_DEVICES == "stats:active_devices" and keys.ACTIVE_USERS == "stats:active_users"
    assert set(keys.SITE_STATE_FIELDS) == {s.value for s in models.DeviceState}
    assert keys.site_type_field("turbine") == "turbine_count"
