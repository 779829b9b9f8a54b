"""The kind cluster (`make kind-up`, `kind-e2e`, `kind-down`, `kind-status`).

`up` starts or finds a Docker engine, builds and loads the node image (nodeimage.py), creates one
node with the machine's adaptations (`adaptations`), loads the images `make images` built with
`kind load image-archive`, and installs both charts exactly as the built-in node does
(`deploy.install` with hack/node-values.yaml: the same images and stand-ins, so a run here and the
GitHub workflow's run test the same thing). `down` deletes the cluster and stops the project's
engine, leaving nothing behind. The kubeconfig is the checkout's (.run/kind/), never ~/.kube/config.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tier0_dev.kind import engine as engine_mod
from tier0_dev.kind import nodeimage
from tier0_dev.node import deploy, images
from tier0_dev.node.layout import Layout
from tier0_dev.procs import ROOT, StartupError, find_program

NAME = os.environ.get("KIND_CLUSTER", "tier0")
STATE = ROOT / ".run" / "kind"
# What the charts run besides the node image's own: tier0's images and the stand-ins (make images).
CHART_IMAGES = [*images.TIER0, *images.STANDINS]
KIND_NETWORK = "kind"


def log(msg: str) -> None:
    print(f"\033[1m[kind]\033[0m {msg}", file=sys.stderr, flush=True)


def kubeconfig() -> Path:
    return STATE / f"{NAME}.kubeconfig"


def oom_score_adj_restricted() -> bool:
    """Whether this machine refuses to lower a process's oom_score_adj (it does when the capability
    bounding set lacks CAP_SYS_RESOURCE, as on this VM)."""
    probe = "v=$(cat /proc/self/oom_score_adj); echo $((v - 1)) > /proc/self/oom_score_adj"
    return subprocess.run(["sh", "-c", probe], capture_output=True).returncode != 0


def adaptations() -> dict[str, str]:
    """The machine's quirks kind's node must be configured for, detected: name -> why."""
    found = {}
    if oom_score_adj_restricted():
        found["restrict_oom_score_adj"] = (
            "lowering oom_score_adj is refused here, so runc would fail every pod whose oom_score_adj "
            "is below containerd's (`nsexec: failed to update /proc/self/oom_score_adj`); containerd "
            "clamps them instead (as kind does in a user namespace)"
        )
    return found


def cluster_config(adapted: dict[str, str]) -> str:
    """kind's Cluster: one node of the node image; kubeadm told where its images are."""
    lines = [
        "# The kind cluster of `make kind-up` (hack/tier0_dev/kind/cluster.py writes this file).",
        "kind: Cluster",
        "apiVersion: kind.x-k8s.io/v1alpha4",
        "networking:",
        "  apiServerAddress: 127.0.0.1",
        "  podSubnet: 10.244.0.0/16",
        "  serviceSubnet: 10.96.0.0/16",
        "nodes:",
        "  - role: control-plane",
        "kubeadmConfigPatches:",
        "  # The control plane's images are the node image's own (nodeimage.py), not registry.k8s.io's.",
        "  - |",
        "    kind: ClusterConfiguration",
        f"    imageRepository: {nodeimage.REPOSITORY}",
        "    etcd:",
        "      local:",
        f"        imageRepository: {nodeimage.REPOSITORY}",
        f"        imageTag: {nodeimage.ETCD_TAG}",
        "  # CoreDNS comes with the node image's add-ons (it forwards nothing out of the machine).",
        "  - |",
        "    kind: InitConfiguration",
        "    skipPhases: [preflight, addon/coredns]",
    ]
    if "restrict_oom_score_adj" in adapted:
        lines += [
            "containerdConfigPatches:",
            "  # Detected: this machine refuses to lower oom_score_adj (see cluster.adaptations).",
            "  - |",
            '    [plugins."io.containerd.grpc.v1.cri"]',
            "      restrict_oom_score_adj = true",
        ]
    return "\n".join(lines) + "\n"


def _kind(eng: engine_mod.Engine, *args: str, capture: bool = False) -> str:
    out = subprocess.run([find_program("kind"), *args], env=eng.env(), text=True, capture_output=capture, timeout=900)
    if out.returncode != 0:
        raise StartupError(f"kind {' '.join(args[:3])} ... failed ({out.returncode}): {(out.stderr or '')[-2000:]}")
    return out.stdout or ""


def _exists(eng: engine_mod.Engine) -> bool:
    return NAME in _kind(eng, "get", "clusters", capture=True).split()


