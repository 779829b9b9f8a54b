"""What the node changes on the machine, and how it is put back: processes, mounts, links, iptables,
cgroups, fixed host paths and kernel settings.

`clear()` is both node-down and the first step of node-up: it finds a node in any state (running,
half-started, or killed with everything it left behind) by what only this node uses (its state
directories, its bridge, its cgroup parent, its iptables chains) and removes exactly that.
"""

import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tier0_dev.node import layout
from tier0_dev.node.layout import Layout

FORWARD_CHAIN = "TIER0-NODE-FORWARD"
CGROUP_FS = Path("/sys/fs/cgroup")
MNT_DETACH = 2
PROGRAMS = frozenset(
    {
        "containerd",
        "containerd-shim-runc-v2",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
    }
)


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


# -- kernel settings ------------------------------------------------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def save_sysctls(lay: Layout) -> None:
    """Record the machine's values once; a file already there is from before a killed node: keep it."""
    if lay.sysctls_saved.exists():
        return
    values = {n: _sysctl_path(n).read_text().strip() for n in layout.SYSCTLS if _sysctl_path(n).exists()}
    lay.sysctls_saved.parent.mkdir(parents=True, exist_ok=True)
    lay.sysctls_saved.write_text(json.dumps(values, indent=2))


def restore_sysctls(lay: Layout) -> list[str]:
    if not lay.sysctls_saved.exists():
        return []
    changed = []
    for name, value in json.loads(lay.sysctls_saved.read_text()).items():
        path = _sysctl_path(name)
        if path.read_text().strip() != value:
            path.write_text(value)
            changed.append(f"{name}={value}")
    lay.sysctls_saved.unlink()
    return changed


def set_sysctl(name: str, value: str) -> None:
    _sysctl_path(name).write_text(value)


# -- processes ------------------------------------------------------------------------------------


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for procs in CGROUP_FS.glob(f"*/{layout.CGROUP_ROOT}/**/cgroup.procs"):
        try:
            pids.update(int(p) for p in procs.read_text().split())
        except OSError:
            continue
    return pids


def node_pids(lay: Layout) -> set[int]:
    """Every process of this node: its programs (one of PROGRAMS whose argv names the node's
    directories, so nothing else that merely mentions them, like an image export) and its pods."""
    marks = (str(lay.lib), str(lay.run))
    pids = _cgroup_pids()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = cmdline(int(entry.name))
        if Path(argv.split(" ", 1)[0]).name in PROGRAMS and any(m in argv for m in marks):
            pids.add(int(entry.name))
    return pids - {os.getpid(), os.getppid()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent reaps it).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def kill(pids: Iterable[int], grace: float = 3.0) -> int:
    """SIGTERM, then SIGKILL whatever is left after `grace`; returns how many there were."""
    targets = [p for p in pids if alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in targets:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(p) for p in targets):
            time.sleep(0.05)
    return len(targets)


def kill_node(lay: Layout) -> int:
    """The kubelet and kube-proxy first (nothing restarts pods then), then all the rest."""
    first = [p for p in node_pids(lay) if any(n in cmdline(p) for n in ("kubelet", "kube-proxy"))]
    count = kill(first)
    for _ in range(3):  # shims can start a last process while they die
        rest = node_pids(lay)
        if not rest:
            break
        count += kill(rest, grace=2.0)
    return count


# -- mounts ---------------------------------------------------------------------------------------


def mounts_under(roots: Iterable[Path]) -> list[str]:
    prefixes = [str(r) for r in roots]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def unmount_under(roots: Iterable[Path]) -> int:
    """Detach every mount at or below `roots`, deepest first; returns how many there were."""
    libc = ctypes.CDLL(None, use_errno=True)
    points = mounts_under(roots)
    for point in points:
        libc.umount2(point.encode(), MNT_DETACH)
    return len(points)


def unmount(lay: Layout) -> int:
    return unmount_under((lay.lib, lay.run))


# -- network --------------------------------------------------------------------------------------


