"""Losing a whole region on a real cluster: its pods killed and kept down, cut off by iptables,
drained off the node, or its API restarted. Each fault is a context manager that applies itself on
entry and ALWAYS gives the region back on exit (in `finally`; the partition's rules and a
cordon also at interpreter exit, since a leftover would break every later test). Used by the e2e
tier (test_region.py) and `make bench BENCH=region` through `regionrun`.

A region is every pod labelled `tier0.dev/region=<region>`: its Redis, API, ingest and activity
pods, and its brokers once they run per region (today the chart's one broker carries no region
label, so no fault here touches it).
"""

import atexit
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import kit

from tier0_dev.procs import find_program

REGION_LABEL = "tier0.dev/region"
CHAIN = "TIER0-E2E-PARTITION"
"""The partition's iptables chain (node-down removes every TIER0-* chain too)."""
HOOKS = ("FORWARD", "INPUT", "OUTPUT")
"""FORWARD sees pod-to-pod traffic on the node's bridge (bridge-nf-call-iptables is 1); INPUT and
OUTPUT carry what passes between the pods and the node itself (the kubelet's probes from the
node's bridge address, 10.244.0.1)."""
IPTABLES_ENV = "TIER0_E2E_IPTABLES"
"""A JSON list: the command that runs iptables where the pods' traffic passes (default: this
machine's `iptables`, the built-in node's netns; on kind, `docker exec -i <node container>
iptables`, set by `make kind-e2e`). Its last word with `-restore` appended runs iptables-restore
there (the partition goes in at once through it)."""
EVICTION_RETRY_S = 5.0
"""How long `kubectl drain` waits before retrying an eviction refused with 429."""

Verdict = Literal["evicted", "gone", "retry", "error"]


@dataclass
class Fault:
    """One fault as applied: when it began, when it was fully in place, when the region was given
    back (None while it is lost), and what it did."""

    name: str
    region: str
    started: float
    applied: float = 0.0
    returned: float | None = None
    pods: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- pure parts --------------------------------------------------------------------------------------


def partition_rules(ips: list[str], chain: str = CHAIN) -> list[list[str]]:
    """iptables arguments that cut the pods at `ips` off from everything but each other: traffic
    among them returns to the normal rules, anything else to or from them is dropped."""
    rules = [["-A", chain, "-s", a, "-d", b, "-j", "RETURN"] for a in ips for b in ips]
    rules += [["-A", chain, "-s", a, "-j", "DROP"] for a in ips]
    rules += [["-A", chain, "-d", a, "-j", "DROP"] for a in ips]
    return rules


def hook_rules(chain: str = CHAIN) -> list[list[str]]:
    """Jumps into `chain` at the top of each hook, ahead of kube-proxy's and the node's rules (and
    of the ESTABLISHED accept, so open connections are cut too)."""
    return [["-I", hook, "1", "-j", chain] for hook in HOOKS]


def partition_restore(ips: list[str], chain: str = CHAIN) -> str:
    """`iptables-restore --noflush` input that puts the whole partition in place in one commit: a
    cut that grows rule by rule (one `docker exec` each on kind: seconds) would start the operator's
    detection part way and blur when the fault began."""
    lines = ["*filter", f":{chain} - [0:0]"]
    lines += [" ".join(rule) for rule in (*partition_rules(ips, chain), *hook_rules(chain))]
    return "\n".join([*lines, "COMMIT", ""])


def eviction_verdict(returncode: int, stderr: str) -> Verdict:
    """What an answer to POST pods/<name>/eviction means, as `kubectl drain` reads it: 429 is a
    PodDisruptionBudget (or the API's rate limit) saying not now, 404 that the pod is gone."""
    if returncode == 0:
        return "evicted"
    if "NotFound" in stderr or "not found" in stderr:
        return "gone"
    if "TooManyRequests" in stderr or "disruption budget" in stderr or "429" in stderr:
        return "retry"
    return "error"


