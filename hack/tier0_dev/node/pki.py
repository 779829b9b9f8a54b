"""The node's certificates: one CA, the apiserver's serving certificate and a client certificate per
component (its user and groups are what RBAC sees). EC P-256 keys: a whole set takes well under a second.
"""

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from tier0_dev import programs
from tier0_dev.node import layout


@dataclass(frozen=True)
class Client:
    name: str  # file stem and kubeconfig name
    user: str  # certificate CN
    group: str = ""  # certificate O


CLIENTS = (
    Client("admin", "tier0-admin", "system:masters"),
    Client("kube-controller-manager", "system:kube-controller-manager"),
    Client("kube-scheduler", "system:kube-scheduler"),
    Client("kubelet", f"system:node:{layout.NODE_NAME}", "system:nodes"),
    Client("kube-proxy", "system:kube-proxy"),
    # The apiserver's identity towards the kubelet (exec, logs, port-forward).
    Client("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
)

APISERVER_SANS = (
    f"IP:{layout.NODE_IP}",
    f"IP:{layout.KUBERNETES_SERVICE_IP}",
    "IP:127.0.0.1",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    f"DNS:kubernetes.default.svc.{layout.CLUSTER_DOMAIN}",
)


def _key(path: Path) -> None:
    programs.openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))


def _sign(d: Path, name: str, subject: str, ext: str) -> None:
    _key(d / f"{name}.key")
    programs.openssl("req", "-new", "-key", str(d / f"{name}.key"), "-subj", subject, "-out", str(d / f"{name}.csr"))
    (d / f"{name}.ext").write_text(ext)
    programs.openssl(
        "x509",
        "-req",
        "-in",
        str(d / f"{name}.csr"),
        "-CA",
        str(d / "ca.crt"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-days",
        "365",
        "-extfile",
        str(d / f"{name}.ext"),
        "-out",
        str(d / f"{name}.crt"),
    )


def write(d: Path) -> None:
    """A fresh CA and every certificate into `d` (a new cluster gets new credentials)."""
    d.mkdir(parents=True, exist_ok=True)
    _key(d / "ca.key")
    programs.openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(d / "ca.key"),
        "-days",
        "365",
        "-subj",
        "/CN=tier0-node-ca",
        "-out",
        str(d / "ca.crt"),
    )
    _sign(
        d,
        "apiserver",
        "/CN=kube-apiserver",
        f"subjectAltName={','.join(APISERVER_SANS)}\nextendedKeyUsage=serverAuth\n",
    )
    _sign(
        d,
        "kubelet-serving",
        f"/CN={layout.NODE_NAME}",
        f"subjectAltName=IP:{layout.NODE_IP},DNS:{layout.NODE_NAME}\nextendedKeyUsage=serverAuth\n",
    )
    for c in CLIENTS:
        subject = f"/CN={c.user}" + (f"/O={c.group}" if c.group else "")
        _sign(d, c.name, subject, "extendedKeyUsage=clientAuth\n")
    # Service-account token signing keys.
    programs.openssl("genrsa", "-out", str(d / "sa.key"), "2048")
    programs.openssl("rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(pki: Path, client: str, out: Path) -> None:
    """A self-contained kubeconfig (certificates inline) for one of CLIENTS."""
    server = f"https://{layout.NODE_IP}:{layout.APISERVER_PORT}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": layout.NODE_NAME,
                "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": client,
                "user": {
                    "client-certificate-data": _b64(pki / f"{client}.crt"),
                    "client-key-data": _b64(pki / f"{client}.key"),
                },
            }
        ],
        "contexts": [{"name": layout.NODE_NAME, "context": {"cluster": layout.NODE_NAME, "user": client}}],
        "current-context": layout.NODE_NAME,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config, indent=2))
    out.chmod(0o600)
