"""What the region API's ServiceAccount may do to its RegionPair, as the tier0 chart grants it, proven
against the real kube-apiserver (issue 17: "the region API's service account may patch the whole
RegionPair, not just spec.activeRegion").

What is tested, with the chart's own ServiceAccount, Role, RoleBinding, RegionPair and
ValidatingAdmissionPolicy (+ binding) rendered by helm and applied:
- the apiserver serves admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies (the plugin is on);
- the API's SA patches spec.activeRegion with the very patch the API sends (and its resourceVersion
  precondition), through the API's own Kubernetes client;
- any other spec field, a mix of activeRegion and another field, labels, annotations and finalizers
  are refused by the policy with a message naming what may change and what the request changed;
- the Role allows nothing else: no status, no delete, no list, no other RegionPair by name;
- the policy binds the API's SA only: the cluster admin may still change any field.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tier0_dev.controlplane import ControlPlane, write_kubeconfig
from tier0_dev.procs import find_program
from tier0_kube import client as kube
from tier0_testing import charts
from tier0_testing.operator import run_kubectl, wait_for

pytestmark = pytest.mark.controlplane

SA = "tier0-region-api"
PAIR = "tier0"
KINDS = {
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "RegionPair",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def render(namespace: str) -> list[dict[str, Any]]:
    return [d for d in charts.render("tier0", "tier0", namespace) if d["kind"] in KINDS]


@pytest.fixture
def api_sa(control_plane: ControlPlane, kubectl: list[str], namespace: str, tmp_path: Path) -> Iterator[Path]:
    """The chart's region API objects and the pair in `namespace`; a kubeconfig for the API's SA."""
    docs = render(namespace)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(KINDS), f"the chart renders {kinds}"
    run_kubectl(kubectl, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    token = run_kubectl(kubectl, "-n", namespace, "create", "token", SA, "--duration=1h").strip()
    path = tmp_path / "region-api-kubeconfig"
    write_kubeconfig(path, control_plane.url, control_plane.state_dir / "pki" / "ca.crt", token, user=SA)
    yield path
    for d in docs:  # the cluster-scoped ones outlive the namespace
        if d["kind"].startswith("ValidatingAdmissionPolicy"):
            run_kubectl(kubectl, "delete", d["kind"].lower(), d["metadata"]["name"], "--wait=false", check=False)


def as_sa(api_sa: Path, kubectl: list[str]) -> list[str]:
    return [find_program("kubectl"), "--kubeconfig", str(api_sa)]


def patch(argv: list[str], namespace: str, body: dict[str, Any], *extra: str) -> tuple[bool, str]:
    """A merge patch of the pair, validated by every admission step and not stored (dry run)."""
    res = subprocess.run(
        [*argv, "-n", namespace, "patch", "regionpair", PAIR, "--type=merge", "--dry-run=server", *extra]
        + ["-o", "json", "-p", json.dumps(body)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return res.returncode == 0, res.stdout + res.stderr


REFUSED = [
    ({"spec": {"paused": True}}, "this request also changes spec.paused"),
    ({"spec": {"failover": {"mode": "Manual"}}}, "this request also changes spec.failover"),
    ({"spec": {"activeRegion": "region2", "replication": {"whenStandbyDown": "Hold"}}}, "changes spec.replication"),
    ({"spec": {"generatedSecrets": []}}, "this request also changes spec.generatedSecrets"),
    ({"spec": {"additionalServices": ["someone-elses"]}}, "this request also changes spec.additionalServices"),
    ({"metadata": {"labels": {"stolen": "yes"}}}, "may not change a RegionPair's labels, annotations, finalizers"),
    ({"metadata": {"annotations": {"note": "x"}}}, "may not change a RegionPair's labels, annotations, finalizers"),
    ({"metadata": {"finalizers": ["example.com/hold"]}}, "may not change a RegionPair's labels, annotations"),
]


async def test_the_api_may_change_only_spec_active_region(
    kubectl: list[str], namespace: str, api_sa: Path, regionpair_crd: Path
) -> None:
    groups = json.loads(run_kubectl(kubectl, "get", "--raw", "/apis/admissionregistration.k8s.io/v1"))
    served = {r["name"] for r in groups["resources"]}
    assert {"validatingadmissionpolicies", "validatingadmissionpolicybindings"} <= served
    sa = as_sa(api_sa, kubectl)

    # The policy takes effect once the apiserver has loaded it (its informer): wait for the first refusal.
    async def enforced() -> bool:
        ok, out = patch(sa, namespace, {"spec": {"paused": True}})
        return not ok and "the region API may change only spec.activeRegion" in out

    await wait_for("the admission policy in force", enforced, timeout=20, every=0.2)

    # What the API sends (tier0_kube's request_region), through its own client, as its SA.
    client = await kube.connect(api_sa, ambient=False)
    try:
        before = await client.read_pair(namespace, PAIR)
        patched = await client.request_region(namespace, PAIR, "region2", before["metadata"]["resourceVersion"])
        assert patched.spec.active_region == "region2"
        after = await client.read_pair(namespace, PAIR)
        assert {k: v for k, v in after["spec"].items() if k != "activeRegion"} == {
            k: v for k, v in before["spec"].items() if k != "activeRegion"
        }
    finally:
        await client.close()


@pytest.mark.parametrize(("body", "message"), REFUSED, ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else "")
async def test_anything_else_is_refused_with_the_reason(
    kubectl: list[str], namespace: str, api_sa: Path, regionpair_crd: Path, body: dict[str, Any], message: str
) -> None:
    sa = as_sa(api_sa, kubectl)

    async def refused() -> str | None:
        ok, out = patch(sa, namespace, body)
        return out if not ok and "ValidatingAdmissionPolicy" in out else None

    # No expression may fail: a refusal is the policy's verdict, with its message.

    out = await wait_for(f"{body} refused", refused, timeout=20, every=0.2)
    assert message in out, out
    assert "the region API may" in out and "resulted in error" not in out, out
    # The same change by the cluster admin is not the policy's business.
    ok, out = patch(kubectl, namespace, body)
    assert ok, out


def test_the_role_allows_nothing_else(kubectl: list[str], namespace: str, api_sa: Path, regionpair_crd: Path) -> None:
    sa = as_sa(api_sa, kubectl)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*sa, "-n", namespace, *args], capture_output=True, text=True, timeout=30)

    assert run("get", "regionpair", PAIR, "-o", "name").returncode == 0
    denied = [
        run("patch", "regionpair", PAIR, "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Failed"}}'),
        run("delete", "regionpair", PAIR, "--dry-run=server"),
        run("get", "regionpairs"),
        run("get", "regionpair", "another-pair"),
        run("get", "secrets"),
        run("get", "services"),
    ]
    for res in denied:
        assert res.returncode != 0 and "Forbidden" in res.stderr, (res.args, res.stdout, res.stderr)
