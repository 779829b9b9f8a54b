"""`make up` on the built-in node: both charts installed with the node's values, the RegionPair
Healthy, then how to reach the API, the console and kubectl. The e2e tests deploy the same way."""

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tier0_dev.procs import ROOT, StartupError, find_program


@dataclass(frozen=True)
class Release:
    kubeconfig: Path
    namespace: str = "tier0"
    operator_namespace: str = "tier0-system"
    name: str = "tier0"
    operator_name: str = "tier0-operator"
    values: Path = ROOT / "hack" / "node-values.yaml"
    operator_values: Path = ROOT / "hack" / "node-operator-values.yaml"

    @property
    def pair(self) -> str:
        return self.name

    @property
    def global_service(self) -> str:
        return f"{self.name}-region-api"

    @property
    def api_secret(self) -> str:
        """The chart's API token Secret (charts/tier0 NOTES.txt names it too)."""
        return f"{self.name}-api"


def _run(argv: list[str], timeout: float = 600) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise StartupError(f"{' '.join(argv[:5])} ... failed:\n{out.stderr.strip()[-3000:]}")
    return out.stdout


def helm(rel: Release, *args: str, timeout: float = 600) -> str:
    return _run([find_program("helm"), "--kubeconfig", str(rel.kubeconfig), *args], timeout)


def kubectl(rel: Release, *args: str, timeout: float = 120) -> str:
    return _run([find_program("kubectl"), "--kubeconfig", str(rel.kubeconfig), *args], timeout)


def install(rel: Release, extra: tuple[str, ...] = (), timeout: str = "300s") -> float:
    """helm upgrade --install of the operator, then of tier0; returns seconds until both are Ready."""
    start = time.monotonic()
    helm(
        rel,
        "upgrade",
        "--install",
        rel.operator_name,
        str(ROOT / "charts" / "tier0-operator"),
        "-n",
        rel.operator_namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        timeout,
        "-f",
        str(rel.operator_values),
    )
    helm(
        rel,
        "upgrade",
        "--install",
        rel.name,
        str(ROOT / "charts" / "tier0"),
        "-n",
        rel.namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        timeout,
        "-f",
        str(rel.values),
        "--set",
        f"networkPolicy.operatorNamespace={rel.operator_namespace}",
        *extra,
    )
    return time.monotonic() - start


def regionpair(rel: Release) -> dict[str, object]:
    out = kubectl(rel, "-n", rel.namespace, "get", "regionpair", rel.pair, "-o", "json")
    return dict(json.loads(out))


def wait_phase(rel: Release, phase: str, timeout: float = 180) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    pair: dict[str, object] = {}
    while time.monotonic() < deadline:
        pair = regionpair(rel)
        status = pair.get("status")
        if isinstance(status, dict) and status.get("phase") == phase:
            return pair
        time.sleep(0.5)
    raise StartupError(f"RegionPair {rel.pair} not {phase} after {timeout:.0f} s: {pair.get('status')}")


def access(rel: Release) -> str:
    ip = kubectl(rel, "-n", rel.namespace, "get", "service", rel.global_service, "-o", "jsonpath={.spec.clusterIP}")
    port = kubectl(
        rel, "-n", rel.namespace, "get", "service", rel.global_service, "-o", "jsonpath={.spec.ports[0].port}"
    )
    return f"""
tier0 is up on the built-in node (RegionPair {rel.namespace}/{rel.pair} Healthy).

  kubectl:  export KUBECONFIG={rel.kubeconfig}
            kubectl -n {rel.namespace} get regionpair,pods
  API:      http://{ip}:{port}/api/status   (the global Service; from this machine, through kube-proxy)
  console:  http://{ip}:{port}/
  or on loopback:  kubectl -n {rel.namespace} port-forward service/{rel.global_service} 8000:{port}
                   then http://127.0.0.1:8000/
  switchover:      kubectl -n {rel.namespace} patch regionpair {rel.pair} --type merge \\
                     -p '{{"spec":{{"activeRegion":"region2"}}}}'
  API token (Simulate Failover in the console, POST /api/failover/*; kept in the Secret {rel.api_secret}):
                   kubectl -n {rel.namespace} get secret {rel.api_secret} -o jsonpath='{{.data.token}}' | base64 -d
  stop it all:     make down
"""


def main(kubeconfig: Path) -> int:
    rel = Release(kubeconfig)
    took = install(rel)
    wait_phase(rel, "Healthy")
    print(f"[deploy] both charts Ready in {took:.0f} s")
    print(access(rel))
    return 0