def up() -> int:
    t0 = time.monotonic()
    eng = engine_mod.up(engine_mod.Layout.default())
    t1 = time.monotonic()
    want, built = nodeimage.build()
    loaded = nodeimage.load(eng, want)
    t2 = time.monotonic()
    log(f"node image {nodeimage.NODE_REF}: {'built' if built else 'cached'}, {'loaded' if loaded else 'in the engine'}")
    STATE.mkdir(parents=True, exist_ok=True)
    if _exists(eng):
        log(f"cluster {NAME} exists")
        kubeconfig().write_text(_kind(eng, "get", "kubeconfig", "--name", NAME, capture=True))
    else:
        adapted = adaptations()
        for name, why in adapted.items():
            log(f"adapted: {name}: {why}")
        config = STATE / f"{NAME}-cluster.yaml"
        config.write_text(cluster_config(adapted))
        log(f"creating cluster {NAME} ({config})")
        create = ["create", "cluster", "--name", NAME, "--image", nodeimage.NODE_REF, "--config", str(config)]
        _kind(eng, *create, "--kubeconfig", str(kubeconfig()), "--wait", "120s")
    t3 = time.monotonic()
    out_dir = Layout.default().images
    for img in CHART_IMAGES:
        archive = out_dir / img.archive_name
        if not archive.exists():
            raise StartupError(f"{archive} is missing: make images")
        _kind(eng, "load", "image-archive", "--name", NAME, str(archive))
    t4 = time.monotonic()
    rel = deploy.Release(kubeconfig())
    took = deploy.install(rel)
    deploy.wait_phase(rel, "Healthy")
    t5 = time.monotonic()
    log(
        f"up in {t5 - t0:.0f} s: engine {t1 - t0:.1f} s, node image {t2 - t1:.1f} s, cluster {t3 - t2:.1f} s, "
        f"kind load {t4 - t3:.1f} s, both charts Ready {took:.1f} s"
    )
    print(f"\ntier0 is up on kind (cluster {NAME}); export KUBECONFIG={kubeconfig()}")
    print(f"  kubectl -n {rel.namespace} get regionpair,pods      make kind-e2e      make kind-down")
    return 0


def e2e(pytest_args: list[str]) -> int:
    """The e2e tier (`-m e2e`: tests/system, the same tests the built-in node runs) against this cluster."""
    eng = engine_mod.find(engine_mod.Layout.default())
    if eng is None or not _exists(eng):
        raise StartupError(f"no kind cluster {NAME}: make kind-up")
    STATE.mkdir(parents=True, exist_ok=True)
    kubeconfig().write_text(_kind(eng, "get", "kubeconfig", "--name", NAME, capture=True))
    # The pods' traffic passes inside the node container: the region partition's iptables rules go
    # there (tests/system/regionfaults.py), through the same engine.
    iptables = [
        eng.client,
        *(["-H", eng.docker_host] if eng.docker_host else []),
        "exec",
        "-i",  # iptables-restore reads the partition from stdin
        f"{NAME}-control-plane",
        "iptables",
    ]
    env = {**os.environ, "TIER0_E2E_KUBECONFIG": str(kubeconfig()), "TIER0_E2E_IPTABLES": json.dumps(iptables)}
    argv = [sys.executable, "-m", "pytest", "-m", "e2e", *pytest_args]
    return subprocess.run(argv, env=env, cwd=ROOT).returncode


def down() -> int:
    lay = engine_mod.Layout.default()
    eng = engine_mod.find(lay)
    if eng is not None:
        if _exists(eng):
            log(f"deleting cluster {NAME}")
            _kind(eng, "delete", "cluster", "--name", NAME, "--kubeconfig", str(kubeconfig()))
        # kind keeps its network for the next cluster; nothing else uses it once it is empty.
        net = eng.docker("network", "inspect", KIND_NETWORK, "--format", "{{len .Containers}}", check=False)
        if net.returncode == 0 and net.stdout.strip() == "0":
            eng.docker("network", "rm", KIND_NETWORK)
    kubeconfig().unlink(missing_ok=True)
    return engine_mod.down(lay)


def status() -> int:
    lay = engine_mod.Layout.default()
    rc = engine_mod.status(lay)
    eng = engine_mod.find(lay)
    if rc != 0 or eng is None or not _exists(eng):
        print(f"kind: no cluster {NAME} (make kind-up)")
        return 1
    kubeconfig().write_text(_kind(eng, "get", "kubeconfig", "--name", NAME, capture=True))
    print(deploy.kubectl(deploy.Release(kubeconfig()), "get", "pods", "-A", "-o", "wide"))
    print(f"export KUBECONFIG={kubeconfig()}")
    return 0
