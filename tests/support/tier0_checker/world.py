"""The tier0 side of the checker: every program on free loopback ports.

A real kube-apiserver + etcd with the RegionPair CRD, two redis-servers, the operator, Mosquitto,
RabbitMQ, one ingest worker and region API per region, the activity consumer, and toxiproxy. The
RegionPair names each Redis by two toxiproxy addresses, one for the operator's probes and commands
(`redis-<region>`) and one for the replication link from the other region (`repl-<region>`,
`replicationPort`), so a partition can cut either or both; the region's own workers and API reach
their Redis directly, as pods in the same region would.
"""

import asyncio
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tier0_checker import launch, toxiproxy
from tier0_dev import controlplane, programs
from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import ROOT, Process, free_port, port_open

NS = "checker"
PAIR = "pair"
SERVICE = "region-api"
REGIONS = ("region1", "region2")
GROUP_PATH = "/apis/tier0.dev/v1alpha1"


def other(region: str) -> str:
    return REGIONS[1] if region == REGIONS[0] else REGIONS[0]


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Kube:
    """Just enough of the apiserver's REST API for the checker (fast enough to poll every few ms)."""

    cp: ControlPlane

    def __post_init__(self) -> None:
        self._ctx = ssl.create_default_context(cafile=str(self.cp.state_dir / "pki" / "ca.crt"))

    def call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.cp.token}", "Content-Type": content_type}
        req = urllib.request.Request(f"{self.cp.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5, context=self._ctx) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 409 and method == "POST":
                return None  # already exists
            raise

    async def acall(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        return await asyncio.to_thread(self.call, method, path, body, content_type)

    async def pair(self) -> dict[str, Any]:
        body: dict[str, Any] = await self.acall("GET", f"{GROUP_PATH}/namespaces/{NS}/regionpairs/{PAIR}")
        return body

    async def patch_pair(self, spec: dict[str, Any]) -> None:
        await self.acall(
            "PATCH", f"{GROUP_PATH}/namespaces/{NS}/regionpairs/{PAIR}", {"spec": spec}, "application/merge-patch+json"
        )

    async def service_region(self) -> str | None:
        body = await self.acall("GET", f"/api/v1/namespaces/{NS}/services/{SERVICE}")
        region = ((body or {}).get("spec", {}).get("selector") or {}).get("tier0.dev/region")
        return str(region) if region else None


def pair_manifest(
    pair_ports: dict[str, int], repl_ports: dict[str, int], api_ports: dict[str, int], interval: float, threshold: int
) -> Any:
    regions = [
        {
            "name": r,
            "selector": {"app": "region-api", "tier0.dev/region": r},
            "redis": {"host": "127.0.0.1", "port": pair_ports[r], "replicationPort": repl_ports[r]},
            "healthURL": f"http://127.0.0.1:{api_ports[r]}/health",
        }
        for r in REGIONS
    ]
    return {
        "apiVersion": "tier0.dev/v1alpha1",
        "kind": "RegionPair",
        "metadata": {"name": PAIR, "namespace": NS},
        "spec": {
            "service": SERVICE,
            "activeRegion": "region1",
            "regions": regions,
            "failover": {"mode": "Automatic", "probeIntervalSeconds": interval, "failureThreshold": threshold},
        },
    }


@dataclass
class World:
    state: Path
    kube: Kube
    toxi: toxiproxy.Toxiproxy
    interval: float
    threshold: int
    redis_ports: dict[str, int] = field(default_factory=dict)
    pair_ports: dict[str, int] = field(default_factory=dict)
    repl_ports: dict[str, int] = field(default_factory=dict)
    api_ports: dict[str, int] = field(default_factory=dict)
    mqtt_port: int = 0
    amqp_port: int = 0
    secrets: programs.Secrets | None = None
    """Credentials of RabbitMQ (the chart's users and vhost). The checker's MQTT broker is the open
    one (no secrets): it measures transitions, and reads the broker's $SYS store count in the soak."""
    redis: dict[str, Process] = field(default_factory=dict)
    workers: dict[str, Process] = field(default_factory=dict)
    apis: dict[str, Process] = field(default_factory=dict)
    activity: list[Process] = field(default_factory=list)
    broker: Process | None = None
    operator: Process | None = None
    others: list[Process] = field(default_factory=list)
    operators_started: int = 0

    @property
    def budget(self) -> float:
        """tier0's failure detection budget: probe interval x failure threshold."""
        return self.interval * self.threshold

    def start_redis(self, region: str) -> None:
        """A pair member as the local stack and the chart run it (AOF, the write guard)."""
        self.redis[region] = programs.redis(
            self.redis_ports[region], self.state / f"redis-{region}", persistent=True, extra=programs.PAIR_WRITE_GUARD
        )

    def start_broker(self) -> None:
        self.broker = programs.mosquitto(self.mqtt_port, self.state / "mosquitto")

    def start_worker(self, region: str) -> None:
        log = self.state / f"ingest-{region}.log"
        self.workers[region] = launch.ingest_worker(region, self.redis_ports, self.mqtt_port, log)

    def start_operator(self) -> None:
        self.operators_started += 1
        n = self.operators_started
        self.operator = launch.operator(self.cp.kubeconfig, NS, self.state / f"operator-{n}.log", f"checker-{n}")

    @property
    def cp(self) -> ControlPlane:
        return self.kube.cp

    def stop(self) -> None:
        procs = [
            *self.activity,
            *self.workers.values(),
            *self.apis.values(),
            self.operator,
            self.broker,
            *self.redis.values(),
            *self.others,
            self.toxi.process,
        ]
        for proc in procs:
            if proc is not None:
                proc.stop(timeout=5)


def apply_crd(kube: Kube) -> None:
    """The RegionPair CRD from crds/, applied and Established."""
    import yaml

    crd = yaml.safe_load((ROOT / "crds" / "regionpairs.tier0.dev.yaml").read_text())
    kube.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = kube.call("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")
        conditions = {c["type"]: c["status"] for c in (body.get("status") or {}).get("conditions") or []}
        if conditions.get("Established") == "True":
            return
        time.sleep(0.1)
    raise RuntimeError("RegionPair CRD not Established after 30 s")


def start(
    state: Path,
    interval: float,
    threshold: int,
    cp: ControlPlane | None = None,
    amqp_port: int | None = None,
    secrets: programs.Secrets | None = None,
) -> World:
    """Start everything; `cp` / `amqp_port` (with the `secrets` it was started with) reuse a running
    control plane / RabbitMQ (tests)."""
    state.mkdir(parents=True, exist_ok=True)
    secrets = secrets or programs.Secrets.generate(state / "secrets")
    own: list[Process] = []
    if cp is None:
        cp = controlplane.start(state / "controlplane")
        own += cp.processes
    kube = Kube(cp)
    world = World(state, kube, toxiproxy.start(state), interval, threshold, others=own, secrets=secrets)
    try:
        apply_crd(kube)
        kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        kube.call(
            "POST",
            f"/api/v1/namespaces/{NS}/services",
            {
                "metadata": {"name": SERVICE, "annotations": {"tier0.dev/selector-owner": PAIR}},
                "spec": {"selector": {"app": "region-api", "tier0.dev/region": "region1"}, "ports": [{"port": 80}]},
            },
        )
        for r in REGIONS:
            world.redis_ports[r] = free_port()
            world.api_ports[r] = free_port()
            world.start_redis(r)
            world.pair_ports[r] = world.toxi.proxy(f"redis-{r}", world.redis_ports[r])
            world.repl_ports[r] = world.toxi.proxy(f"repl-{r}", world.redis_ports[r])
        world.mqtt_port = free_port()
        world.start_broker()
        if amqp_port is None:
            ports = programs.RabbitPorts(free_port(), free_port())
            world.others.append(programs.rabbitmq(ports, state / "rabbitmq", secrets))
            amqp_port = ports.amqp
        world.amqp_port = amqp_port
        for r in REGIONS:
            world.apis[r] = launch.region_api(r, world.api_ports[r], world.redis_ports[r], state / f"api-{r}.log")
        world.start_operator()
        manifest = pair_manifest(world.pair_ports, world.repl_ports, world.api_ports, interval, threshold)
        kube.call("POST", f"{GROUP_PATH}/namespaces/{NS}/regionpairs", manifest)
        wait_healthy_sync(kube, "region1", timeout=60)
        for r in REGIONS:
            world.start_worker(r)
        world.activity = launch.activity_consumers(world.redis_ports, amqp_port, state, secrets)
    except BaseException:
        world.stop()
        raise
    return world


def healthy_on(pair: dict[str, Any], region: str) -> bool:
    st = pair.get("status") or {}
    regions = st.get("regions") or []
    both_up = len(regions) == 2 and all(r.get("healthy") for r in regions)
    return bool(st.get("phase") == "Healthy" and st.get("activeRegion") == region and both_up)


def wait_healthy_sync(kube: Kube, region: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pair: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pair = kube.call("GET", f"{GROUP_PATH}/namespaces/{NS}/regionpairs/{PAIR}")
        if healthy_on(pair, region):
            return
        time.sleep(0.1)
    raise RuntimeError(f"RegionPair not Healthy on {region} after {timeout:.0f} s: {pair.get('status')}")


def redis_alive(world: World, region: str) -> bool:
    return port_open(world.redis_ports[region])
