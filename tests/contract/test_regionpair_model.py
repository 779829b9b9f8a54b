"""One model of the RegionPair: the CRD's schema (crds/, copied into the operator chart) and
`tier0_contract.regionpair` name exactly the same fields, spec and status, at every depth — so the
operator, the API, the tests and the chart cannot drift apart without this failing."""

from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from tier0_contract import regionpair as rp
from tier0_dev.procs import ROOT

pytestmark = pytest.mark.unit

CRD = yaml.safe_load((ROOT / "crds" / "regionpairs.tier0.dev.yaml").read_text())
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]["properties"]


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None`, `tuple[X, ...]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        found = model_of(arg)
        if found is not None:
            return found
    return None


def alias(name: str, field: Any) -> str:
    return str(field.serialization_alias or field.alias or name)


def fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}.{alias(name, field)}" if prefix else alias(name, field)
        out.add(path)
        inner = model_of(field.annotation)
        if inner is not None:
            out |= fields(inner, path)
    return out


def schema_fields(schema: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    props = schema.get("properties") or (schema.get("items") or {}).get("properties") or {}
    for name, sub in props.items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        out |= schema_fields(sub, path)
    return out


@pytest.mark.parametrize(("part", "model"), [("spec", rp.RegionPairSpec), ("status", rp.RegionPairStatus)])
def test_the_crd_and_the_model_name_the_same_fields(part: str, model: type[BaseModel]) -> None:
    in_crd, in_model = schema_fields(SCHEMA[part]), fields(model)
    assert in_crd - in_model == set(), f"in the CRD, not in tier0_contract.regionpair: {sorted(in_crd - in_model)}"
    assert in_model - in_crd == set(), f"in tier0_contract.regionpair, not in the CRD: {sorted(in_model - in_crd)}"


def test_coordinates_match_the_crd() -> None:
    names = CRD["spec"]["names"]
    assert (CRD["spec"]["group"], VERSION["name"], names["plural"], names["kind"]) == (
        rp.GROUP,
        rp.VERSION,
        rp.PLURAL,
        rp.KIND,
    )


def test_enums_match_the_crd() -> None:
    status = SCHEMA["status"]["properties"]
    assert status["phase"]["enum"] == list(get_args(rp.Phase))
    assert status["lastTransition"]["properties"]["outcome"]["enum"] == list(get_args(rp.Outcome))
    assert status["regions"]["items"]["properties"]["role"]["enum"] == list(get_args(rp.Role))
    pipeline = status["regions"]["items"]["properties"]["pipeline"]["properties"]["state"]["enum"]
    assert pipeline == list(get_args(rp.PipelineState))


def test_a_written_status_round_trips() -> None:
    t = rp.TransitionStatus(type="Failover", from_region="a", to_region="b", epoch=3, started_at=rp.now())
    st = rp.RegionPairStatus(active_region="a", transition=t, regions=(rp.RegionStatus(name="a"),))
    again = rp.RegionPairStatus.model_validate(st.to_json())
    assert again == st and st.to_json()["transition"]["from"] == "a"
