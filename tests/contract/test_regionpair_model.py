"""One model of the RegionPair: crds/regionpairs.tier0.dev.yaml (copied into the operator chart) is
generated from `tier0_contract.regionpair` by hack/tier0_dev/crd.py, and the committed file must be
exactly what the generator writes now — so the operator, the API, the tests and the apiserver's
validation cannot drift apart without this failing. The model itself refuses what the CRD refuses."""

from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from tier0_contract import regionpair as rp
from tier0_dev import crd

pytestmark = pytest.mark.unit

CRD = yaml.safe_load(crd.OUTPUT.read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


def test_the_committed_crd_is_the_generators_output() -> None:
    assert crd.OUTPUT.read_text() == crd.render(), "crds/ differs from tier0_contract.regionpair: run `make crds`"


def nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        out += nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += nodes(schema["items"], f"{path}[]")
    return out


def test_the_schema_is_structural() -> None:
    for path, node in nodes(SCHEMA["spec"], "spec") + nodes(SCHEMA["status"], "status"):
        assert "type" in node, path
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title", "prefixItems", "nullable"} & set(node), path


def test_defaults_are_the_models_on_spec_and_none_on_status() -> None:
    spec = SCHEMA["spec"]["properties"]
    for part, model in (("failover", rp.FailoverPolicy), ("replication", rp.ReplicationPolicy)):
        assert spec[part]["default"] == {}  # filled in by its fields' defaults below
        defaults = {name: sub["default"] for name, sub in spec[part]["properties"].items()}
        assert defaults == model().to_json()
    assert spec["regions"]["items"]["properties"]["redis"]["properties"]["port"]["default"] == 6379
    assert "default" not in spec["services"] and "default" not in spec["service"]
    assert [p for p, node in nodes(SCHEMA["status"], "status") if "default" in node] == []


def test_active_region_may_be_left_out() -> None:
    assert SCHEMA["spec"]["required"] == ["regions"]
    spec = rp.RegionPairSpec.model_validate(
        {
            "services": [{"name": "api"}],
            "regions": [
                {"name": "a", "selector": {"r": "a"}, "redis": {"host": "h", "port": 1}},
                {"name": "b", "selector": {"r": "b"}, "redis": {"host": "h", "port": 2}},
            ],
        }
    )
    assert spec.active_region == "a"


REGION = {"name": "a", "selector": {"r": "a"}, "redis": {"host": "h"}}


@pytest.mark.parametrize(
    ("model", "value"),
    [
        (rp.FailoverPolicy, {"probeIntervalSeconds": 0.05}),
        (rp.FailoverPolicy, {"linkSilenceSeconds": 1}),
        (rp.FailoverPolicy, {"mode": "Sometimes"}),
        (rp.PipelinePolicy, {"stallAfterSeconds": 0.5}),
        (rp.Region, {**REGION, "name": "Region_1"}),
        (rp.Region, {**REGION, "selector": {}}),
        (rp.Region, {**REGION, "healthURL": "ftp://x"}),
        (rp.RedisEndpoint, {"host": "h", "port": 70000}),
        (rp.ServiceRoute, {"name": "api", "feeds": "telemetry"}),
    ],
)
def test_the_model_refuses_what_the_crd_refuses(model: type[BaseModel], value: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(value)


class _Union(BaseModel):
    x: int | str


class _Open(BaseModel):
    x: dict[str, Any] | None = None
    y: BaseModel | None = None


@pytest.mark.parametrize("model", [_Union, _Open])
def test_what_a_structural_schema_cannot_say_is_refused(model: type[BaseModel]) -> None:
    with pytest.raises(crd.UnsupportedSchemaError):
        crd.schema_of(model, defaults=True, where="spec")


def test_a_written_status_round_trips() -> None:
    t = rp.TransitionStatus(type="Failover", from_region="a", to_region="b", epoch=3, started_at=rp.now())
    st = rp.RegionPairStatus(active_region="a", transition=t, regions=(rp.RegionStatus(name="a"),))
    again = rp.RegionPairStatus.model_validate(st.to_json())
    assert again == st and st.to_json()["transition"]["from"] == "a"
