"""How the checker starts tier0's own programs. The command lines follow the branch's code (the
same flags and variables the local stack and the charts use), so the checker measures whatever
ingest worker, activity consumer, region API and operator are checked out."""

import json
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tier0_dev import procs, programs
from tier0_dev.procs import Process, free_port

PY = sys.executable


def _metric_line(port: int, prefix: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.5) as r:
                return any(row.startswith(prefix) for row in r.read().decode().splitlines())
        except OSError:
            return False

    return check


def _peers(region: str, redis_ports: dict[str, int]) -> str:
    """TIER0_PEER_REDIS_URLS: the other region(s)' Redis, as JSON (pydantic-settings lists)."""
    return json.dumps([f"redis://127.0.0.1:{p}/0" for r, p in redis_ports.items() if r != region])


def ingest_worker(region: str, redis_ports: dict[str, int], mqtt_port: int, log: Path) -> Process:
    """One region's ingest worker: one share group for both regions, connected to both regions'
    Redis, writing to the current primary (the `role:master` with the highest pair epoch)."""
    metrics = free_port()
    env = {
        "TIER0_REGION": region,
        "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_ports[region]}/0",
        "TIER0_PEER_REDIS_URLS": _peers(region, redis_ports),
        "TIER0_MQTT_PORT": str(mqtt_port),
        "TIER0_METRICS_PORT": str(metrics),
        "TIER0_CLIENT_ID": f"checker-ingest-{region}",
    }
    proc = Process(f"ingest-{region}", [PY, "-m", "tier0_services.ingest"], log, env=env).start()
    return proc.wait_ready(_metric_line(metrics, "tier0_ingest_mqtt_connected 1"), timeout=30)


def activity_consumers(
    redis_ports: dict[str, int], amqp_port: int, state: Path, secrets: programs.Secrets
) -> list[Process]:
    """One activity consumer per region, competing on the queue, each writing to the current primary."""
    procs = []
    for region, port in redis_ports.items():
        metrics = free_port()
        env = {
            "TIER0_REGION": region,
            **secrets.amqp_env(amqp_port),
            "TIER0_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "TIER0_PEER_REDIS_URLS": _peers(region, redis_ports),
            "TIER0_METRICS_PORT": str(metrics),
            "TIER0_CLIENT_ID": f"checker-activity-{region}",
        }
        log = state / f"activity-{region}.log"
        proc = Process(f"activity-{region}", [PY, "-m", "tier0_services.activity"], log, env=env).start()
        procs.append(proc.wait_ready(_metric_line(metrics, "tier0_activity_broker_connected 1"), timeout=30))
    return procs


def region_api(region: str, port: int, redis_port: int, log: Path, extra_env: dict[str, str] | None = None) -> Process:
    env = {"TIER0_REGION": region, "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", **(extra_env or {})}
    proc = Process(f"api-{region}", [PY, "-m", "tier0_services.api", "--port", str(port)], log, env=env).start()
    return proc.wait_ready(procs.http_ok(f"http://127.0.0.1:{port}/health"), timeout=60)


def operator(kubeconfig: Path, namespace: str, log: Path, identity: str) -> Process:
    """The RegionPair operator watching `namespace` (a short lease, so a replacement takes over
    within seconds of a kill -9)."""
    env = {
        "KUBECONFIG": str(kubeconfig),
        "TIER0_OPERATOR_METRICS_PORT": str(free_port()),
        "TIER0_OPERATOR_METRICS_HOST": "127.0.0.1",
        "TIER0_OPERATOR_LEASE_NAMESPACE": namespace,
        "TIER0_OPERATOR_LEASE_DURATION_SECONDS": "3",
        "TIER0_OPERATOR_IDENTITY": identity,
    }
    argv = [PY, "-m", "tier0_operator", "--namespace", namespace]
    return Process(f"operator-{identity}", argv, log, env=env).start()
