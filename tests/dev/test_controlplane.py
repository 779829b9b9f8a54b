"""The local control plane is a real Kubernetes API: readyz, CRD validation (schema + CEL), RBAC."""

import json
import subprocess
import uuid

import pytest

from tier0_dev.controlplane import ControlPlane, write_kubeconfig
from tier0_testing.operator import run_kubectl

pytestmark = pytest.mark.controlplane

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.probe.tier0.dev"},
    "spec": {
        "group": "probe.tier0.dev",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["min", "max"],
                                "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {"rule": "self.min <= self.max", "message": "min must not exceed max"}
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)


def test_readyz_answers_ok_through_kubectl(kubectl: list[str]) -> None:
    out = run([*kubectl, "get", "--raw", "/readyz"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_crd_schema_and_cel_rules_are_enforced(kubectl: list[str]) -> None:
    applied = run([*kubectl, "apply", "-f", "-"], json.dumps(CRD))
    assert applied.returncode == 0, applied.stderr
    run_kubectl(kubectl, "wait", "--for=condition=Established", "crd/widgets.probe.tier0.dev", "--timeout=30s")

    def widget(spec: dict[str, object]) -> str:
        name = f"w-{uuid.uuid4().hex[:8]}"
        return json.dumps(
            {"apiVersion": "probe.tier0.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
        )

    ok = run([*kubectl, "create", "-f", "-"], widget({"min": 1, "max": 2}))
    assert ok.returncode == 0, ok.stderr
    cel = run([*kubectl, "create", "-f", "-"], widget({"min": 3, "max": 2}))
    assert cel.returncode != 0 and "min must not exceed max" in cel.stderr
    schema = run([*kubectl, "create", "-f", "-"], widget({"min": "three", "max": 2}))
    assert schema.returncode != 0 and "spec.min" in schema.stderr


def test_rbac_denies_an_unprivileged_identity(control_plane: ControlPlane, kubectl: list[str]) -> None:
    """Authorization is real RBAC, so least-privilege roles can be tested here."""
    # The static token file is read at start; a user without bindings must be forbidden.
    kubeconfig = control_plane.state_dir / "nobody.kubeconfig"
    write_kubeconfig(kubeconfig, control_plane.url, control_plane.state_dir / "pki" / "ca.crt", "not-a-token", "nobody")
    denied = run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "services"])
    assert denied.returncode != 0
    assert "Unauthorized" in denied.stderr or "must be logged in" in denied.stderr
    can = run([*kubectl, "auth", "can-i", "list", "services", "--as", "system:serviceaccount:default:nobody"])
    assert can.stdout.strip() == "no"


@pytest.mark.parametrize("kind", ["Service", "ConfigMap"])
def test_server_side_dry_run_validates_core_objects(kubectl: list[str], kind: str) -> None:
    bad = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "Not_A_DNS_Name"}}
    out = run([*kubectl, "apply", "--dry-run=server", "-f", "-"], json.dumps(bad))
    assert out.returncode != 0 and "Not_A_DNS_Name" in out.stderr
