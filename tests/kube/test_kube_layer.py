"""The Kubernetes access layer's pure parts (`tier0_kube`): the write bodies, where the configuration
comes from (explicit kubeconfig and context, KUBECONFIG, in-cluster, ~/.kube/config) and its
namespace, readable configuration errors, and how apiserver answers map to the one error family
(including a failed JSON-patch `test` as a conflict)."""

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from tier0_contract import regionpair as rp
from tier0_kube import client, config, errors, patches
from tier0_testing.api import regionpair_manifest

pytestmark = pytest.mark.unit


def test_active_region_patch_with_and_without_precondition() -> None:
    assert patches.active_region("region2") == {"spec": {"activeRegion": "region2"}}
    assert patches.active_region("region2", "981") == {
        "spec": {"activeRegion": "region2"},
        "metadata": {"resourceVersion": "981"},
    }
    assert patches.content_type({"spec": {}}) == patches.MERGE_PATCH
    assert patches.content_type([{"op": "test", "path": "/x", "value": 1}]) == patches.JSON_PATCH
    assert patches.annotations({"a": "1", "b": None}) == {"metadata": {"annotations": {"a": "1", "b": None}}}


def kubeconfig(
    user: Mapping[str, object], cluster: Mapping[str, object], namespace: str | None = None
) -> dict[str, object]:
    ctx: dict[str, object] = {"cluster": "c", "user": "u"}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "current-context": "x",
        "contexts": [{"name": "x", "context": ctx}, {"name": "two", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    }


def write(tmp_path: Path, doc: Mapping[str, object], name: str = "kubeconfig") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


SERVER = {"server": "https://127.0.0.1:6443/"}


async def test_the_namespace_is_the_contexts_as_kubectl_takes_it(tmp_path: Path) -> None:
    path = write(tmp_path, kubeconfig({"token": "t0k"}, SERVER, "ops"))
    loaded = await config.load(path, env={})
    assert (loaded.namespace, loaded.source) == ("ops", str(path))
    assert (await config.load(path, "two", env={})).namespace == "default"
    no_ns = write(tmp_path, kubeconfig({"token": "t0k"}, SERVER), "plain")
    assert (await config.load(no_ns, env={})).namespace == "default"


async def test_kubeconfig_then_home_are_ambient_lookups_only(tmp_path: Path) -> None:
    via_env = write(tmp_path, kubeconfig({"token": "t"}, SERVER, "from-env"), "env-kubeconfig")
    assert (await config.load(env={"KUBECONFIG": str(via_env)})).namespace == "from-env"
    (tmp_path / ".kube").mkdir()
    write(tmp_path / ".kube", kubeconfig({"token": "t"}, SERVER, "from-home"), "config")
    assert (await config.load(env={"HOME": str(tmp_path)})).namespace == "from-home"
    # A server (ambient=False) takes only what it is given, or the in-cluster service account.
    with pytest.raises(errors.KubeConfigError, match="in-cluster service account"):
        await config.load(ambient=False, env={"KUBECONFIG": str(via_env), "HOME": str(tmp_path)})


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
    conf = (await config.load(path, env={})).configuration
    assert conf.host == "https://127.0.0.1:6443" and conf.ssl_ca_cert == str(ca)
    assert conf.api_key.get("BearerToken", conf.api_key.get("authorization")) == "Bearer from-exec-plugin"


async def test_kubeconfig_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(errors.KubeConfigError, match="cannot use kubeconfig"):
        await config.load(tmp_path / "absent", env={})
    with pytest.raises(errors.KubeConfigError, match="current-context"):
        await config.load(write(tmp_path, {"clusters": [], "users": [], "contexts": []}), env={})
    with pytest.raises(errors.KubeConfigError, match="no context 'three'"):
        await config.load(write(tmp_path, kubeconfig({"token": "t"}, SERVER)), "three", env={})
    with pytest.raises(errors.KubeConfigError, match="no kubeconfig given"):
        await config.load(None, env={})


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, errors.KubeNotFoundError),
        (409, errors.KubeConflictError),
        (401, errors.KubeUnavailableError),
        (403, errors.KubeUnavailableError),
        (500, errors.KubeUnavailableError),
        (429, errors.KubeUnavailableError),
        (422, errors.KubeRequestError),
    ],
)
def test_apiserver_answers_map_to_errors(status: int, error: type[Exception]) -> None:
    exc = errors.from_status(str(client.PairRef("ns", "og-field")), status, '{"kind": "Status", "message": "because"}')
    assert isinstance(exc, error) and exc.status == status
    assert "og-field" in str(exc) and (status == 404 or "because" in str(exc))
    assert exc.conflict == (status == 409)


def test_a_failed_json_patch_test_is_a_conflict() -> None:
    body = '{"kind": "Status", "message": "the server rejected our request: testing value /status/epoch failed"}'
    assert isinstance(errors.from_status("regionpair status", 422, body, json_patch=True), errors.KubeConflictError)
    assert errors.from_status("regionpair status", 422, body, json_patch=True).conflict
    # A merge patch's 422 is a validation error, whatever its message says.
    assert isinstance(errors.from_status("regionpair", 422, body), errors.KubeRequestError)


def test_a_pair_is_read_as_the_contracts_model() -> None:
    obj = {**regionpair_manifest(), "metadata": {"name": "og-field", "namespace": "ns", "resourceVersion": "7"}}
    pair = client.parse_pair(obj)
    assert isinstance(pair, rp.RegionPair) and pair.metadata.resource_version == "7"
    with pytest.raises(errors.KubeObjectError, match="RegionPair ns/broken does not match its schema"):
        client.parse_pair({"metadata": {"name": "broken", "namespace": "ns"}, "spec": {"regions": []}})
