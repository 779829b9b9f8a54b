"""A real Kubernetes control plane on loopback: etcd + kube-apiserver, envtest style.

It is the same apiserver a cluster runs, so CRD structural schemas, CEL rules, defaults, RBAC and
server-side dry runs behave exactly as in production. There is no controller-manager or
scheduler: objects are stored and validated, Pods are not run.
"""

import json
import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tier0_dev import programs
from tier0_dev.procs import Process, StartupError, find_program, free_port

ADMIN_TOKEN_USER = "tier0-admin"


@dataclass
class ControlPlane:
    state_dir: Path
    port: int
    etcd_port: int
    token: str
    processes: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()

    def ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.state_dir / "pki" / "ca.crt"))
        req = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=1, context=ctx) as r:
                return bool(r.read() == b"ok")
        except OSError:
            return False


def _write_pki(d: Path) -> None:
    """A CA, a serving certificate for 127.0.0.1/localhost and the service-account key pair."""
    if (d / "apiserver.crt").exists():
        return
    d.mkdir(parents=True, exist_ok=True)
    o = programs.openssl
    o(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=tier0-local-ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )
    o(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        str(d / "apiserver.key"),
        "-out",
        str(d / "apiserver.csr"),
    )
    ext = d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n")
    o(
        "x509",
        "-req",
        "-in",
        str(d / "apiserver.csr"),
        "-CA",
        str(d / "ca.crt"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        str(ext),
        "-out",
        str(d / "apiserver.crt"),
    )
    o("genrsa", "-out", str(d / "sa.key"), "2048")
    o("rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))


def write_kubeconfig(path: Path, server: str, ca: Path, token: str, user: str = ADMIN_TOKEN_USER) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "tier0-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "tier0-local", "context": {"cluster": "tier0-local", "user": user}}],
        "current-context": "tier0-local",
    }
    path.write_text(json.dumps(config, indent=2))


def start(state_dir: Path, port: int | None = None, etcd_port: int | None = None) -> ControlPlane:
    """Start etcd and kube-apiserver; returns once /readyz says ok (a few seconds once built)."""
    apiserver_bin = find_program("kube-apiserver")
    state_dir.mkdir(parents=True, exist_ok=True)
    pki = state_dir / "pki"
    _write_pki(pki)
    token = "tier0-local-admin-token"
    # Static tokens: the admin (system:masters) plus one per test identity added by tests.
    (state_dir / "tokens.csv").write_text(f'{token},{ADMIN_TOKEN_USER},1,"system:masters"\n')
    cp = ControlPlane(state_dir, port or free_port(), etcd_port or free_port(), token)
    cp.processes.append(programs.etcd(cp.etcd_port, state_dir / "etcd"))
    argv = [
        apiserver_bin,
        f"--etcd-servers=http://127.0.0.1:{cp.etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={cp.port}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={state_dir / 'tokens.csv'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=1",
    ]
    api = Process(f"kube-apiserver-{cp.port}", argv, state_dir / "kube-apiserver.log").start()
    cp.processes.append(api)
    try:
        api.wait_ready(cp.ready, timeout=120)
    except StartupError:
        cp.stop()
        raise
    write_kubeconfig(cp.kubeconfig, cp.url, pki / "ca.crt", token)
    _wait_default_namespace(cp)
    return cp


def _wait_default_namespace(cp: ControlPlane, timeout: float = 30) -> None:
    """The apiserver creates `default` shortly after readyz; tests create objects there at once."""
    ctx = ssl.create_default_context(cafile=str(cp.state_dir / "pki" / "ca.crt"))
    req = urllib.request.Request(f"{cp.url}/api/v1/namespaces/default", headers={"Authorization": f"Bearer {cp.token}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(req, timeout=1, context=ctx):
                return
        except OSError:
            time.sleep(0.1)
    raise StartupError("namespace default never appeared")
