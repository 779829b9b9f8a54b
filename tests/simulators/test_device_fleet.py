"""The simulated fleet (pure): layout (types 25% each, even sites), sharding, the state chain
(85/12/3 stationary, persistent ALERT), payloads that pass the contract."""

import random
from collections import Counter

import orjson
import pytest

from tier0_contract import models, topics
from tier0_simulators import fleet

pytestmark = pytest.mark.unit


def test_types_and_sites_are_even() -> None:
    devices = [fleet.device(i) for i in range(4000)]
    assert Counter(d.device_type for d in devices) == dict.fromkeys(fleet.TYPES, 1000)
    assert set(Counter(d.site.site_id for d in devices).values()) == {400}
    assert len({d.device_id for d in devices}) == 4000
    assert fleet.device(3648).device_id == "TURB-00912"


def test_device_is_deterministic() -> None:
    assert fleet.device(77) == fleet.device(77)


@pytest.mark.parametrize(("total", "count"), [(100_000, 4), (10, 3), (7, 7), (5, 8)])
def test_shards_partition_the_fleet(total: int, count: int) -> None:
    ranges = [fleet.shard_range(total, k, count) for k in range(count)]
    assert [i for r in ranges for i in r] == list(range(total))


def test_shard_index_out_of_range() -> None:
    with pytest.raises(ValueError):
        fleet.shard_range(10, 2, 2)


def test_chain_has_the_seeds_distribution() -> None:
    p = fleet.P
    for row in p:
        assert sum(row) == pytest.approx(1.0) and min(row) >= 0
    pi = fleet.STATIONARY
    for j in range(3):
        assert sum(pi[i] * p[i][j] for i in range(3)) == pytest.approx(pi[j])
    assert 1 / (1 - p[2][2]) == pytest.approx(30.0)  # mean ALERT dwell, steps
    assert 1 / (1 - p[1][1]) == pytest.approx(15.0)


def test_simulated_states_converge_and_persist() -> None:
    rng = random.Random(5)
    states = [fleet.initial_state(rng.random()) for _ in range(5000)]
    changes = 0
    for _ in range(60):
        new = [fleet.next_state(s, rng.random()) for s in states]
        changes += sum(a != b for a, b in zip(states, new, strict=True))
        states = new
    share = Counter(states)
    assert share[0] / 5000 == pytest.approx(0.85, abs=0.03)
    assert share[1] / 5000 == pytest.approx(0.12, abs=0.03)
    assert share[2] / 5000 == pytest.approx(0.03, abs=0.015)
    assert changes / (60 * 5000) < 0.05  # states persist from one second to the next


@pytest.mark.parametrize("state", [0, 1, 2])
def test_payloads_pass_the_contract_and_match_the_topic(state: int) -> None:
    rng = random.Random(state)
    for i in range(200):
        dev = fleet.device(i)
        doc = fleet.payload(dev, state, fleet.timestamp(1_763_294_400.25), rng)
        msg = models.parse_device_payload(orjson.dumps(doc))
        assert msg["status"]["state"] == fleet.STATES[state]
        assert topics.parse_device_topic(dev.topic) == (msg["site_id"], msg["device_type"], msg["device_id"])
        assert msg["timestamp_utc"].timestamp() == 1_763_294_400.25
        assert tuple(msg["metrics"]) == models.METRIC_FIELDS[dev.device_type]


def test_alert_readings_drift_from_nominal() -> None:
    rng = random.Random(1)
    dev = fleet.device(0)  # a turbine
    ok = [fleet.payload(dev, 0, "t", rng)["metrics"]["vibration_mm_s"] for _ in range(50)]
    alert = [fleet.payload(dev, 2, "t", rng)["metrics"]["vibration_mm_s"] for _ in range(50)]
    assert min(alert) > max(ok)
