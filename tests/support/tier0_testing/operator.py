"""Helpers to drive the operator from tests, benchmarks and `make up` (like kopf.testing).

`start_operator()` runs `python -m tier0_operator` as a real subprocess (so tests can SIGKILL it),
`pair_manifest()` builds a RegionPair for two local Redis servers, and `Writer` is a client that
writes as fast as it can through "the Service": it resolves the active region from the Service
selector, so it follows the operator exactly like traffic would, and it records every
acknowledged write so a test can prove none was lost.
"""

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tier0_contract import regionpair as rp
from tier0_dev.procs import Process, free_port
from tier0_kube import client as kube_client
from tier0_kube import patches
from tier0_testing import wedge


def start_operator(
    kubeconfig: Path,
    namespace: str,
    log_path: Path,
    *,
    identity: str = "op",
    env: dict[str, str] | None = None,
    wedgeable: bool = False,
) -> tuple[Process, int]:
    """The operator as a subprocess watching `namespace`; returns it and its metrics port.
    `wedgeable`: under `tier0_testing.wedge`, so SIGUSR1 blocks its event loop for real."""
    port = free_port()
    full_env = {
        "KUBECONFIG": str(kubeconfig),
        "TIER0_OPERATOR_METRICS_PORT": str(port),
        "TIER0_OPERATOR_METRICS_HOST": "127.0.0.1",
        "TIER0_OPERATOR_LEASE_NAMESPACE": namespace,
        "TIER0_OPERATOR_LEASE_DURATION_SECONDS": "3",
        "TIER0_OPERATOR_IDENTITY": identity,
        **(env or {}),
    }
    args = ["--namespace", namespace]
    argv = wedge.argv("tier0_operator", *args) if wedgeable else [sys.executable, "-m", "tier0_operator", *args]
    proc = Process(f"operator-{identity}", argv, log_path, env=full_env).start()
    return proc, port


def pair_manifest(
    name: str,
    ports: dict[str, int],
    *,
    active: str = "region1",
    service: str = "region-api",
    interval: float = 0.5,
    threshold: int = 3,
    mode: str = "Automatic",
    paused: bool = False,
    health_urls: dict[str, str] | None = None,
    switchover_timeout: float = 5.0,
    replication: dict[str, Any] | None = None,
    pipeline: dict[str, Any] | None = None,
    services: list[dict[str, Any]] | None = None,
    replication_ports: dict[str, int] | None = None,
    failover: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A RegionPair for local Redis servers on `ports`, built from the contract's model (`services`:
    spec.services instead of the deprecated spec.service; `replication_ports`: where the other
    region replicates from, e.g. a proxy of its own; `failover`: more spec.failover fields)."""
    regions = [
        {
            "name": region,
            "selector": {"app": "region-api", "tier0.dev/region": region},
            "redis": {
                "host": "127.0.0.1",
                "port": port,
                **({"replicationPort": replication_ports[region]} if replication_ports else {}),
            },
            "healthURL": (health_urls or {}).get(region),
        }
        for region, port in ports.items()
    ]
    spec = rp.RegionPairSpec.model_validate(
        {
            **({"services": services} if services else {"service": service}),
            "activeRegion": active,
            "regions": regions,
            "failover": {
                "mode": mode,
                "probeIntervalSeconds": interval,
                "failureThreshold": threshold,
                "switchoverTimeoutSeconds": switchover_timeout,
                **(failover or {}),
            },
            "replication": replication or {},
            "pipeline": pipeline or {},
            "paused": paused,
        }
    )
    return rp.manifest(name, spec)


def service_manifest(
    name: str, region: str = "region1", app: str = "region-api", owner: str | None = "pair"
) -> dict[str, Any]:
    """A Service routed to `region`, annotated as the selector of RegionPair `owner` (None: of no
    pair, so the operator must leave it alone)."""
    metadata: dict[str, Any] = {"name": name}
    if owner is not None:
        metadata["annotations"] = {rp.SELECTOR_OWNER_ANNOTATION: owner}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"selector": {"app": app, "tier0.dev/region": region}, "ports": [{"port": 80}]},
    }


async def get_pair(kube: kube_client.Client, namespace: str, name: str) -> dict[str, Any]:
    return await kube.read_pair(namespace, name)


async def get_status(kube: kube_client.Client, namespace: str, name: str) -> rp.RegionPairStatus:
    """The pair's status through the contract's model (what every reader sees)."""
    return rp.RegionPair.from_object(await get_pair(kube, namespace, name)).status


async def patch_pair(kube: kube_client.Client, namespace: str, name: str, spec: dict[str, Any]) -> None:
    """A merge patch of the pair's spec, as a person or GitOps tool edits it (the product writes a
    pair only through the client's intents: `request_region`, `set_paused`, `annotate_pair`)."""
    await kube.custom.patch_namespaced_custom_object(
        rp.GROUP, rp.VERSION, namespace, rp.PLURAL, name, {"spec": spec}, _content_type=patches.MERGE_PATCH
    )


