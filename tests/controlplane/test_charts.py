"""The Helm charts, proven against a real kube-apiserver (tests/conftest.py's control plane).

What is tested:
- `helm lint --strict` passes for both charts, with default values and with ci/all-on-values.yaml;
- every object rendered with default values, and with the values file that turns everything on, is
  accepted by `kubectl apply --dry-run=server` (the RegionPair CRD from the operator chart installed
  first; minimal copies of the prometheus-operator CRDs for ServiceMonitor/PodMonitor/PrometheusRule);
- values.schema.json rejects bad values with a message naming the field;
- an upgrade keeps what the operator and the cluster own: the live Service selector, the live
  RegionPair spec.activeRegion and the generated passwords (`lookup`, via `helm template --dry-run=server`);
- the PrometheusRule's alert expressions are valid Prometheus rules (`promtool check rules`);
- every module the chart runs with `python -m` exists.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import ROOT, find_program

CHARTS = ROOT / "charts"
OPERATOR_CHART = CHARTS / "tier0-operator"
TIER0_CHART = CHARTS / "tier0"
# helm built with `go install` assumes Kubernetes v1.20 unless told; the control plane runs this one.
KUBE_VERSION = next(
    line.split("=", 1)[1].lstrip("v")
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if line.startswith("KUBERNETES_VERSION=")
)
OPERATOR_NS = "tier0-system"
APP_NS = "tier0-charts"
# Namespaces the all-on values files refer to (watched namespaces, the dashboards' namespace).
EXTRA_NS = ("tier0-a", "tier0-b", "monitoring")
MONITORING_KINDS = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}


def run(
    argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, env=env)


def helm(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [find_program("helm"), *args]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    return run(argv)


def render(chart: Path, release: str, namespace: str, *extra: str, kubeconfig: Path | None = None) -> str:
    # Without the `helm test` pods: they need the namespace's default ServiceAccount, which only a
    # controller-manager creates (tests/e2e runs them on a real cluster).
    out = helm(
        "template",
        release,
        str(chart),
        "-n",
        namespace,
        "--kube-version",
        KUBE_VERSION,
        "--skip-tests",
        *extra,
        kubeconfig=kubeconfig,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def objects(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def monitoring_crd(kind: str, plural: str) -> dict[str, Any]:
    """A minimal stand-in for a prometheus-operator CRD: the real group, kind and scope, any spec."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def cluster(kubectl: list[str]) -> Iterator[list[str]]:
    """Namespaces plus the CRDs the charts' objects need, installed as a user would (operator chart first)."""
    for ns in (OPERATOR_NS, APP_NS, *EXTRA_NS):
        out = run([*kubectl, "create", "namespace", ns])
        assert out.returncode == 0 or "AlreadyExists" in out.stderr, out.stderr
    crds = [
        o
        for o in objects(render(OPERATOR_CHART, "tier0-operator", OPERATOR_NS))
        if o["kind"] == "CustomResourceDefinition"
    ]
    assert [c["metadata"]["name"] for c in crds] == ["regionpairs.tier0.dev"]
    crds += [monitoring_crd(kind, plural) for kind, plural in MONITORING_KINDS.items()]
    out = run([*kubectl, "apply", "-f", "-"], yaml.safe_dump_all(crds))
    assert out.returncode == 0, out.stderr
    names = [f"crd/{c['metadata']['name']}" for c in crds]
    out = run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s", *names])
    assert out.returncode == 0, out.stderr
    yield kubectl


@pytest.mark.parametrize("chart", [OPERATOR_CHART, TIER0_CHART], ids=lambda p: p.name)
@pytest.mark.parametrize("values", ["default", "all-on"])
def test_helm_lint_strict(chart: Path, values: str) -> None:
    extra = ["-f", str(chart / "ci" / "all-on-values.yaml")] if values == "all-on" else []
    out = helm("lint", "--strict", str(chart), "--kube-version", KUBE_VERSION, *extra)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", ["default", "all-on"])
@pytest.mark.parametrize(
    ("chart", "namespace"), [(OPERATOR_CHART, OPERATOR_NS), (TIER0_CHART, APP_NS)], ids=["tier0-operator", "tier0"]
)
def test_every_rendered_object_is_accepted_by_the_apiserver(
    cluster: list[str], chart: Path, namespace: str, values: str
) -> None:
    extra = ["-f", str(chart / "ci" / "all-on-values.yaml")] if values == "all-on" else []
    manifest = render(chart, chart.name, namespace, *extra)
    docs = objects(manifest)
    assert docs, "the chart rendered nothing"
    if values == "all-on":
        kinds = {d["kind"] for d in docs}
        expected = (
            {"ServiceMonitor"} if chart == OPERATOR_CHART else {"PodMonitor", "PrometheusRule", "NetworkPolicy", "Job"}
        )
        assert expected <= kinds, f"all-on values did not render {expected - kinds}"
    # No -n: every namespaced object must carry its namespace itself.
    out = run([*cluster, "apply", "--dry-run=server", "-f", "-"], manifest)
    assert out.returncode == 0, out.stderr
    accepted = [line for line in out.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), out.stdout


