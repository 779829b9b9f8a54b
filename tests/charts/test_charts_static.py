"""The charts, images and dashboards stay in step with their sources (no cluster, no helm).

What is tested:
- the operator chart's CRD and RBAC rules are byte-for-byte copies of crds/ and operator/rbac/;
- the dashboards in dashboards/ and the chart's copy are exactly what hack/tier0_dev/dashboards.py writes;
- every value in each chart's values.yaml is described in its values.schema.json (and vice versa);
- the defaults make a region a failure domain (brokers per region, anti-affinity, budgets, the
  switchover wait); the single-node clusters relax the anti-affinity and say why;
- tier0's one Dockerfile (images/tier0) is multi-stage, takes ARG BASE_IMAGE (default
  python:3.11-slim) and ARG COMPONENT, runs as a numeric non-root user, installs the component's
  hash-pinned lock, copies only its own package and the contract, and has a final stage per
  component; `make images` builds each component from it with its COMPONENT.
"""

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tier0_dev import dashboards
from tier0_dev.node import images
from tier0_dev.procs import ROOT

pytestmark = pytest.mark.unit

CHARTS = ROOT / "charts"
# component -> (the optional dependency groups its image installs, its default `python -m` module).
# The region API imports the AI features (tier0_services.ai) at start, so services needs `ai` too.
IMAGES = {
    "operator": (["operator"], "tier0_operator"),
    "services": (["services", "ai"], "tier0_services.api"),
    "simulators": (["simulators"], "tier0_simulators.devices"),
}


