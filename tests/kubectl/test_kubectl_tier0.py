"""`kubectl tier0` against the real apiserver, the real operator and real redis-servers, run as users
run it (the `kubectl-tier0` executable, once through `kubectl tier0` itself): status and its JSON and
YAML forms, pause/resume, history, a switchover that waits and is idempotent, an unknown region, a
timeout, a planned drill and an unplanned one recorded on the pair and as an Event.

The unplanned drill scales a StatefulSet that this control plane (no controllers, no kubelet) cannot
run; the test plays its controller for the active region's redis-server: replicas 0 kills it,
replicas 1 starts it again on its port and data."""

import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from tier0_contract import regionpair as rp
from tier0_dev import programs
from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import Process, free_port
from tier0_kube import client as kube_client
from tier0_testing import operator as testing
from tier0_testing.operator import apply

pytestmark = pytest.mark.controlplane

OperatorFactory = Callable[..., tuple[Process, int]]
RedisFactory = Callable[..., tuple[Process, int]]
PLUGIN = Path(sys.executable).parent / "kubectl-tier0"


async def plugin(kubeconfig: Path, namespace: str, *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run the installed `kubectl-tier0` and return (exit code, stdout, stderr)."""
    assert PLUGIN.exists(), f"{PLUGIN} missing: make venv (or make kubectl-plugin) installs it"
    proc = await asyncio.create_subprocess_exec(
        str(PLUGIN),
        "--kubeconfig",
        str(kubeconfig),
        "-n",
        namespace,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def pair_healthy_on(kube: kube_client.Client, namespace: str, region: str) -> rp.RegionPair:
    async def check() -> rp.RegionPair | None:
        pair = rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair"))
        return pair if pair.status.phase == "Healthy" and pair.status.active_region == region else None

    found: rp.RegionPair = await testing.wait_for(f"pair Healthy on {region}", check, timeout=30)
    return found


async def start_pair(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> dict[str, int]:
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    operator()
    ports = {"region1": p1, "region2": p2}
    apply(kubectl, namespace, testing.pair_manifest("pair", ports, interval=0.3))
    await pair_healthy_on(kube, namespace, "region1")
    return ports


async def test_status_pause_resume_and_history(
    control_plane: ControlPlane,
    kubectl: list[str],
    namespace: str,
    kube: kube_client.Client,
    redis_factory: RedisFactory,
    operator: OperatorFactory,
) -> None:
    await start_pair(kubectl, namespace, kube, redis_factory, operator)
    config = control_plane.kubeconfig

    # As users call it: `kubectl tier0`, kubectl finding kubectl-tier0 on PATH.
    env = {**os.environ, "KUBECONFIG": str(config), "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ['PATH']}"}

    async def status_without_lag() -> str | None:
        proc = await asyncio.create_subprocess_exec(
            kubectl[0],
            "tier0",
            "-n",
            namespace,
            "status",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out_b, err_b = await proc.communicate()
        assert proc.returncode == 0, err_b.decode()
        # A Healthy pair may show a few bytes of replication lag for a round (the operator's own
        # writes to the primary); the plugin is right to report them, so ask again until none.
        return out_b.decode() if "Bytes at risk: 0" in out_b.decode() else None

    text: str = await testing.wait_for(
        "kubectl tier0 status with no bytes at risk", status_without_lag, timeout=15, every=0.5
    )
    print(text)
    assert text.startswith(f"RegionPair {namespace}/pair: phase Healthy, active region1")
    assert any(line.split()[:3] == ["region1", "*", "primary"] for line in text.splitlines())
    assert any(line.split()[:4] == ["region2", "replica", "healthy", "up"] for line in text.splitlines())
    assert "At risk: nothing" in text

    code, out, _ = await plugin(config, namespace, "status", "pair", "-o", "json")
    shown = json.loads(out)
    assert code == 0 and shown["phase"] == "Healthy" and shown["atRisk"] == [] and shown["bytesAtRisk"] == 0
    assert {r["name"]: r["role"] for r in shown["regions"]} == {"region1": "primary", "region2": "replica"}
    code, out, _ = await plugin(config, namespace, "status", "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["activeRegion"] == "region1"

    code, out, _ = await plugin(config, namespace, "pause")
    assert code == 0 and "paused" in out
    pair = rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair"))
    assert pair.spec.paused

    async def paused_reported() -> bool:
        status = rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair")).status
        cond = status.condition(rp.PAUSED)
        return cond is not None and cond.status == "True"

    await testing.wait_for("condition Paused=True", paused_reported, timeout=10)
    code, out, _ = await plugin(config, namespace, "status")
    assert "  [warning] paused: the operator probes but changes nothing (no switchover, no failover)" in out
    code, out, _ = await plugin(config, namespace, "pause", "pair")
    assert code == 0 and out.strip() == "regionpair/pair already paused"
    code, out, err = await plugin(config, namespace, "switchover", "region2")
    assert code == 1 and "is paused" in err
    code, out, _ = await plugin(config, namespace, "resume")
    assert code == 0 and not rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair")).spec.paused

    code, out, _ = await plugin(config, namespace, "history")
    print(out)
    assert code == 0 and "Bootstrapped" in out and "ReplicationConfigured" in out
    code, out, _ = await plugin(config, namespace, "history", "-o", "json")
    reasons = [e["reason"] for e in json.loads(out)]
    assert reasons[-1] == "Bootstrapped", reasons  # newest first

    code, _, err = await plugin(config, namespace, "status", "nosuch")
    assert code == 1 and err.strip() == f'error: RegionPair "nosuch" not found in namespace {namespace}'


async def test_switchover_waits_for_the_operator_and_is_idempotent(
    control_plane: ControlPlane,
    kubectl: list[str],
    namespace: str,
    kube: kube_client.Client,
    redis_factory: RedisFactory,
    operator: OperatorFactory,
) -> None:
    await start_pair(kubectl, namespace, kube, redis_factory, operator)
    config = control_plane.kubeconfig
    code, out, err = await plugin(config, namespace, "switchover", "region2", "--timeout", "30")
    print(err, out)
    assert code == 0, err
    assert out.startswith("regionpair/pair: switched over to region2 in ")
    pair = rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair"))
    assert pair.status.active_region == "region2" and not pair.status.in_transition
    assert await testing.service_region(kube, namespace, "region-api") == "region2"

    code, out, _ = await plugin(config, namespace, "switchover", "region2")
    assert code == 0 and "region2 is already active" in out
    code, _, err = await plugin(config, namespace, "switchover", "region3")
    assert code == 2 and 'region "region3" unknown: RegionPair pair has region1, region2' in err
    code, out, _ = await plugin(config, namespace, "history")
    assert "SwitchoverSucceeded" in out and "SwitchoverCompleted" in out


async def test_switchover_times_out_when_no_operator_acts(
    control_plane: ControlPlane, kubectl: list[str], namespace: str, kube: kube_client.Client
) -> None:
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": free_port(), "region2": free_port()}))
    code, _, err = await plugin(control_plane.kubeconfig, namespace, "switchover", "region2", "--timeout", "1")
    assert code == 3, err
    assert "timed out after 1s waiting for the switchover to region2" in err
    pair = rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair"))
    assert pair.spec.active_region == "region2"  # asked for; nobody acted
    code, _, err = await plugin(control_plane.kubeconfig, namespace, "drill")
    assert code == 1 and "no drill: the pair is Pending, not Healthy" in err


async def test_planned_drill_is_recorded_on_the_pair_and_as_an_event(
    control_plane: ControlPlane,
    kubectl: list[str],
    namespace: str,
    kube: kube_client.Client,
    redis_factory: RedisFactory,
    operator: OperatorFactory,
) -> None:
    await start_pair(kubectl, namespace, kube, redis_factory, operator)
    code, out, err = await plugin(control_plane.kubeconfig, namespace, "drill", "-o", "json", "--timeout", "30")
    print(err, out)
    assert code == 0, err
    report = rp.DrillReport.model_validate_json(out)
    assert report.passed and report.kind == "Planned"
    assert (report.from_region, report.to_region, report.transition_type) == ("region1", "region2", "Switchover")
    assert report.transition_seconds is not None and 0 < report.transition_seconds < 5
    assert report.detection_seconds is not None and report.lost_bytes == 0
    pair = rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair"))
    recorded = rp.DrillReport.model_validate_json(pair.metadata.annotations[rp.LAST_DRILL_ANNOTATION])
    assert recorded == report
    events = await testing.list_events(kube, namespace, "DrillPassed")
    assert len(events) == 1 and events[0]["involvedObject"]["uid"] == pair.metadata.uid
    assert events[0]["message"].startswith("Planned drill region1->region2 passed: detection ")
    code, out, _ = await plugin(control_plane.kubeconfig, namespace, "status")
    print(out)
    assert "Last drill: Planned region1->region2 passed" in out
    code, out, _ = await plugin(control_plane.kubeconfig, namespace, "history")
    print(out)
    reasons = [line.split()[2] for line in out.splitlines()[1:]]
    # Newest first. Events carry whole seconds, so within one second the status entry (sub-second)
    # comes after them: when bootstrap and drill share a second it is the last line.
    posted = [r for r in reasons if r != "SwitchoverSucceeded"]
    assert posted[0] == "DrillPassed" and posted[-1] == "Bootstrapped", out
    # The transition's Events (posted after it, whole seconds) above the status's sub-second entry.
    assert reasons.index("SwitchoverCompleted") < reasons.index("SwitchoverSucceeded"), out


@dataclass
class ManagedRedis:
    """A redis-server that a StatefulSet "runs": restarted on its port and data."""

    port: int
    dir: Path
    proc: Process


async def statefulset_controller(
    kube: kube_client.Client, namespace: str, name: str, redis: ManagedRedis, stop: asyncio.Event
) -> list[int]:
    """Plays the StatefulSet controller for one redis-server: kills it at replicas 0, starts it again
    (same port and data) at replicas 1. Returns the replica counts it acted on."""
    apps: Any = k8s.AppsV1Api(kube.api)
    acted: list[int] = []
    while not stop.is_set():
        scale = await apps.read_namespaced_stateful_set_scale(name, namespace)
        want = int(scale.spec.replicas or 0)
        if want == 0 and redis.proc.alive():
            redis.proc.kill()
            acted.append(0)
        elif want > 0 and not redis.proc.alive():
            redis.proc = programs.redis(redis.port, redis.dir, persistent=True)
            acted.append(want)
        await asyncio.sleep(0.05)
    return acted


def statefulset(name: str) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "redis", "image": "redis"}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


async def test_unplanned_drill_takes_the_active_redis_down_and_restores_it(
    control_plane: ControlPlane,
    kubectl: list[str],
    namespace: str,
    kube: kube_client.Client,
    operator: OperatorFactory,
    tmp_path: Path,
) -> None:
    p1, p2 = free_port(), free_port()
    r1 = ManagedRedis(p1, tmp_path / "r1", programs.redis(p1, tmp_path / "r1", persistent=True))
    r2 = programs.redis(p2, tmp_path / "r2", persistent=True)
    stop = asyncio.Event()
    try:
        operator()
        apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}, interval=0.3))
        await pair_healthy_on(kube, namespace, "region1")
        apply(kubectl, namespace, statefulset("redis-region1"))
        config = control_plane.kubeconfig

        code, _, err = await plugin(config, namespace, "drill", "--unplanned", "--statefulset", "redis-region1")
        assert code == 1 and "confirm on a terminal or pass --yes" in err
        assert r1.proc.alive()

        controller = asyncio.create_task(statefulset_controller(kube, namespace, "redis-region1", r1, stop))
        args = ("drill", "--unplanned", "--yes", "--statefulset", "redis-region1", "--timeout", "30")
        code, out, err = await plugin(config, namespace, *args)
        stop.set()
        acted = await controller
        print(err, out)
        assert code == 0, err
        assert acted == [0, 1]
        pair = rp.RegionPair.from_object(await testing.get_pair(kube, namespace, "pair"))
        report = rp.DrillReport.model_validate_json(pair.metadata.annotations[rp.LAST_DRILL_ANNOTATION])
        assert report.passed and report.kind == "Unplanned" and report.restored
        assert (report.from_region, report.to_region, report.transition_type) == ("region1", "region2", "Failover")
        assert report.detection_seconds is not None and report.outage_seconds is not None
        assert report.detection_seconds < report.outage_seconds < 10
        assert pair.spec.active_region == "region2"  # the failover acknowledged
        assert pair.status.phase == "Healthy" and pair.status.region("region1") is not None
        assert len(await testing.list_events(kube, namespace, "DrillPassed")) == 1
        assert "outage (operator's view)" in out
    finally:
        stop.set()
        r1.proc.stop()
        r2.stop()
