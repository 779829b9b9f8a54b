"""The kind node image, assembled here from pinned inputs (`kind build node-image` pulls its base
image and the control plane's images from registries, which this machine cannot reach).

Inputs: a Debian bookworm root file system made with debootstrap (systemd and what kind's base
installs, with the built-in node's containerd, runc and CNI plugins at the versions.env pins); kind's
own files (entrypoint, units, scripts) from the Go module cache at KIND_VERSION; the kubelet, kubeadm,
kubectl and crictl, and images of kube-apiserver, kube-controller-manager, kube-scheduler,
kube-proxy and etcd, all built by `hack/install-tools.sh --kind`; the built-in node's pause, CoreDNS,
local-path-provisioner and Python base images (`make images`). Built with buildah like every other
image (`images.build`, cached by the hash of its inputs), then loaded into the Docker engine.
"""

import hashlib
import json
import os
import shutil
import string
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from tier0_dev.kind import engine as engine_mod
from tier0_dev.node import images, layout
from tier0_dev.node.layout import Layout
from tier0_dev.procs import TOOLS_BIN

V = images.VERSIONS
KUBERNETES_VERSION = V["KUBERNETES_VERSION"]
REPOSITORY = "localhost/tier0-kind"
NODE_DIR = images.IMAGES_DIR / "kind" / "node"
# What kind's base image installs (images/base/Dockerfile) that a Debian minbase lacks, without
# the network storage clients and fuse-overlayfs (rootless only); `containerd runc
# containernetworking-plugins iptables` are pinned to the built-in node's versions.
PACKAGES = (
    "systemd conntrack nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz bash ca-certificates jq procps"
).split()
PINNED = {p.split("=")[0]: p.split("=")[1] for p in V["NODE_DEBIAN_PACKAGES"].split()}
NODE_PACKAGES = ("containerd", "runc", "containernetworking-plugins", "iptables")
# Where kind's volume of the node keeps local-path volumes (as kind's own local-path setup does).
LOCAL_PATH_DIR = "/var/local-path-provisioner"
BINARIES = ("kubelet", "kubeadm", "kubectl", "crictl")


def _control_plane(name: str, tag: str) -> images.Image:
    return images.Image(
        f"kind-{name}",
        f"{REPOSITORY}/{name}:{tag}",
        images.IMAGES_DIR / "kind" / "control-plane" / "Dockerfile",
        binaries=(name,),
        build_args={"BINARY": name},
    )


ETCD_TAG = V["ETCD_VERSION"]
CONTROL_PLANE = [
    *(_control_plane(n, KUBERNETES_VERSION) for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")),
    _control_plane("etcd", ETCD_TAG),
]
KUBE_PROXY = images.Image(
    "kind-kube-proxy",
    f"{REPOSITORY}/kube-proxy:{KUBERNETES_VERSION}",
    images.IMAGES_DIR / "kind" / "kube-proxy" / "Dockerfile",
    binaries=("kube-proxy",),
    uses_base=True,
)
# Preloaded: local-path's helper (the Python base, first: kube-proxy's image builds on it), what
# kubeadm runs, and the add-ons.
PRELOADED = [images.BASE, *CONTROL_PLANE, KUBE_PROXY, images.PAUSE, images.COREDNS, images.LOCAL_PATH]
NODE_REF = f"{REPOSITORY}/node:{KUBERNETES_VERSION}"


def _run(*argv: str | Path) -> str:
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(str(a) for a in argv[:4])} ... failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout


def kind_files() -> Path:
    """kind's images/base/files from the Go module cache (downloaded with kind itself)."""
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{V['KIND_VERSION']}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(json.loads(out.stdout)["Dir"]) / "images" / "base" / "files"


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:20]


def manifests() -> dict[str, str]:
    """/kind/manifests: kind applies default-storage.yaml once the control plane is up, so it
    carries both add-ons (local-path storage and CoreDNS, whose kubeadm phase the cluster skips:
    hack/tier0_dev/kind/cluster.py); default-cni.yaml only records the node's static ptp network."""
    values = {
        "CLUSTER_DOMAIN": layout.CLUSTER_DOMAIN,
        "DNS_SERVICE_IP": layout.DNS_SERVICE_IP,
        "COREDNS_IMAGE": images.COREDNS.ref,
        "LOCAL_PATH_IMAGE": images.LOCAL_PATH.ref,
        "HELPER_IMAGE": images.BASE.ref,
        "LOCAL_PATH_DIR": LOCAL_PATH_DIR,
    }
    addons = Path(__file__).resolve().parents[2] / "node" / "addons"
    docs = [string.Template(f.read_text()).safe_substitute(values) for f in sorted(addons.glob("*.yaml"))]
    cni = (NODE_DIR / "etc" / "cni" / "net.d" / "10-tier0-ptp.conflist").read_text()
    cni_doc = (
        "# The node's pod network: a static ptp configuration in the node image (no kindnetd); recorded here.\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tier0-kind-cni\n  namespace: kube-system\n"
        "data:\n  10-tier0-ptp.conflist: |\n" + "".join(f"    {line}\n" for line in cni.splitlines())
    )
    return {"default-storage.yaml": "\n---\n".join(docs), "default-cni.yaml": cni_doc}


