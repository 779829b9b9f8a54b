"""The Kubernetes client's pure parts: resource paths, the switchover patch, kubeconfig and
in-cluster configuration, and how apiserver answers map to errors."""

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from tier0_services import kube

pytestmark = pytest.mark.unit


def test_regionpair_paths() -> None:
    ref = kube.regionpair_ref("prod", "og-field")
    assert ref.collection_path == "/apis/tier0.dev/v1alpha1/namespaces/prod/regionpairs"
    assert ref.path == "/apis/tier0.dev/v1alpha1/namespaces/prod/regionpairs/og-field"


def test_active_region_patch_with_and_without_precondition() -> None:
    assert kube.build_active_region_patch("region2") == {"spec": {"activeRegion": "region2"}}
    assert kube.build_active_region_patch("region2", "981") == {
        "spec": {"activeRegion": "region2"},
        "metadata": {"resourceVersion": "981"},
    }


def kubeconfig(
    user: Mapping[str, object], cluster: Mapping[str, object], namespace: str | None = None
) -> dict[str, object]:
    ctx: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "current-context": "x",
        "contexts": [{"name": "x", "context": ctx}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    }


def write(tmp_path: Path, doc: Mapping[str, object]) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


def test_kubeconfig_namespace_comes_from_its_current_context(tmp_path: Path) -> None:
    doc = kubeconfig({"token": "t0k"}, {"server": "https://127.0.0.1:6443/", "certificate-authority": "ca.crt"}, "ops")
    assert kube.load_config(write(tmp_path, doc)) == kube.KubeConfig(tmp_path / "kubeconfig", "ops")
    no_ns = kubeconfig({"token": "t0k"}, {"server": "https://127.0.0.1:6443/"})
    assert kube.load_config(write(tmp_path, no_ns)).namespace == "default"


async def test_the_library_loads_relative_certificates_and_exec_credentials(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    ca = tmp_path / "pki" / "ca.crt"
    ca.write_text("not checked until a connection is made")
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": "from-exec-plugin"},
    }
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": ["-c", f"echo '{json.dumps(credential)}'"],
            "interactiveMode": "Never",
        }
    }
    path = write(
        tmp_path, kubeconfig(user, {"server": "https://127.0.0.1:6443", "certificate-authority": "pki/ca.crt"})
    )
    conf = await kube._configuration(kube.load_config(path))
    assert conf.host == "https://127.0.0.1:6443" and conf.ssl_ca_cert == str(ca)
    assert conf.api_key.get("BearerToken", conf.api_key.get("authorization")) == "Bearer from-exec-plugin"


def test_kubeconfig_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(kube.KubeConfigError, match="cannot use kubeconfig"):
        kube.load_config(tmp_path / "absent")
    with pytest.raises(kube.KubeConfigError, match="current-context|context"):
        kube.load_config(write(tmp_path, {"clusters": [], "users": [], "contexts": []}))


def test_no_cluster_and_no_kubeconfig_says_what_to_set() -> None:
    with pytest.raises(kube.KubeConfigError, match="TIER0_KUBECONFIG"):
        kube.load_config(None, env={})


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, kube.KubeNotFoundError),
        (409, kube.KubeConflictError),
        (401, kube.KubeUnavailableError),
        (403, kube.KubeUnavailableError),
        (500, kube.KubeUnavailableError),
        (429, kube.KubeUnavailableError),
        (422, kube.KubeRequestError),
    ],
)
def test_apiserver_answers_map_to_errors(status: int, error: type[Exception]) -> None:
    ref = kube.regionpair_ref("ns", "og-field")
    exc = kube.error_for(ref, status, '{"kind": "Status", "message": "because"}')
    assert isinstance(exc, error)
    assert "og-field" in str(exc) or "because" in str(exc)
