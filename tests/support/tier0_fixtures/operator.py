"""Fixtures for the RegionPair operator tests: the CRD installed once, a namespace per test with
a `region-api` Service (annotated as pair `pair`'s), and the operator as a real subprocess against
the apiserver, running as a ServiceAccount that has exactly the rules in operator/rbac/ — the Role
in the test namespace only, as the chart grants it by default — so the RBAC YAML is tested too.

Not registered for every test: its `namespace` and `operator` differ from `tier0_fixtures.standin`'s
and the console's of the same names. The conftest of each folder with operator tests on the control
plane imports the fixtures (tests/failover, tests/health, tests/access, tests/kubectl, tests/dev).
"""

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tier0_dev.controlplane import ControlPlane, write_kubeconfig
from tier0_dev.procs import ROOT, Process
from tier0_kube import client as kube_client
from tier0_testing import operator as testing
from tier0_testing.operator import run_kubectl

RBAC = ROOT / "operator" / "rbac"


@pytest.fixture
def namespace(kubectl: list[str], regionpair_crd: Path) -> Iterator[str]:
    ns = f"rp-{uuid.uuid4().hex[:8]}"
    run_kubectl(kubectl, "create", "namespace", ns)
    svc = testing.service_manifest("region-api")
    run_kubectl(kubectl, "-n", ns, "apply", "-f", "-", stdin=json.dumps(svc))
    yield ns
    run_kubectl(kubectl, "delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[kube_client.Client]:
    client = await testing.kube_for(control_plane.kubeconfig)
    yield client
    await client.close()


OperatorFactory = Callable[..., tuple[Process, int]]


def rbac_in(namespace: str, name: str) -> str:
    """operator/rbac/`name` with its namespaces (the watched `tier0`, the operator's `tier0-system`)
    both set to `namespace`."""
    text = (RBAC / name).read_text()
    return text.replace("namespace: tier0-system", f"namespace: {namespace}").replace(
        "namespace: tier0\n", f"namespace: {namespace}\n"
    )


@pytest.fixture
def operator_kubeconfig(control_plane: ControlPlane, kubectl: list[str], namespace: str, tmp_path: Path) -> Path:
    """A kubeconfig for the `tier0-operator` ServiceAccount with exactly operator/rbac's rules: the
    Role, its RoleBinding and the leader-election Role, applied from their files in the test
    namespace (the operator's and the watched one at once)."""
    ns = ["-n", namespace]
    run_kubectl(kubectl, *ns, "create", "serviceaccount", "tier0-operator")
    for name in ("role.yaml", "rolebinding.yaml", "leader-election.yaml"):
        run_kubectl(kubectl, "apply", "-f", "-", stdin=rbac_in(namespace, name))
    token = run_kubectl(kubectl, *ns, "create", "token", "tier0-operator", "--duration=2h").strip()
    path = tmp_path / "operator-kubeconfig"
    pki = control_plane.state_dir / "pki" / "ca.crt"
    write_kubeconfig(path, control_plane.url, pki, token, user="system:serviceaccount:tier0-operator")
    return path


@pytest.fixture
def operator(operator_kubeconfig: Path, namespace: str, tmp_path: Path) -> Iterator[OperatorFactory]:
    """Start operator replicas on demand: `proc, metrics_port = operator(identity="a")`."""
    started: list[Process] = []

    def start(identity: str = "op", env: dict[str, str] | None = None, wedgeable: bool = False) -> tuple[Process, int]:
        proc, port = testing.start_operator(
            operator_kubeconfig,
            namespace,
            tmp_path / f"operator-{identity}-{len(started)}.log",
            identity=identity,
            env=env,
            wedgeable=wedgeable,
        )
        started.append(proc)
        return proc, port

    yield start
    for proc in started:
        proc.stop(timeout=5)