def _links_on_bridge() -> list[str]:
    out = run("ip", "-j", "link", "show", "master", layout.BRIDGE, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return [str(link["ifname"]) for link in json.loads(out.stdout)]


def bridge_exists() -> bool:
    return run("ip", "link", "show", layout.BRIDGE, check=False).returncode == 0


def remove_links() -> int:
    links = _links_on_bridge()
    for name in links:
        run("ip", "link", "del", name, check=False)
    if bridge_exists():
        run("ip", "link", "del", layout.BRIDGE)
        links.append(layout.BRIDGE)
    return len(links)


def make_bridge() -> None:
    """The node's one network: the bridge carries the node address and every pod's."""
    run("ip", "link", "add", layout.BRIDGE, "type", "bridge")
    run("ip", "addr", "add", f"{layout.NODE_IP}/{layout.POD_CIDR.split('/')[1]}", "dev", layout.BRIDGE)
    run("ip", "link", "set", layout.BRIDGE, "up")
    # The Service range too, so the machine's own packets to a ClusterIP never take the default route.
    run("ip", "route", "add", layout.SERVICE_CIDR, "dev", layout.BRIDGE, "src", layout.NODE_IP)


def _ours(chain: str) -> bool:
    return chain.startswith(("KUBE-", "TIER0-"))


def _sweep_table(tool: str, table: str) -> int:
    out = run(f"{tool}-save", "-t", table, check=False)
    if out.returncode != 0:
        return 0
    chains = [line[1:].split()[0] for line in out.stdout.splitlines() if line.startswith(":")]
    removed = 0
    for line in out.stdout.splitlines():
        if not line.startswith("-A "):
            continue
        words = shlex.split(line)
        chain = words[1]
        target = words[words.index("-j") + 1] if "-j" in words else ""
        # Rules in the built-in chains that jump into ours; ours are flushed whole below.
        if not _ours(chain) and _ours(target):
            run(tool, "-t", table, "-D", *words[1:], check=False)
            removed += 1
    for chain in filter(_ours, chains):
        run(tool, "-t", table, "-F", chain, check=False)
    for chain in filter(_ours, chains):
        run(tool, "-t", table, "-X", chain, check=False)
        removed += 1
    return removed


def sweep_iptables() -> int:
    """Remove every KUBE-* chain (kubelet, kube-proxy) and TIER0-* chain, and the jumps into them."""
    return sum(_sweep_table(tool, t) for tool in ("iptables", "ip6tables") for t in ("filter", "nat", "mangle", "raw"))


def guard_forwarding() -> None:
    """Forwarding only from the bridge to the bridge: with ip_forward on, nothing leaves the machine."""
    run("iptables", "-N", FORWARD_CHAIN)
    run("iptables", "-A", FORWARD_CHAIN, "-i", layout.BRIDGE, "-o", layout.BRIDGE, "-j", "ACCEPT")
    run("iptables", "-A", FORWARD_CHAIN, "-i", layout.BRIDGE, "-j", "DROP")
    run("iptables", "-A", FORWARD_CHAIN, "-o", layout.BRIDGE, "-j", "DROP")
    run("iptables", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)


# -- cgroups and host paths -----------------------------------------------------------------------


def walk_bottom_up(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        yield Path(dirpath)


def remove_cgroups() -> int:
    count = 0
    for root in CGROUP_FS.glob(f"*/{layout.CGROUP_ROOT}"):
        for d in walk_bottom_up(root):
            try:
                d.rmdir()
                count += 1
            except OSError:
                pass
    return count


def make_cgroup_roots() -> None:
    """kubelet's cgroupRoot must exist in every mounted hierarchy."""
    for hierarchy in CGROUP_FS.iterdir():
        if hierarchy.is_dir() and not hierarchy.is_symlink() and (hierarchy / "cgroup.procs").exists():
            (hierarchy / layout.CGROUP_ROOT).mkdir(exist_ok=True)


def listening(sock: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.2)
        try:
            s.connect(str(sock))
            return True
        except OSError:
            return False


def clean_host_paths(lay: Layout) -> int:
    """Entries the kubelet and containerd write at fixed paths; only this node's, then empty dirs."""
    removed = 0
    containers = Path("/var/log/containers")
    if containers.is_dir():
        for link in containers.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(lay.pod_logs)):
                link.unlink()
                removed += 1
    sock = Path("/var/lib/kubelet/device-plugins/kubelet.sock")
    if sock.exists() or sock.is_symlink():
        sock.unlink()
        removed += 1
    shims = Path("/run/containerd/s")
    if shims.is_dir():
        for s in shims.iterdir():
            if s.is_socket() and not listening(s):
                s.unlink()
                removed += 1
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        # This node's network and containerd's loopback network of its sandboxes.
        for r in [*results.glob(f"{layout.CNI_NETWORK}-*"), *results.glob("cni-loopback-*")]:
            r.unlink()
            removed += 1
    for d in (*layout.FIXED_HOST_PATHS, Path("/var/lib/kubelet"), Path("/run/containerd"), Path("/var/lib/cni")):
        try:
            d.rmdir()
        except OSError:
            pass
    return removed


def clear(lay: Layout, volatile: Iterable[Path]) -> dict[str, int | list[str]]:
    """Remove everything a node (running, half-started or killed) put on the machine."""
    found: dict[str, int | list[str]] = {"processes": kill_node(lay), "mounts": unmount(lay)}
    found["links"] = remove_links()
    found["iptables"] = sweep_iptables()
    found["cgroups"] = remove_cgroups()
    found["host paths"] = clean_host_paths(lay)
    for d in volatile:
        if d.exists():
            run("rm", "-rf", "--one-file-system", str(d))
    found["sysctls"] = restore_sysctls(lay)
    return found
