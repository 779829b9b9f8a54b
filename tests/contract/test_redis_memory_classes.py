"""Redis memory is bounded by policy: every key tier0 writes has a data class (keys.DATA_CLASSES),
only the evictable class carries a TTL, and the chart, the process stack and the test fixtures run
Redis with the same maxmemory policy and the chart's default maxmemory below the container limit."""

import inspect

import pytest
import yaml

from tier0_contract import keys
from tier0_dev import programs
from tier0_dev.procs import ROOT

pytestmark = pytest.mark.unit

NOT_KEYS = {
    # prefixes of key families, index names, and the section's own constants
    "IMAGE_EMBEDDING_PREFIX",
    "PASSAGE_PREFIX",
    "IMAGE_INDEX",
    "PASSAGE_INDEX",
    "MAXMEMORY_POLICY",
    "TELEMETRY",
    "CONTROL",
    "CATALOG",
    "ACCESS_LOG",
    "DEAD_LETTER",
    "EPHEMERAL",
    "LOGS_BY_DAY_EARLIER",  # a hash field's name
}


def test_every_key_has_a_data_class() -> None:
    constants = {
        name: value
        for name, value in vars(keys).items()
        if name.isupper() and isinstance(value, str) and name not in NOT_KEYS
    }
    assert constants, "no key constants found"
    missing = {name: value for name, value in constants.items() if keys.data_class(value) is None}
    assert not missing, f"keys without a data class in keys.DATA_CLASSES: {missing}"
    not_keys = {"data_class", "site_type_field"}  # a hash field's name, not a key
    functions = [f for name, f in vars(keys).items() if inspect.isfunction(f) and name not in not_keys]
    for function in functions:
        (param,) = inspect.signature(function).parameters.values()
        example = function(404) if param.annotation in (int, "int") else function("X-1")
        assert keys.data_class(example) is not None, f"{function.__name__}() -> {example!r} has no data class"
    assert set(keys.DATA_CLASSES.values()) <= {
        keys.TELEMETRY,
        keys.CONTROL,
        keys.CATALOG,
        keys.ACCESS_LOG,
        keys.DEAD_LETTER,
        keys.EPHEMERAL,
    }


def test_only_ephemeral_keys_are_evictable() -> None:
    assert keys.MAXMEMORY_POLICY.startswith("volatile-")
    assert keys.WITH_TTL == {keys.activity_seen("{message_id}")}
    assert keys.data_class(keys.activity_seen("MSG-1")) == keys.EPHEMERAL
    assert keys.data_class(keys.DEVICES_LATEST) == keys.TELEMETRY
    assert keys.data_class("logs:ips:4xx") == keys.data_class("logs:paths:503") == keys.ACCESS_LOG
    assert keys.data_class("somebody:else") is None


def test_chart_stack_and_fixtures_share_the_policy_and_the_limit() -> None:
    values = yaml.safe_load((ROOT / "charts" / "tier0" / "values.yaml").read_text())["redis"]
    assert values["maxmemoryPolicy"] == keys.MAXMEMORY_POLICY
    assert values["maxmemory"] == ""  # derived from the container limit by default
    assert values["resources"]["limits"]["memory"] == "1Gi"
    derived = 1024**3 * values["maxmemoryPercent"] // 100
    assert programs.REDIS_MAXMEMORY == f"{derived // 1024**2}mb"
    assert values["maxmemoryPercent"] < 100
