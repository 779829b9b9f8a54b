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
    def mqtt_service(self) -> str:
        """The global MQTT Service devices publish to (follows the active region's EMQX)."""
        return f"{self.name}-mqtt"

    @property
    def amqp_service(self) -> str:
        """The global AMQP Service users publish to (follows the active region's RabbitMQ)."""
        return f"{self.name}-amqp"

    @property
    def api_secret(self) -> str:
        """The chart's API token Secret (charts/tier0 NOTES.txt names it too)."""
        return f"{self.name}-api"


def _run(argv: list[str], timeout: float = 600, stdin: str | None = None) -> str:
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
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
    # The operator is granted tier0's namespace only (a Role there): it must exist first.
    manifest = kubectl(rel, "create", "namespace", rel.namespace, "--dry-run=client", "-o", "json")
    _run([find_program("kubectl"), "--kubeconfig", str(rel.kubeconfig), "apply", "-f", "-"], stdin=manifest)
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
        "--set-json",
        f'watchNamespaces=["{rel.namespace}"]',
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


def address(rel: Release, service: str) -> tuple[str, str]:
    """(ClusterIP, first port) of one of the release's Services."""
    out = kubectl(
        rel, "-n", rel.namespace, "get", "service", service, "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].port}"
    )
    ip, port = out.split()
    return ip, port


def access(rel: Release) -> str:
    ip, port = address(rel, rel.global_service)
    mqtt, amqp = (":".join(address(rel, s)) for s in (rel.mqtt_service, rel.amqp_service))
    return f"""
tier0 is up on the built-in node (RegionPair {rel.namespace}/{rel.pair} Healthy).

  kubectl:  export KUBECONFIG={rel.kubeconfig}
            kubectl -n {rel.namespace} get regionpair,pods
  API:      http://{ip}:{port}/api/status   (the global Service; from this machine, through kube-proxy)
  console:  http://{ip}:{port}/
  or on loopback:  kubectl -n {rel.namespace} port-forward service/{rel.global_service} 8000:{port}
                   then http://127.0.0.1:8000/
  brokers:  mqtt://{mqtt} (service/{rel.mqtt_service}), amqp://{amqp}/tier0 (service/{rel.amqp_service}):
            they follow the active region like the API (an EMQX and a RabbitMQ per region; users and
            passwords in the Secrets {rel.name}-mqtt and {rel.name}-rabbitmq)
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