@pytest.mark.parametrize(
    ("source", "copy"),
    [
        (ROOT / "crds" / "regionpairs.tier0.dev.yaml", "files/crds/regionpairs.tier0.dev.yaml"),
        (ROOT / "operator" / "rbac" / "role.yaml", "files/rbac/role.yaml"),
        (ROOT / "operator" / "rbac" / "leader-election.yaml", "files/rbac/leader-election.yaml"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else None,
)
def test_operator_chart_files_are_copies_of_their_sources(source: Path, copy: str) -> None:
    """The CRD (crds/, generated from the RegionPair model) and the RBAC rules the operator's tests run with."""
    chart_copy = CHARTS / "tier0-operator" / copy
    assert chart_copy.read_bytes() == source.read_bytes(), f"{copy} drifted from {source}: run `make charts-sync`"


def test_the_chart_ships_every_crd() -> None:
    shipped = sorted(p.name for p in (CHARTS / "tier0-operator" / "files" / "crds").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))


@pytest.mark.parametrize("out", dashboards.OUTPUT_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_dashboards_are_what_the_generator_writes(out: Path) -> None:
    expected = dict(dashboards.files())
    assert sorted(p.name for p in out.glob("*.json")) == sorted(expected), "run `make dashboards`"
    for name, content in expected.items():
        assert (out / name).read_text() == content, f"{out / name} is stale: run `make dashboards`"


def leaf_paths(values: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every value; maps are walked, lists and scalars are leaves."""
    if isinstance(values, dict) and values:
        return set().union(*(leaf_paths(v, f"{prefix}.{k}" if prefix else k) for k, v in values.items()))
    return {prefix}


def schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    props = schema.get("properties")
    if not props:
        return {prefix}
    return set().union(*(schema_paths(v, f"{prefix}.{k}" if prefix else k) for k, v in props.items()))


@pytest.mark.parametrize("chart", ["tier0-operator", "tier0"])
def test_every_value_is_described_in_the_schema(chart: str) -> None:
    values = yaml.safe_load((CHARTS / chart / "values.yaml").read_text())
    schema = json.loads((CHARTS / chart / "values.schema.json").read_text())
    described = schema_paths(schema)
    # An empty map in values.yaml (e.g. annotations: {}) is described by its own schema entry.
    missing = {p for p in leaf_paths(values) if not any(p == d or p.startswith(d + ".") for d in described)}
    assert not missing, f"values without a schema entry: {sorted(missing)}"
    unused = {
        d
        for d in described
        if not any(p == d or p.startswith(d + ".") or d.startswith(p + ".") for p in leaf_paths(values))
    }
    assert not unused, f"schema entries without a value in values.yaml: {sorted(unused)}"

    def walk(node: dict[str, Any], where: str) -> None:
        assert node.get("description") or where == "", f"{where} has no description"
        for k, v in node.get("properties", {}).items():
            walk(v, f"{where}.{k}")

    walk(schema, "")


DOCKERFILE = ROOT / "images" / "tier0" / "Dockerfile"


def _stages(text: str) -> dict[str, str]:
    """The Dockerfile's named stages: name -> the instructions up to the next FROM."""
    parts = re.split(r"^FROM ", text, flags=re.M)[1:]
    named = {}
    for part in parts:
        head, _, body = part.partition("\n")
        m = re.search(r" AS (\S+)$", head)
        if m:
            named[m.group(1)] = body
    return named


def test_dockerfile_is_multi_stage_non_root_and_ends_in_the_components_stage() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert re.search(r"^ARG COMPONENT$", text, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", text, re.M)) >= 2, "not multi-stage"
    users = re.findall(r"^USER (\d+)(?::(\d+))?$", text, re.M)
    assert users and all(int(u) > 0 for u, _ in users), "the final stages must run as a numeric non-root user"
    # The last FROM picks the component's stage, so one build argument gives one component's image.
    assert re.findall(r"^FROM (.*)$", text, re.M)[-1] == "final-${COMPONENT}"
    # Pinned: the dependencies from the component's hash-locked file, the project without deps.
    assert re.findall(r"^COPY hack/requirements/(\S+)\.txt ", text, re.M) == ["${COMPONENT}"]
    assert "--require-hashes" in text and "pip install --no-deps ." in text


@pytest.mark.parametrize("component", sorted(IMAGES))
def test_each_component_has_its_stage_lock_and_entrypoint(component: str) -> None:
    """A final stage per component, titled tier0-<component>, whose `python -m` module exists; its
    lock is hash-pinned and installs only its component's groups."""
    wanted, module = IMAGES[component]
    stage = _stages(DOCKERFILE.read_text())[f"final-{component}"]
    assert f'org.opencontainers.image.title="tier0-{component}"' in stage
    groups = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert "--hash=sha256:" in (ROOT / "hack" / "requirements" / f"{component}.txt").read_text()
    assert set(wanted) <= groups
    assert module in stage, f"the final-{component} stage does not run {module}"
    path = module.replace(".", "/")
    entry = [*ROOT.glob(f"*/{path}/__main__.py"), *ROOT.glob(f"*/{path}.py")]
    assert entry, f"python -m {module} has nothing to run: the image's entrypoint would fail"
    # The smoke import of the build stage names this component's package.
    smoke = re.search(rf"^\s+{component}\) echo \"([^\"]+)\"", DOCKERFILE.read_text(), re.M)
    assert smoke and all(m.strip().startswith(f"tier0_{component}") for m in smoke.group(1).split(","))


def test_the_image_copies_only_the_components_package_and_the_contract() -> None:
    """Its component, the contract and the Kubernetes layer, which the simulators' image drops
    before its wheel is built (they never talk to Kubernetes)."""
    text = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY (?!--from)(\S+)", text, re.M)
    assert 'if [ "${COMPONENT}" = simulators ]; then rm -r kube; fi' in text
    assert sorted(copies) == sorted(
        [
            "hack/requirements/${COMPONENT}.txt",
            "pyproject.toml",
            "${COMPONENT}/tier0_${COMPONENT}/",
            "contract/tier0_contract/",
            "kube/tier0_kube/",
        ]
    )
    for component in IMAGES:
        assert (ROOT / component / f"tier0_{component}").is_dir()


def test_make_images_builds_each_component_from_the_one_dockerfile() -> None:
    """`make images` (tier0_dev.node.images) passes COMPONENT, keeps the image names, and hashes what
    the Dockerfile copies for that component (a changed lock or contract rebuilds)."""
    assert {i.name: (i.dockerfile, i.build_args, i.ref.rsplit(":", 1)[0]) for i in images.TIER0} == {
        c: (DOCKERFILE, {"COMPONENT": c}, f"localhost/tier0/{c}") for c in IMAGES
    }
    for img in images.TIER0:
        hashed = {p.relative_to(ROOT).as_posix() for p in img.inputs}
        assert {
            f"hack/requirements/{img.name}.txt",
            f"{img.name}/tier0_{img.name}",
            "contract/tier0_contract",
            "pyproject.toml",
        } <= hashed
        assert ("kube/tier0_kube" in hashed) == (img.name != "simulators")
        assert all(p.exists() for p in img.inputs)


@pytest.mark.parametrize("component", sorted(IMAGES))
def test_each_lock_pins_every_dependency_of_its_groups(component: str) -> None:
    """hack/requirements/<component>.txt (`make lock`) has an exact pin for each direct dependency."""
    wanted, _ = IMAGES[component]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"]) + [d for g in wanted for d in project["optional-dependencies"][g]]
    lock = (ROOT / "hack" / "requirements" / f"{component}.txt").read_text().lower()
    pinned = set(re.findall(r"^([a-z0-9._-]+)==", lock, re.M))
    for dep in deps:
        name = re.split(r"[<>=!\[; ]", dep, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pinned, f"{name} is not pinned in hack/requirements/{component}.txt: run `make lock`"


def test_a_region_is_a_failure_domain_by_default() -> None:
    """Issue 18: the chart's defaults run a broker of each kind per region, keep the two Redis and the
    two brokers of a kind on different nodes, budget disruptions and wait for a switchover before a
    primary Redis exits; a chart that defaulted otherwise would ship a single point of failure."""
    values = yaml.safe_load((CHARTS / "tier0" / "values.yaml").read_text())
    assert values["brokers"] == {"perRegion": True, "antiAffinity": "required"}
    assert values["redis"]["antiAffinity"] == "required" and values["redis"]["switchoverWaitSeconds"] > 0
    assert values["podDisruptionBudget"] == {"enabled": True}
    assert values["regionApi"]["preStopSleepSeconds"] > 0 and values["regionApi"]["replicas"] >= 2
    assert values["regionApi"]["antiAffinity"] in ("preferred", "required")


def test_the_single_node_clusters_relax_the_anti_affinity_and_say_why() -> None:
    """The built-in node and kind (both installed with hack/node-values.yaml) have one node: a
    required anti-affinity would leave the second Redis and the second broker of each kind Pending."""
    text = (ROOT / "hack" / "node-values.yaml").read_text()
    values = yaml.safe_load(text)
    assert values["redis"]["antiAffinity"] == "preferred" and values["brokers"]["antiAffinity"] == "preferred"
    assert "single node" in text and "Pending" in text
