"""node-up, node-down and node-status of the built-in single-node cluster."""

import json
import os
import shutil
import ssl
import string
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tier0_dev.node import config, host, images, layout, pki
from tier0_dev.node.layout import Layout
from tier0_dev.procs import Process, StartupError, find_program, http_ok, log_tail

# Started in this order, stopped (by host.clear) all at once.
COMPONENTS = (
    "containerd",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)
REQUIRED = {
    "/usr/bin/containerd": "apt-get install containerd (make tools)",
    "/usr/sbin/runc": "apt-get install runc (make tools)",
    "/usr/lib/cni/bridge": "apt-get install containernetworking-plugins (make tools)",
    "/usr/sbin/iptables": "apt-get install iptables (make tools)",
}


def log(msg: str) -> None:
    print(f"\033[1m[node]\033[0m {msg}", file=sys.stderr, flush=True)


def _volatile(lay: Layout) -> list[Path]:
    """What a new cluster starts without; the image store (containerd root) and archives stay."""
    return [lay.run, lay.etcd, lay.kubelet, lay.pod_logs, lay.local_path, lay.kubeconfig, lay.lib / "containerd-opt"]


def _check_prerequisites() -> dict[str, str]:
    if os.geteuid() != 0:
        raise StartupError("the built-in node needs root (it creates a bridge, iptables rules and mounts)")
    for path, hint in REQUIRED.items():
        if not Path(path).exists():
            raise StartupError(f"{path} is missing: {hint}")
    return {name: find_program(name) for name in (*COMPONENTS[1:], "kubectl", "crictl")}


def _start(lay: Layout, name: str, argv: list[str]) -> Process:
    proc = Process(name, argv, lay.logs / f"{name}.log").start()
    lay.pids.mkdir(parents=True, exist_ok=True)
    (lay.pids / f"{name}.pid").write_text(str(proc.pid))
    return proc


def _https_ok(lay: Layout, path: str) -> Callable[[], bool]:
    ctx = ssl.create_default_context(cafile=str(lay.pki / "ca.crt"))
    ctx.load_cert_chain(str(lay.pki / "admin.crt"), str(lay.pki / "admin.key"))
    url = f"https://{layout.NODE_IP}:{layout.APISERVER_PORT}{path}"

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1, context=ctx) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    return check