def workload_replicas(items: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(kind, name, spec.replicas) of each Deployment and StatefulSet in a `kubectl get -o json` list."""
    return [(i["kind"].lower(), i["metadata"]["name"], int(i["spec"].get("replicas", 1))) for i in items]


# -- I/O ---------------------------------------------------------------------------------------------


def run(argv: list[str], stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A command whose failure is an answer to read, not an error."""
    if stdin is None:  # nothing to read (`docker exec -i` would otherwise forward this process's stdin)
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    return subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=timeout)


def _kubectl(c: kit.Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """kubectl whose failure is an answer to read, not an error."""
    return run([find_program("kubectl"), "--kubeconfig", str(c.rel.kubeconfig), *args], stdin)


def region_pods(c: kit.Cluster, region: str) -> list[dict[str, Any]]:
    items = c.json("-n", c.ns, "get", "pods", "-l", f"{REGION_LABEL}={region}")["items"]
    assert isinstance(items, list)
    return [p for p in items if p["status"].get("phase") in {"Running", "Pending"}]


@contextmanager
def _undo_at_exit(undo: Callable[[], None]) -> Iterator[None]:
    """`undo` runs when the block ends, and at interpreter exit should the process die inside it."""
    atexit.register(undo)
    try:
        yield
    finally:
        atexit.unregister(undo)
        undo()


@contextmanager
def region_kill(c: kit.Cluster, region: str) -> Iterator[Fault]:
    """Every pod of `region` force-deleted and kept down (`kit.Cluster.hold_down`: the workloads
    that own them orphaned first, so no replacement can come up and be deleted gracefully, which
    would be a drain); on exit the workloads are recreated as they were."""
    selector = f"{REGION_LABEL}={region}"
    items = c.json("-n", c.ns, "get", "deployments,statefulsets", "-l", selector)["items"]
    assert isinstance(items, list)
    workloads = workload_replicas(items)
    assert workloads, f"no workload carries {selector}"
    fault = Fault("region kill", region, time.time())
    fault.pods = [p["metadata"]["name"] for p in region_pods(c, region)]
    fault.notes.append(", ".join(f"{kind}/{name}={n}" for kind, name, n in workloads))
    give_back: Callable[[], None] | None = None

    def restore() -> None:
        if give_back is not None:
            give_back()
        fault.returned = time.time()

    with _undo_at_exit(restore):
        give_back, fault.started = c.hold_down(selector)
        fault.applied = time.time()
        yield fault


def iptables_command() -> list[str]:
    """argv of iptables where the cluster's pod traffic passes (`IPTABLES_ENV`)."""
    given = os.environ.get(IPTABLES_ENV)
    if given:
        argv = json.loads(given)
        assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), given
        return argv
    return [find_program("iptables")]


def iptables_restore_command() -> list[str]:
    """argv of iptables-restore beside `iptables_command`, never flushing what is there."""
    *prefix, program = iptables_command()
    return [*prefix, f"{program}-restore", "--noflush"]


def remove_partition(chain: str = CHAIN) -> None:
    """Every jump into `chain` and the chain itself, whatever state a run left them in."""
    iptables = iptables_command()
    for hook in HOOKS:
        for _ in range(10):
            if run([*iptables, "-w", "5", "-D", hook, "-j", chain]).returncode != 0:
                break
    run([*iptables, "-w", "5", "-F", chain])
    run([*iptables, "-w", "5", "-X", chain])