def node_image(preload_labels: dict[str, str]) -> images.Image:
    return images.Image(
        "kind-node",
        NODE_REF,
        NODE_DIR / "Dockerfile",
        inputs=tuple(sorted(p for p in NODE_DIR.rglob("*") if p.is_file() and p.name != "Dockerfile"))
        + tuple(sorted((Path(__file__).resolve().parents[2] / "node" / "addons").glob("*.yaml"))),
        binaries=BINARIES,
        build_args={
            "KIND_FILES": f"{V['KIND_VERSION']}-{_tree_hash(kind_files())}",
            "PACKAGES": " ".join([*PACKAGES, *(f"{p}={PINNED[p]}" for p in NODE_PACKAGES)]),
            "PRELOAD": hashlib.sha256(json.dumps(preload_labels, sort_keys=True).encode()).hexdigest()[:20],
        },
    )


def _rootfs(work: Path) -> Path:
    """debootstrap of bookworm with the node's packages, trimmed; kept by the hash of its package list."""
    want = hashlib.sha256(" ".join([*PACKAGES, *NODE_PACKAGES]).encode()).hexdigest()[:16]
    out = work / f"kind-node-rootfs-{want}.tar"
    if out.exists():
        return out
    for old in work.glob("kind-node-rootfs-*.tar"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="tier0-kind-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        images.log(f"debootstrap --variant=minbase {images.DEBIAN_SUITE} for the kind node")
        _run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join([*PACKAGES, *NODE_PACKAGES])}",
            images.DEBIAN_SUITE,
            root,
            images.DEBIAN_MIRROR,
        )
        versions = _run("chroot", root, "dpkg-query", "-W", "-f=${Package} ${Version}\\n", *NODE_PACKAGES)
        got = dict(line.split(" ", 1) for line in versions.splitlines())
        wrong = {p: got.get(p) for p in NODE_PACKAGES if got.get(p) != PINNED[p]}
        if wrong:
            raise RuntimeError(
                f"the kind node's packages are not the pinned versions (NODE_DEBIAN_PACKAGES in "
                f"hack/versions.env): got {wrong}; bookworm now has these: update the pins"
            )
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(root / junk, ignore_errors=True)
            (root / junk).mkdir(parents=True, exist_ok=True)
        _run("tar", "-C", root, "--numeric-owner", "-cf", out.with_suffix(".tmp"), ".")
        out.with_suffix(".tmp").rename(out)
    return out


def _prepare(work: Path, archives: list[Path]) -> Path:
    ctx = work / "kind-node"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    os.link(_rootfs(work), ctx / "rootfs.tar")
    # kind's files are read-only in the module cache; scripts 0755, the rest 0644 (as kind's COPY --chmod).
    base = ctx / "kind-base"
    shutil.copytree(kind_files(), base, ignore=shutil.ignore_patterns("containerd-fuse-overlayfs.service", "LICENSES"))
    for f in base.rglob("*"):
        if f.is_file():
            executable = "bin" in f.relative_to(base).parts
            f.chmod(0o755 if executable else 0o644)
        else:
            f.chmod(0o755)
    shutil.copytree(NODE_DIR / "etc", ctx / "etc")
    shutil.copy2(NODE_DIR / "preload-containerd.toml", ctx)
    (ctx / "bin").mkdir()
    for b in BINARIES:
        src = TOOLS_BIN / b
        if not src.exists():
            raise RuntimeError(f"{src} is missing: run hack/install-tools.sh --kind")
        shutil.copy2(src, ctx / "bin" / b)
    (ctx / "images").mkdir()
    for a in archives:
        os.link(a, ctx / "images" / a.name)
    (ctx / "manifests").mkdir()
    for name, text in manifests().items():
        (ctx / "manifests" / name).write_text(text)
    (ctx / "version").write_text(KUBERNETES_VERSION)
    return ctx


def build(force: bool = False) -> tuple[str, bool]:
    """The node image in buildah's store (built when its inputs changed): (its inputs label, built)."""
    out_dir = Layout.default().images
    archives = images.build_all(out_dir, which=PRELOADED)
    labels = {img.ref: images.buildah_label(img.ref) or "" for img in PRELOADED}
    img = node_image(labels)
    want = images.inputs_hash(img, "")
    if not force and images.buildah_label(img.ref) == want:
        images.log(f"{img.ref} up to date")
        return want, False
    work = out_dir / "build"
    ctx = _prepare(work, [a for a in archives if a.name in {i.archive_name for i in PRELOADED}])
    try:
        images.build(replace(img, context=ctx), work, "", force=True)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return want, True


def load(engine: engine_mod.Engine, want: str) -> bool:
    """The node image into the engine unless it holds this build already; True if it loaded it."""
    have = engine.docker(
        "image", "inspect", "--format", f'{{{{ index .Config.Labels "{images.INPUTS_LABEL}" }}}}', NODE_REF, check=False
    )
    if have.returncode == 0 and have.stdout.strip() == want:
        return False
    with tempfile.TemporaryDirectory(prefix="tier0-kind-node-", dir=Layout.default().images) as tmp:
        archive = Path(tmp) / "node.tar"
        images.log(f"loading {NODE_REF} into the Docker engine")
        _run("buildah", "push", "--quiet", NODE_REF, f"docker-archive:{archive}:{NODE_REF}")
        engine.docker("load", "--quiet", "--input", str(archive))
    return True