@pytest.mark.parametrize(
    ("chart", "flags", "message"),
    [
        (TIER0_CHART, ["--set", "regions[0].name=Region_1"], "/regions/0/name"),
        (TIER0_CHART, ["--set-json", 'regions=[{"name":"region1"}]'], "minItems"),
        (TIER0_CHART, ["--set", "redis.auth.password=p@ss/word"], "/redis/auth/password"),
        (TIER0_CHART, ["--set", "simulators.devices.shards=0"], "/simulators/devices/shards"),
        (TIER0_CHART, ["--set", "regionPair.failover.mode=Sometimes"], "/regionPair/failover/mode"),
        (TIER0_CHART, ["--set", "redis.flavor=valkey"], "/redis/flavor"),
        (TIER0_CHART, ["--set", "emqx.replicas=3"], "additional properties 'replicas' not allowed"),
        (TIER0_CHART, ["--set", "activeRegion=region3"], 'activeRegion "region3" must be one of'),
        (OPERATOR_CHART, ["--set", "replicaCount=0"], "/replicaCount"),
        (OPERATOR_CHART, ["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (OPERATOR_CHART, ["--set", "watchNamespaces[0]=Not_A_Namespace"], "/watchNamespaces/0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_schema_rejects_bad_values_with_a_clear_message(chart: Path, flags: list[str], message: str) -> None:
    out = helm("template", "x", str(chart), "--kube-version", KUBE_VERSION, *flags)
    assert out.returncode != 0, f"accepted: {flags}"
    assert message in out.stderr, out.stderr


def test_upgrade_keeps_the_live_selector_active_region_and_passwords(
    cluster: list[str], control_plane: ControlPlane
) -> None:
    """After a failover to region2 an upgrade must not route back to region1 or rotate passwords."""
    ns = "tier0-upgrade"
    out = run([*cluster, "create", "namespace", ns])
    assert out.returncode == 0 or "AlreadyExists" in out.stderr, out.stderr
    # The state the operator leaves after a failover: selector and activeRegion on region2.
    first = objects(render(TIER0_CHART, "tier0", ns, "--set", "activeRegion=region2"))
    keep = [o for o in first if o["kind"] in {"Service", "Secret", "RegionPair"}]
    out = run([*cluster, "apply", "-n", ns, "-f", "-"], yaml.safe_dump_all(keep))
    assert out.returncode == 0, out.stderr

    # `helm upgrade` with the default values (activeRegion: region1) renders with lookup against the cluster.
    again = objects(render(TIER0_CHART, "tier0", ns, "--dry-run=server", kubeconfig=control_plane.kubeconfig))
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in again}
    assert by_name[("Service", "tier0-region-api")]["spec"]["selector"]["tier0.dev/region"] == "region2"
    assert by_name[("RegionPair", "tier0")]["spec"]["activeRegion"] == "region2"
    for o in keep:
        if o["kind"] == "Secret":
            assert by_name[("Secret", o["metadata"]["name"])]["data"] == o["data"], "a generated secret changed"


def test_alert_rules_are_valid_prometheus_rules(tmp_path: Path) -> None:
    docs = objects(render(TIER0_CHART, "tier0", APP_NS, "--set", "metrics.prometheusRule.enabled=true"))
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {"Tier0RegionDown", "Tier0ReplicationLagHigh", "Tier0IngestErrors", "Tier0FailoverHappened"}
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = run([find_program("promtool"), "check", "rules", str(rules)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_tier0_container_runs_a_module_that_exists() -> None:
    """The images' entrypoint is `python -m`; the chart's first argument names the module."""
    docs = objects(render(TIER0_CHART, "tier0", APP_NS))
    modules = set()
    for doc in docs:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if container["image"].startswith(("tier0/services:", "tier0/simulators:")):
                modules.add(container["args"][0])
    assert modules == {
        "tier0_services.api",
        "tier0_services.ingest",
        "tier0_services.activity",
        "tier0_simulators.devices",
        "tier0_simulators.users",
    }
    for module in modules:
        path = module.replace(".", "/")
        found = [*ROOT.glob(f"*/{path}/__main__.py"), *ROOT.glob(f"*/{path}.py")]
        assert found, f"the chart runs `python -m {module}`, which does not exist"