@contextmanager
def region_partition(c: kit.Cluster, region: str) -> Iterator[Fault]:
    """Every pod of `region` cut off from everything else (the other region, the operator, the
    brokers while they belong to no region, DNS, the node and its kubelet probes); traffic among
    the region's own pods flows. The rules go on exit (and at exit should the process die)."""
    fault = Fault("region partition", region, time.time())
    pods = [p for p in region_pods(c, region) if p["status"].get("podIP")]
    ips = sorted({p["status"]["podIP"] for p in pods})
    assert ips, f"no running pod of {region}"
    fault.pods = [p["metadata"]["name"] for p in pods]
    fault.notes.append(f"cut off: {', '.join(ips)}")
    remove_partition()  # a chain left by a run that was killed

    def heal() -> None:
        remove_partition()
        fault.returned = time.time()

    with _undo_at_exit(heal):
        restore = [*iptables_restore_command(), "-w", "5"]
        fault.started = time.time()
        subprocess.run(restore, input=partition_restore(ips), text=True, check=True, capture_output=True)
        fault.applied = time.time()
        yield fault


def evict(c: kit.Cluster, pod: str) -> Verdict:
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": c.ns}}
    path = f"/api/v1/namespaces/{c.ns}/pods/{pod}/eviction"
    out = _kubectl(c, "create", "--raw", path, "-f", "-", stdin=json.dumps(body))
    return eviction_verdict(out.returncode, out.stderr)


@contextmanager
def node_drain(c: kit.Cluster, region: str, timeout: float = 60) -> Iterator[Fault]:
    """`kubectl drain` of `region`'s pods: their node cordoned (on the built-in node both regions
    share it; the other region's pods keep running), each pod evicted through the Eviction API,
    retried every EVICTION_RETRY_S while a PodDisruptionBudget answers 429, for up to `timeout` s,
    then waited for until gone. What could not be evicted in time is in `notes`. Uncordoned on exit,
    so the region's pods are scheduled again."""
    fault = Fault("node drain", region, time.time())
    pods = region_pods(c, region)
    nodes = sorted({p["spec"]["nodeName"] for p in pods if p["spec"].get("nodeName")})
    fault.pods = [p["metadata"]["name"] for p in pods]

    def uncordon() -> None:
        failed = [out.stderr.strip() for node in nodes if (out := _kubectl(c, "uncordon", node)).returncode]
        fault.returned = time.time()
        assert not failed, f"could not uncordon: {failed}"

    with _undo_at_exit(uncordon):
        for node in nodes:
            c.kubectl("cordon", node)
        deadline = time.monotonic() + timeout
        pending, refused = list(fault.pods), 0
        while pending and time.monotonic() < deadline:
            for pod in list(pending):
                verdict = evict(c, pod)
                if verdict == "error":
                    raise AssertionError(f"eviction of {pod} failed: {_kubectl(c, 'get', 'pod', pod).stderr}")
                if verdict == "retry":
                    refused += 1
                else:
                    pending.remove(pod)
            if pending:
                time.sleep(EVICTION_RETRY_S)
        if refused:
            fault.notes.append(f"{refused} evictions refused with 429 and retried")
        if pending:
            fault.notes.append(f"not evicted within {timeout:.0f} s: {', '.join(pending)}")
        uids = {p["metadata"]["uid"] for p in pods if p["metadata"]["name"] not in pending}
        while time.monotonic() < deadline + 60:  # each pod's grace period, as drain waits
            left = {p["metadata"]["uid"] for p in region_pods(c, region)} & uids
            if not left:
                break
            time.sleep(0.5)
        fault.applied = time.time()
        yield fault


@contextmanager
def api_rolling_restart(c: kit.Cluster, region: str, timeout: float = 180) -> Iterator[Fault]:
    """`kubectl rollout restart` of `region`'s API Deployment; on exit, waited until rolled out."""
    fault = Fault("rolling restart of the API", region, time.time())
    deployment = f"deployment/{c.rel.name}-region-api-{region}"
    fault.pods = [p["metadata"]["name"] for p in region_pods(c, region) if "region-api" in p["metadata"]["name"]]
    try:
        c.kubectl("-n", c.ns, "rollout", "restart", deployment)
        fault.applied = time.time()
        yield fault
    finally:
        c.kubectl("-n", c.ns, "rollout", "status", deployment, f"--timeout={timeout:.0f}s", timeout=timeout + 10)
        fault.returned = time.time()
