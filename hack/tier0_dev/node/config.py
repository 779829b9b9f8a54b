"""The configuration files of containerd, the CNI bridge, the kubelet and kube-proxy, and the
command lines of the control plane. Pure functions of the Layout: written fresh at each node-up."""

import json
from pathlib import Path

from tier0_dev.node import images, layout
from tier0_dev.node.layout import Layout


def containerd_toml(lay: Layout) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{lay.containerd_root}"
state = "{lay.containerd_state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{lay.containerd_sock}"

[ttrpc]
  address = "{lay.containerd_sock}.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{lay.lib / "containerd-opt"}"

[{cri}]
  sandbox_image = "{images.PAUSE.ref}"
  # The machine's capability bounding set lacks CAP_SYS_RESOURCE: runc may not lower oom_score_adj.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "/usr/sbin/runc"
  Root = "{lay.run / "runc"}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{lay.conf / "cni"}"
  max_conf_num = 1
"""


def cni_conflist(lay: Layout) -> str:
    """One bridge, no masquerade, and no default route: pods reach the pod and Service ranges only."""
    conf = {
        "cniVersion": "0.4.0",
        "name": layout.CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.BRIDGE,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.POD_CIDR, "gateway": layout.NODE_IP}]],
                    "routes": [{"dst": layout.SERVICE_CIDR}],
                    "dataDir": str(lay.run / "cni-ipam"),
                },
            }
        ],
    }
    return json.dumps(conf, indent=2)


def kubelet_yaml(lay: Layout) -> str:
    conf = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.NODE_IP,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": layout.KUBELET_HEALTHZ_PORT,
        "readOnlyPort": 0,
        "tlsCertFile": str(lay.pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(lay.pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(lay.pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{lay.containerd_sock}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{layout.CGROUP_ROOT}",
        # The machine mounts cgroup v1 controllers.
        "failCgroupV1": False,
        # Otherwise the kubelet adds `-d 127.0.0.0/8 ! -s 127.0.0.0/8 -j DROP`, which breaks the
        # machine's loopback services reached from its other addresses.
        "makeIPTablesUtilChains": False,
        "clusterDNS": [layout.DNS_SERVICE_IP],
        "clusterDomain": layout.CLUSTER_DOMAIN,
        # Pods get no resolver of the machine's: CoreDNS answers cluster.local and nothing else.
        "resolvConf": str(lay.conf / "resolv.conf"),
        "podLogsDir": str(lay.pod_logs),
        "failSwapOn": False,
        "serializeImagePulls": False,
        # Images are imported, never pulled: never garbage-collect them, never evict for disk.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "staticPodPath": "",
        "registerNode": True,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "containerLogMaxSize": "10Mi",
        "containerLogMaxFiles": 2,
    }
    return json.dumps(conf, indent=2)


def kube_proxy_yaml(lay: Layout) -> str:
    conf = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(lay.conf / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "hostnameOverride": layout.NODE_NAME,
        "clusterCIDR": layout.POD_CIDR,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # NodePorts on the node address only, never on loopback (route_localnet stays off).
        "nodePortAddresses": ["primary"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # Leave the machine's conntrack settings as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return json.dumps(conf, indent=2)


def write_all(lay: Layout) -> None:
    (lay.conf / "cni").mkdir(parents=True, exist_ok=True)
    (lay.conf / "containerd.toml").write_text(containerd_toml(lay))
    (lay.conf / "cni" / "10-tier0-node.conflist").write_text(cni_conflist(lay))
    (lay.conf / "kubelet.yaml").write_text(kubelet_yaml(lay))
    (lay.conf / "kube-proxy.yaml").write_text(kube_proxy_yaml(lay))
    (lay.conf / "resolv.conf").write_text("")


def apiserver_args(lay: Layout, binary: str) -> list[str]:
    p = lay.pki
    return [
        binary,
        f"--etcd-servers=http://127.0.0.1:{layout.ETCD_PORT}",
        f"--bind-address={layout.NODE_IP}",
        f"--advertise-address={layout.NODE_IP}",
        f"--secure-port={layout.APISERVER_PORT}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
        # Without it exec/logs look the node's name up in DNS and fail.
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        f"--service-account-issuer=https://kubernetes.default.svc.{layout.CLUSTER_DOMAIN}",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_args(lay: Layout, binary: str) -> list[str]:
    p = lay.pki
    return [
        binary,
        f"--kubeconfig={lay.conf / 'kube-controller-manager.kubeconfig'}",
        f"--authentication-kubeconfig={lay.conf / 'kube-controller-manager.kubeconfig'}",
        f"--authorization-kubeconfig={lay.conf / 'kube-controller-manager.kubeconfig'}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--service-cluster-ip-range={layout.SERVICE_CIDR}",
        "--controllers=*,-nodeipam,-cloud-node-lifecycle",
        "--profiling=false",
        "--v=1",
    ]


def scheduler_args(lay: Layout, binary: str) -> list[str]:
    kc = lay.conf / "kube-scheduler.kubeconfig"
    return [
        binary,
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def kubelet_args(lay: Layout, binary: str) -> list[str]:
    return [
        binary,
        f"--config={lay.conf / 'kubelet.yaml'}",
        f"--kubeconfig={lay.conf / 'kubelet.kubeconfig'}",
        f"--root-dir={lay.kubelet}",
        f"--cert-dir={lay.pki}",
        f"--node-ip={layout.NODE_IP}",
        f"--hostname-override={layout.NODE_NAME}",
        "--v=1",
    ]


def kube_proxy_args(lay: Layout, binary: str) -> list[str]:
    return [binary, f"--config={lay.conf / 'kube-proxy.yaml'}", "--v=1"]


def etcd_args(lay: Layout, binary: str) -> list[str]:
    peer = layout.ETCD_PORT + 1
    return [
        binary,
        "--name",
        "tier0-node",
        "--data-dir",
        str(lay.etcd),
        "--listen-client-urls",
        f"http://127.0.0.1:{layout.ETCD_PORT}",
        "--advertise-client-urls",
        f"http://127.0.0.1:{layout.ETCD_PORT}",
        "--listen-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls",
        f"http://127.0.0.1:{peer}",
        "--initial-cluster",
        f"tier0-node=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync",
        "--log-level",
        "warn",
    ]


def containerd_args(lay: Layout) -> list[str]:
    return ["/usr/bin/containerd", "--config", str(lay.conf / "containerd.toml"), "--log-level", "warn"]


def addons_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "node" / "addons"
