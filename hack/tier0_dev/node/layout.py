"""Where the node keeps its state, and its fixed addresses and ports (one place).

State is machine-wide (not per checkout): a node killed from one clone is found and cleared by the
next `node-up` from any other, and the image store is shared by every clone on the machine.
"""

import os
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "tier0-node"
BRIDGE = "tier0br0"
CNI_NETWORK = "tier0-node"
# The node's address is the bridge's: pods reach the apiserver and kubelet there, nothing else does.
NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_PORT = 16443
ETCD_PORT = 12379
KUBELET_HEALTHZ_PORT = 10248
# The kubelet and containerd write here whatever their state directories are.
FIXED_HOST_PATHS = (
    Path("/var/log/containers"),
    Path("/var/lib/kubelet/device-plugins"),
    Path("/run/containerd/s"),
    Path("/var/lib/cni/results"),
)
# Kernel settings the node (kubelet, the CNI bridge plugin) changes; node-down puts them back.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# The cgroup parent of every pod (kubelet cgroupRoot), so a dead node's cgroups are found.
CGROUP_ROOT = "tier0-node"


@dataclass(frozen=True)
class Layout:
    """Directories of one node: `lib` persists (images), `run` is the live state."""

    lib: Path
    run: Path

    @classmethod
    def default(cls) -> "Layout":
        return cls(
            Path(os.environ.get("TIER0_NODE_DIR", "/var/lib/tier0-node")),
            Path(os.environ.get("TIER0_NODE_RUN_DIR", "/run/tier0-node")),
        )

    @property
    def pki(self) -> Path:
        return self.run / "pki"

    @property
    def logs(self) -> Path:
        return self.lib / "logs"

    @property
    def pids(self) -> Path:
        return self.run / "pids"

    @property
    def etcd(self) -> Path:
        return self.lib / "etcd"

    @property
    def kubelet(self) -> Path:
        return self.lib / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.lib / "pod-logs"

    @property
    def local_path(self) -> Path:
        return self.lib / "local-path"

    @property
    def containerd_root(self) -> Path:
        return self.lib / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.run / "containerd"

    @property
    def containerd_sock(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def images(self) -> Path:
        """OCI archives of the images the node imports (made by `make images`)."""
        return self.lib / "images"

    @property
    def conf(self) -> Path:
        return self.run / "conf"

    @property
    def sysctls_saved(self) -> Path:
        """The machine's values before the first node-up; survives a killed node, removed by node-down."""
        return self.lib / "host-sysctls.json"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (what `make up` tells the user to export as KUBECONFIG)."""
        return self.lib / "kubeconfig"
