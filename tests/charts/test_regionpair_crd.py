"""The RegionPair CRD in the real apiserver: defaults are filled in, every schema / CEL rule
rejects a bad resource with a message a person understands (server-side dry run), and once a pair
exists its region names, Redis endpoints and selectors are immutable (CEL transition rules with
`oldSelf`, issue 17), while everything else may change and the regions may be reordered."""

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tier0_contract import regionpair as rp
from tier0_testing import operator as testing
from tier0_testing.operator import run_kubectl

pytestmark = pytest.mark.controlplane

GOOD = testing.pair_manifest("pair", {"region1": 6379, "region2": 6380})


def dry_run(kubectl: list[str], manifest: dict[str, Any]) -> tuple[bool, str]:
    out = run_kubectl(
        kubectl,
        "-n",
        "default",
        "apply",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        stdin=json.dumps(manifest),
        check=False,
    )
    return out.lstrip().startswith("{"), out


def mutate(path: str, value: Any) -> dict[str, Any]:
    m = copy.deepcopy(GOOD)
    target: Any = m
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is DELETE:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return m


DELETE = object()
REGION3 = {"name": "region3", "selector": {"r": "3"}, "redis": {"host": "h", "port": 1}}

CASES = [
    ("spec.activeRegion", "region9", "spec.activeRegion must be the name of one of spec.regions"),
    ("spec.regions.1.name", "region1", "spec.regions must have two distinct names"),
    ("spec.regions.1.redis.port", 6379, "the two regions must use different Redis servers"),
    ("spec.regions", [GOOD["spec"]["regions"][0]], "should have at least 2 items"),
    ("spec.regions", [*GOOD["spec"]["regions"], REGION3], "must have at most 2 items"),
    ("spec.failover.mode", "Sometimes", 'Unsupported value: "Sometimes"'),
    ("spec.failover.probeIntervalSeconds", 0, "failover.probeIntervalSeconds must be at least 0.1 seconds"),
    ("spec.failover.probeIntervalSeconds", 0.05, "should be greater than or equal to 0.1"),
    ("spec.failover.switchoverTimeoutSeconds", 0, "switchoverTimeoutSeconds must be at least 0.1 seconds"),
    ("spec.failover.fastConfirmSeconds", 0, "failover.fastConfirmSeconds must be at least 0.1 seconds"),
    ("spec.failover.fastProbeIntervalSeconds", 0, "fastProbeIntervalSeconds must be at least 0.05 seconds"),
    ("spec.failover.linkSilenceSeconds", 1, "should be greater than or equal to 2"),
    ("spec.failover.failureThreshold", 0, "should be greater than or equal to 1"),
    ("spec.service", DELETE, "spec.services must name at least one Service"),
    ("spec.services", [{"name": "x"}], "spec.service is deprecated: list every Service in spec.services"),
    ("spec.services", [{"name": "Bad_Name"}], "spec.services[0].name: Invalid value"),
    ("spec.services", [{"name": "a"}, {"name": "a"}], "Duplicate value"),
    ("spec.regions.0.name", "Region_1", "spec.regions[0].name: Invalid value"),
    ("spec.regions.0.selector", {}, "spec.regions[0].selector: Invalid value"),
    ("spec.regions.0.redis.port", 70000, "should be less than or equal to 65535"),
    ("spec.regions.0.healthURL", "ftp://x", "spec.regions[0].healthURL: Invalid value"),
    ("spec.replication.whenStandbyDown", "Sometimes", 'Unsupported value: "Sometimes"'),
    ("spec.replication.minReplicasMaxLagSeconds", 0, "should be greater than or equal to 1"),
    ("spec.pipeline.onStall", "Panic", 'Unsupported value: "Panic"'),
    ("spec.pipeline.stallAfterSeconds", 0, "pipeline.stallAfterSeconds must be at least 1 second"),
]


def test_a_valid_pair_is_accepted_with_defaults(kubectl: list[str], regionpair_crd: Path) -> None:
    m = copy.deepcopy(GOOD)
    del m["spec"]["failover"], m["spec"]["paused"], m["spec"]["regions"][0]["redis"]["port"]
    del m["spec"]["replication"], m["spec"]["pipeline"]
    ok, out = dry_run(kubectl, m)
    assert ok, out
    spec = json.loads(out)["spec"]
    assert spec["failover"] == {
        "mode": "Automatic",
        "probeIntervalSeconds": 1,
        "failureThreshold": 3,
        "switchoverTimeoutSeconds": 5,
        "onDisruption": "Switchover",
        "fastConfirmSeconds": 0.25,
        "fastProbeIntervalSeconds": 0.1,
        "linkSilenceSeconds": 3,
    }
    assert spec["failover"] == rp.FailoverPolicy().to_json()  # the model's defaults are the CRD's
    assert spec["paused"] is False
    assert spec["replication"] == {"whenStandbyDown": "Accept", "minReplicasMaxLagSeconds": 2}
    assert spec["pipeline"] == {"stallAfterSeconds": 10, "onStall": "Report"}
    assert spec["regions"][0]["redis"]["port"] == 6379