def kubectl(lay: Layout, *args: str, check: bool = True, stdin: str | None = None) -> str:
    out = subprocess.run(
        [find_program("kubectl"), "--kubeconfig", str(lay.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
    )
    if check and out.returncode != 0:
        raise StartupError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def _ctr(lay: Layout, *args: str) -> str:
    argv = ["/usr/bin/ctr", "--address", str(lay.containerd_sock), "--namespace", "k8s.io", *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def import_images(lay: Layout, only: list[images.Image] | None = None) -> list[str]:
    """Import each archive whose image containerd lacks or holds in another version (by inputs label)."""
    present: dict[str, str] = {}
    for line in _ctr(lay, "images", "ls").splitlines()[1:]:
        words = line.split()
        labels = dict(kv.split("=", 1) for kv in words[-1].split(",") if "=" in kv) if words else {}
        if words:
            present[words[0]] = labels.get(images.INPUTS_LABEL, "")
    imported = []
    for img in only or images.ALL:
        archive = lay.images / img.archive_name
        stamp = lay.images / f"{img.name}.inputs"
        if not archive.exists():
            continue
        want = stamp.read_text() if stamp.exists() else ""
        if present.get(img.ref) == want and want:
            continue
        # Imported (and unpacked) under the archive's fully qualified name: retagging later with
        # ctr leaves an image the CRI does not find until containerd restarts.
        _ctr(lay, "images", "import", str(archive))
        _ctr(lay, "images", "label", img.ref, f"{images.INPUTS_LABEL}={want}")
        imported.append(img.ref)
    return imported


def _apply_addons(lay: Layout) -> None:
    values = {
        "CLUSTER_DOMAIN": layout.CLUSTER_DOMAIN,
        "DNS_SERVICE_IP": layout.DNS_SERVICE_IP,
        "COREDNS_IMAGE": images.COREDNS.ref,
        "LOCAL_PATH_IMAGE": images.LOCAL_PATH.ref,
        "HELPER_IMAGE": images.BASE.ref,
        "LOCAL_PATH_DIR": str(lay.local_path),
    }
    docs = [string.Template(f.read_text()).safe_substitute(values) for f in sorted(config.addons_dir().glob("*.yaml"))]
    kubectl(lay, "apply", "--server-side", "-f", "-", stdin="\n---\n".join(docs))


def _wait(what: str, check: Callable[[], bool], timeout: float, proc: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise StartupError(f"{proc.name} exited; log {proc.log_path}:\n{log_tail(proc.log_path)}")
        if check():
            return
        time.sleep(0.1)
    detail = f"; log {proc.log_path}:\n{log_tail(proc.log_path)}" if proc else ""
    raise StartupError(f"{what} not ready after {timeout:.0f} s{detail}")


def _node_ready(lay: Layout) -> Callable[[], bool]:
    def check() -> bool:
        out = kubectl(lay, "get", "node", layout.NODE_NAME, "-o", "json", check=False)
        if not out:
            return False
        conds = json.loads(out).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    return check


def _deployments_ready(lay: Layout, namespace_names: list[tuple[str, str]]) -> Callable[[], bool]:
    def check() -> bool:
        for ns, name in namespace_names:
            out = kubectl(
                lay, "-n", ns, "get", "deployment", name, "-o", "jsonpath={.status.readyReplicas}", check=False
            )
            if out.strip() != "1":
                return False
        return True

    return check


def _report(found: dict[str, int | list[str]]) -> str:
    return ", ".join(f"{k} {v if isinstance(v, int) else len(v)}" for k, v in found.items() if v) or "nothing"


def up(lay: Layout) -> int:
    start = time.monotonic()
    bins = _check_prerequisites()
    if status_quiet(lay):
        log(f"node already up; images imported: {import_images(lay) or 'none new'}")
        print(f"export KUBECONFIG={lay.kubeconfig}")
        return 0
    missing = [i.archive_name for i in images.NODE if not (lay.images / i.archive_name).exists()]
    if missing:
        raise StartupError(f"node images missing in {lay.images}: {', '.join(missing)}; run: make images")
    found = host.clear(lay, _volatile(lay))
    log(f"leftovers of an earlier node removed: {_report(found)}")
    host.save_sysctls(lay)
    host.make_bridge()
    host.set_sysctl("net/ipv4/ip_forward", "1")
    host.guard_forwarding()
    host.make_cgroup_roots()
    for d in (lay.logs, lay.conf, lay.local_path, lay.pod_logs):
        d.mkdir(parents=True, exist_ok=True)
    pki.write(lay.pki)
    pki.kubeconfig(lay.pki, "admin", lay.kubeconfig)
    for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
        pki.kubeconfig(lay.pki, name, lay.conf / f"{name}.kubeconfig")
    config.write_all(lay)
    log(f"certificates and configuration written ({time.monotonic() - start:.1f} s)")

    containerd = _start(lay, "containerd", config.containerd_args(lay))
    etcd = _start(lay, "etcd", config.etcd_args(lay, bins["etcd"]))
    _wait("etcd", http_ok(f"http://127.0.0.1:{layout.ETCD_PORT}/health"), 30, etcd)
    apiserver = _start(lay, "kube-apiserver", config.apiserver_args(lay, bins["kube-apiserver"]))
    _wait("containerd", lambda: lay.containerd_sock.exists(), 30, containerd)
    imported = import_images(lay)
    # Sandboxes of a killed node are still in containerd's store: remove them before the kubelet.
    subprocess.run(
        [bins["crictl"], "--runtime-endpoint", f"unix://{lay.containerd_sock}", "rmp", "-af"],
        capture_output=True,
        timeout=60,
    )
    log(f"containerd up, {len(imported)} images imported ({time.monotonic() - start:.1f} s)")
    _wait("kube-apiserver", _https_ok(lay, "/readyz"), 90, apiserver)
    log(f"kube-apiserver ready ({time.monotonic() - start:.1f} s)")
    procs = [
        _start(lay, "kube-controller-manager", config.controller_manager_args(lay, bins["kube-controller-manager"])),
        _start(lay, "kube-scheduler", config.scheduler_args(lay, bins["kube-scheduler"])),
        _start(lay, "kubelet", config.kubelet_args(lay, bins["kubelet"])),
        _start(lay, "kube-proxy", config.kube_proxy_args(lay, bins["kube-proxy"])),
    ]
    _apply_addons(lay)
    _wait("node", _node_ready(lay), 60, procs[2])
    log(f"node {layout.NODE_NAME} Ready ({time.monotonic() - start:.1f} s)")
    _wait("kube-proxy", http_ok("http://127.0.0.1:10256/healthz"), 30, procs[3])
    addons = [("kube-system", "coredns"), ("local-path-storage", "local-path-provisioner")]
    _wait("CoreDNS and local-path-provisioner", _deployments_ready(lay, addons), 90)
    _wait("the default ServiceAccount", lambda: bool(kubectl(lay, "get", "sa", "default", check=False)), 30)
    log(f"node-up done in {time.monotonic() - start:.1f} s")
    print(f"export KUBECONFIG={lay.kubeconfig}")
    return 0


def down(lay: Layout) -> int:
    start = time.monotonic()
    found = host.clear(lay, _volatile(lay))
    log(f"node-down: removed {_report(found)} in {time.monotonic() - start:.1f} s")
    return 0


def status_quiet(lay: Layout) -> bool:
    """True when every component runs and the apiserver is ready (a node to reuse)."""
    for name in COMPONENTS:
        pid_file = lay.pids / f"{name}.pid"
        if not (pid_file.exists() and Path(f"/proc/{pid_file.read_text().strip()}").exists()):
            return False
    return lay.pki.exists() and _https_ok(lay, "/readyz")()


def status(lay: Layout) -> int:
    ok = True
    for name in COMPONENTS:
        pid_file = lay.pids / f"{name}.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else 0
        alive = pid > 0 and Path(f"/proc/{pid}").exists()
        ok &= alive
        print(f"  {name:<24} {'running pid ' + str(pid) if alive else 'down'}")
    if not ok:
        print("node: down (make node-up)")
        return 1
    print(f"  {'node ' + layout.NODE_NAME:<24} {'Ready' if _node_ready(lay)() else 'NotReady'}")
    print(kubectl(lay, "get", "pods", "-A", "-o", "wide", check=False))
    print(f"export KUBECONFIG={lay.kubeconfig}")
    return 0


def main(argv: list[str]) -> int:
    lay = Layout.default()
    cmd = argv[0] if argv else "status"
    try:
        if cmd == "up":
            return up(lay)
        if cmd == "down":
            return down(lay)
        if cmd == "status":
            return status(lay)
        if cmd == "images":
            images.build_all(lay.images, force="--force" in argv)
            if (lay.containerd_sock).exists() and shutil.which("ctr"):
                log(f"imported into the running node: {import_images(lay) or 'nothing new'}")
            return 0
        if cmd == "deploy":
            from tier0_dev.node import deploy

            return deploy.main(lay.kubeconfig)
        if cmd == "import":
            log(f"imported: {import_images(lay) or 'nothing new'}")
            return 0
    except (StartupError, RuntimeError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    print("usage: python -m tier0_dev.node up|down|status|images [--force]|import|deploy", file=sys.stderr)
    return 2
