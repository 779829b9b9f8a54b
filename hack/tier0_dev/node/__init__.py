"""The built-in single-node Kubernetes cluster (`make node-up`, `node-down`, `node-status`).

A real node in the shape of kubernetes' `hack/local-up-cluster.sh`: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, containerd (Debian), kubelet, kube-proxy (iptables) and the
CNI bridge plugin, with CoreDNS and local-path-provisioner as the cluster's add-ons. Every address
is on one bridge inside the machine; nothing is routed out (see `host.py`).
"""
