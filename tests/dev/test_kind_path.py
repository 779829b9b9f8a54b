"""The kind path's pure decisions: the engine's configuration (nothing routed out of the machine),
the runc wrapper's capability filter, the cluster configuration with and without the adaptations,
and the node image's add-on manifests."""

import importlib.machinery
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tier0_dev.kind import cluster, engine, nodeimage
from tier0_dev.node import images
from tier0_dev.procs import ROOT

pytestmark = pytest.mark.unit


def _wrapper() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("tier0_runc", str(engine.RUNC_WRAPPER))
    spec = importlib.util.spec_from_loader("tier0_runc", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_engine_config_routes_nothing_out_and_keeps_to_its_own_directories() -> None:
    lay = engine.Layout(Path("/var/lib/x"), Path("/run/x"))
    conf = engine.daemon_config(lay, runtime=None)
    assert conf["iptables"] is False and conf["ip-masq"] is False and conf["ip-forward"] is False
    assert conf["bridge"] == "none"
    assert conf["hosts"] == ["unix:///run/x/docker.sock"]
    assert conf["data-root"] == "/var/lib/x/data" and conf["exec-root"] == "/run/x/exec"
    assert conf["cgroup-parent"] == f"/{engine.CGROUP_PARENT}"
    assert "default-runtime" not in conf and "runtimes" not in conf
    wrapped = engine.daemon_config(lay, runtime=Path("/run/x/bin/tier0-runc"))
    assert wrapped["default-runtime"] == "tier0-runc"
    assert wrapped["runtimes"] == {"tier0-runc": {"path": "/run/x/bin/tier0-runc"}}


def test_runc_wrapper_finds_the_spec_of_create_run_and_exec_only() -> None:
    w = _wrapper()
    argv = ["--root", "/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "p", "id"]
    assert w.spec_file(argv) == ("/b/config.json", "process")
    assert w.spec_file(["run", "-b", "/c", "id"]) == ("/c/config.json", "process")
    # `docker exec --privileged`: the process spec is a file of its own.
    assert w.spec_file(["--root", "/r", "exec", "--process", "/tmp/p.json", "--detach", "id"]) == ("/tmp/p.json", "")
    assert w.spec_file(["--root", "/r", "start", "id"]) is None
    assert w.spec_file(["--root", "/create", "delete", "id"]) is None


def test_runc_wrapper_drops_only_what_the_machine_cannot_grant() -> None:
    w = _wrapper()
    every = [f"CAP_{c}" for c in w.CAPS]
    allowed = set(every) - {"CAP_SYS_RESOURCE"}
    process = {"capabilities": {"bounding": list(every), "effective": list(every), "ambient": []}}
    assert w.drop_unavailable(process, allowed)
    caps = process["capabilities"]
    assert "CAP_SYS_RESOURCE" not in caps["bounding"] and len(caps["bounding"]) == len(every) - 1
    assert caps["effective"] == caps["bounding"] and caps["ambient"] == []
    plain = {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]}}
    assert not w.drop_unavailable(plain, allowed)
    assert plain["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_KILL"]


def test_cluster_config_names_the_node_images_and_adapts_only_when_detected() -> None:
    plain = yaml.safe_load(cluster.cluster_config({}))
    assert plain["kind"] == "Cluster" and len(plain["nodes"]) == 1
    assert "containerdConfigPatches" not in plain
    patches = [yaml.safe_load(p) for p in plain["kubeadmConfigPatches"]]
    cc = next(p for p in patches if p["kind"] == "ClusterConfiguration")
    assert cc["imageRepository"] == nodeimage.REPOSITORY
    assert cc["etcd"]["local"]["imageTag"] == images.VERSIONS["ETCD_VERSION"]
    init = next(p for p in patches if p["kind"] == "InitConfiguration")
    # kind's own skipPhases (preflight) is replaced by the patch, so it must be listed again.
    assert init["skipPhases"] == ["preflight", "addon/coredns"]
    adapted = yaml.safe_load(cluster.cluster_config({"restrict_oom_score_adj": "why"}))
    assert "restrict_oom_score_adj = true" in adapted["containerdConfigPatches"][0]


def test_node_image_manifests_carry_coredns_and_storage_without_placeholders() -> None:
    out = nodeimage.manifests()
    docs = [d for d in yaml.safe_load_all(out["default-storage.yaml"]) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "coredns") in kinds and ("Service", "kube-dns") in kinds
    assert ("Deployment", "local-path-provisioner") in kinds and ("StorageClass", "local-path") in kinds
    for placeholder in ("CLUSTER_DOMAIN", "DNS_SERVICE_IP", "COREDNS_IMAGE", "LOCAL_PATH_IMAGE", "HELPER_IMAGE"):
        assert "${" + placeholder + "}" not in out["default-storage.yaml"]
    assert nodeimage.LOCAL_PATH_DIR in out["default-storage.yaml"]
    corefile = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "coredns")
    assert "forward" not in corefile["data"]["Corefile"]
    cni = yaml.safe_load(out["default-cni.yaml"])
    conflist = json.loads(cni["data"]["10-tier0-ptp.conflist"])
    ptp = conflist["plugins"][0]
    # No masquerade and no default route: pods reach the pod and Service ranges only.
    assert ptp["type"] == "ptp" and ptp["ipMasq"] is False
    assert ptp["ipam"]["routes"] == [{"dst": "10.96.0.0/16"}]


def test_node_image_preloads_what_kubeadm_and_the_add_ons_run() -> None:
    refs = {i.ref for i in nodeimage.PRELOADED}
    k8s = images.VERSIONS["KUBERNETES_VERSION"]
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        assert f"{nodeimage.REPOSITORY}/{name}:{k8s}" in refs
    assert f"{nodeimage.REPOSITORY}/etcd:{nodeimage.ETCD_TAG}" in refs
    assert {images.PAUSE.ref, images.COREDNS.ref, images.LOCAL_PATH.ref, images.BASE.ref} <= refs
    # The base first: kube-proxy's image builds on it.
    assert nodeimage.PRELOADED[0] is images.BASE
    # The node's containerd starts pods with the pause image built here.
    toml = (nodeimage.NODE_DIR / "etc" / "containerd" / "config.toml").read_text()
    assert f'sandbox_image = "{images.PAUSE.ref}"' in toml
    assert (ROOT / "hack" / "node-values.yaml").exists()
