"""The Kubernetes client's pure parts: resource paths, the switchover patch, kubeconfig and
in-cluster configuration, and how apiserver answers map to errors."""

import base64
from pathlib import Path

import pytest

from tier0_services import kube


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


def kubeconfig(user: dict[str, object], cluster: dict[str, object], namespace: str | None = None) -> dict[str, object]:
    ctx: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "current-context": "x",
        "contexts": [{"name": "x", "context": ctx}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    }


def test_kubeconfig_with_token_and_relative_ca(tmp_path: Path) -> None:
    doc = kubeconfig(
        {"token": "t0k"}, {"server": "https://127.0.0.1:6443/", "certificate-authority": "pki/ca.crt"}, "ops"
    )
    config = kube.config_from_kubeconfig(doc, tmp_path)
    assert config.server == "https://127.0.0.1:6443" and config.token == "t0k" and config.namespace == "ops"
    assert config.ca_file == tmp_path / "pki" / "ca.crt"


def test_kubeconfig_with_embedded_client_certificate(tmp_path: Path) -> None:
    b64 = base64.b64encode
    doc = kubeconfig(
        {"client-certificate-data": b64(b"CERT").decode(), "client-key-data": b64(b"KEY").decode()},
        {"server": "https://kind:6443", "certificate-authority-data": b64(b"CA").decode()},
    )
    config = kube.config_from_kubeconfig(doc, tmp_path)
    assert (config.client_cert, config.client_key, config.ca_data) == (b"CERT", b"KEY", b"CA")
    assert config.namespace == "default" and config.token is None


def test_kubeconfig_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(kube.KubeConfigError, match="current-context"):
        kube.config_from_kubeconfig({}, tmp_path)
    doc = kubeconfig({}, {"server": "https://x"})
    with pytest.raises(kube.KubeConfigError, match="no context named 'other'"):
        kube.config_from_kubeconfig(doc, tmp_path, context="other")


def test_in_cluster_config_reads_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("tier0\n")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    config = kube.in_cluster_config(env, tmp_path)
    assert config.server == "https://10.96.0.1:443" and config.namespace == "tier0"
    assert config.token_file == tmp_path / "token" and config.ca_file == tmp_path / "ca.crt"
    assert (
        kube.in_cluster_config({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}, tmp_path).server
        == "https://[fd00::1]:443"
    )
    with pytest.raises(kube.KubeConfigError, match="TIER0_KUBECONFIG"):
        kube.in_cluster_config({}, tmp_path)


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
    exc = kube._error(ref, status, '{"kind": "Status", "message": "because"}')
    assert isinstance(exc, error)
    assert "og-field" in str(exc) or "because" in str(exc)