async def service_region(kube: kube_client.Client, namespace: str, service: str) -> str | None:
    return ((await kube.service_selector(namespace, service)) or {}).get("tier0.dev/region")


async def list_events(kube: kube_client.Client, namespace: str, reason: str | None = None) -> list[dict[str, Any]]:
    """Events in `namespace` (as JSON), optionally only those with `reason`."""
    return [e for e in await kube.list_events(namespace) if reason is None or e.get("reason") == reason]


async def wait_for(what: str, check: Any, timeout: float = 20.0, every: float = 0.02) -> Any:
    """Poll async `check()` until it returns a truthy value; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Writer:
    """SADD unique ids as fast as possible to whichever Redis the Service routes to."""

    kube: kube_client.Client
    namespace: str
    service: str
    ports: dict[str, int]
    key: str = "writer:acked"
    acked: list[int] = field(default_factory=list)
    errors: int = 0
    first_ack_after: dict[str, float] = field(default_factory=dict)  # region -> monotonic time
    _stop: bool = False

    async def run(self) -> None:
        seq = 0
        clients = {
            r: aioredis.Redis(port=p, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
            for r, p in self.ports.items()
        }
        region = await service_region(self.kube, self.namespace, self.service)
        try:
            while not self._stop:
                if region not in clients:
                    await asyncio.sleep(0.005)
                    region = await service_region(self.kube, self.namespace, self.service)
                    continue
                seq += 1
                try:
                    await clients[region].sadd(self.key, seq)  # type: ignore[misc]
                except (RedisError, OSError):
                    self.errors += 1  # not acknowledged: READONLY after a demotion, or a dead server
                    await asyncio.sleep(0.005)  # like a real client's retry delay; spares the apiserver
                    region = await service_region(self.kube, self.namespace, self.service)
                    continue
                self.acked.append(seq)
                self.first_ack_after.setdefault(region, time.monotonic())
        finally:
            for c in clients.values():
                await c.aclose()

    def stop(self) -> None:
        self._stop = True


async def missing_writes(port: int, acked: list[int], key: str = "writer:acked") -> int:
    """How many acknowledged ids the Redis at `port` does not have."""
    client = aioredis.Redis(port=port, decode_responses=True)
    try:
        present = {int(x) for x in await client.smembers(key)}  # type: ignore[misc]
    finally:
        await client.aclose()
    return len(set(acked) - present)


async def kube_for(kubeconfig: Path) -> kube_client.Client:
    return await kube_client.connect(kubeconfig)


def run_kubectl(kubectl: list[str], *args: str, stdin: str | None = None, check: bool = True) -> str:
    import subprocess

    res = subprocess.run([*kubectl, *args], input=stdin, capture_output=True, text=True, timeout=60)
    for _ in range(20):
        # `kubectl wait --for=condition=...` on an object created an instant ago, whose status has no
        # conditions yet, fails at once ("accessor error: <nil>") instead of waiting: ask again.
        if res.returncode == 0 or args[:1] != ("wait",) or "accessor error" not in res.stderr:
            break
        time.sleep(0.25)
        res = subprocess.run([*kubectl, *args], input=stdin, capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr}")
    return res.stdout + res.stderr


def apply(kubectl: list[str], namespace: str, manifest: dict[str, Any], check: bool = True) -> str:
    import json

    return run_kubectl(kubectl, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(manifest), check=check)