@pytest.mark.parametrize(("path", "value", "message"), CASES, ids=[c[0] + "=" + str(c[1])[:20] for c in CASES])
def test_invalid_pairs_are_rejected_with_a_readable_message(
    kubectl: list[str], regionpair_crd: Path, path: str, value: Any, message: str
) -> None:
    ok, out = dry_run(kubectl, mutate(path, value))
    assert not ok, f"accepted: {out[:200]}"
    assert message in out, out


def test_services_in_their_order_replace_the_deprecated_service(kubectl: list[str], regionpair_crd: Path) -> None:
    m = copy.deepcopy(GOOD)
    del m["spec"]["service"]
    mqtt = {"name": "mqtt", "selector": {"app.kubernetes.io/component": "emqx"}, "feeds": "ingest"}
    m["spec"]["services"] = [{"name": "api"}, mqtt]
    ok, out = dry_run(kubectl, m)
    assert ok, out
    assert [s["name"] for s in json.loads(out)["spec"]["services"]] == ["api", "mqtt"]
    assert json.loads(out)["spec"]["services"][1]["feeds"] == "ingest"
    m["spec"]["services"][1]["feeds"] = "telemetry"  # not a pipeline component
    ok, out = dry_run(kubectl, m)
    assert not ok and "feeds" in out and "ingest" in out, out


def test_printer_columns_and_short_name(kubectl: list[str], regionpair_crd: Path) -> None:
    out = run_kubectl(kubectl, "get", "crd", "regionpairs.tier0.dev", "-o", "json")
    crd_body = json.loads(out)
    assert crd_body["spec"]["names"]["shortNames"] == ["rp"]
    columns = [c["name"] for c in crd_body["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:5] == ["Active", "Phase", "Lag", "Last transition", "Pipeline"] and "Age" in columns


def test_the_local_example_is_valid(kubectl: list[str], regionpair_crd: Path) -> None:
    example = Path(__file__).parents[2] / "operator" / "examples" / "regionpair-local.yaml"
    out = run_kubectl(kubectl, "apply", "--dry-run=server", "-f", str(example))
    assert "regionpair.tier0.dev/og-field created (server dry run)" in out


# Each change of an existing pair the CRD refuses, and the message it gives.
IMMUTABLE = [
    ("spec.regions.1.name", "west", "region names are immutable"),
    ("spec.regions.0.redis.host", "10.0.0.9", "Redis endpoints are immutable"),
    ("spec.regions.1.redis.port", 7000, "Redis endpoints are immutable"),
    ("spec.regions.0.redis.replicationHost", "cross-region.example", "Redis endpoints are immutable"),
    ("spec.regions.0.redis.replicationPort", 7379, "Redis endpoints are immutable"),
    ("spec.regions.1.selector", {"app": "region-api", "tier0.dev/region": "region1"}, "selectors are immutable"),
    ("spec.regions.0.selector", {"app": "region-api"}, "selectors are immutable"),
]
# ... and changes it lets through.
MUTABLE = [
    ("spec.activeRegion", "region2"),
    ("spec.regions.0.healthURL", "http://elsewhere:8000/health"),
    ("spec.regions.0.redis.passwordSecretRef", {"name": "rotated", "key": "password"}),
    ("spec.failover.probeIntervalSeconds", 2),
    ("spec.regions", list(reversed(GOOD["spec"]["regions"]))),
    ("spec.paused", True),
]
EXISTING = "immutable-fields"


def patch_dry_run(kubectl: list[str], spec: dict[str, Any]) -> tuple[bool, str]:
    """A merge patch of the whole spec of the existing pair, validated and not stored."""
    out = run_kubectl(
        kubectl,
        "-n",
        "default",
        "patch",
        "regionpair",
        EXISTING,
        "--type=merge",
        "--dry-run=server",
        "-o",
        "json",
        "-p",
        json.dumps({"spec": spec}),
        check=False,
    )
    return out.lstrip().startswith("{"), out


@pytest.fixture(scope="module")
def existing_pair(kubectl: list[str], regionpair_crd: Path) -> Iterator[str]:
    m = copy.deepcopy(GOOD)
    m["metadata"]["name"] = EXISTING
    run_kubectl(kubectl, "-n", "default", "create", "-f", "-", stdin=json.dumps(m))
    yield EXISTING
    run_kubectl(kubectl, "-n", "default", "delete", "regionpair", EXISTING, "--wait=false", check=False)


@pytest.mark.parametrize(("path", "value", "message"), IMMUTABLE, ids=[f"{c[0]}={str(c[1])[:24]}" for c in IMMUTABLE])
def test_an_existing_pairs_regions_are_immutable_with_a_readable_message(
    kubectl: list[str], existing_pair: str, path: str, value: Any, message: str
) -> None:
    ok, out = patch_dry_run(kubectl, mutate(path, value)["spec"])
    assert not ok, f"accepted: {out[:200]}"
    assert message in out and "Changing a pair's regions" in out, out


@pytest.mark.parametrize(("path", "value"), MUTABLE, ids=[f"{c[0]}" for c in MUTABLE])
def test_everything_else_of_an_existing_pair_may_change(
    kubectl: list[str], existing_pair: str, path: str, value: Any
) -> None:
    ok, out = patch_dry_run(kubectl, mutate(path, value)["spec"])
    assert ok, out
