"""`make bench BENCH=flood`: a bounded flood of unauthenticated requests against the region API
(issue 17), with health, memory and the operator watched throughout.

BENCH_FLOOD_REQUESTS requests (default 100,000) from one client without a token, over
BENCH_FLOOD_CONNECTIONS keep-alive connections (default 64): most are GETs of random 8 KB paths
that no route serves, every BENCH_FLOOD_AI_EVERY-th (default 10) alternates between an image search
and a diagnostics question. Measured:

- both regions' Redis `used_memory` before and after, beside their `maxmemory`;
- the answers by status code (429s expected: admission);
- `/health` latency, one fresh connection every 20 ms as the operator probes it, idle for a few
  seconds first (the reference, same run) and then during the flood;
- transitions during the flood (RegionPair `status.epoch` and `lastTransition`): the target is 0,
  i.e. the flood never makes the operator fail the active region over.

The flood runs in a process of its own (this file with `--flood`) and the prober in this one, so
neither's event loop measures the other's.

Where (BENCH_FLOOD_TARGET):
- `local` (default): the process-stack setup the other benches use, on free loopback ports: two
  redis-servers replicating (maxmemory, the pair's write guard), both region APIs with the sample
  data loaded (as `make up`), and the real operator watching a RegionPair on a real
  kube-apiserver + etcd (healthURL: each API's /health, 3 probes of 1 s). The flood goes to the
  active region's API.
- `cluster`: tier0 deployed on the e2e tier's cluster (the built-in node, or TIER0_E2E_KUBECONFIG;
  installed as `bench_cluster` does); the flood goes from this machine to the global Service's
  ClusterIP (kube-proxy routes it), Redis figures come from `redis-cli` in each Redis pod.
"""

import asyncio
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis
from table import Table

from tier0_checker import launch
from tier0_checker import world as checker_world
from tier0_dev import controlplane, programs
from tier0_dev.procs import Process, free_port

REQUESTS = int(os.environ.get("BENCH_FLOOD_REQUESTS", "100000"))
CONNECTIONS = int(os.environ.get("BENCH_FLOOD_CONNECTIONS", "64"))
AI_EVERY = int(os.environ.get("BENCH_FLOOD_AI_EVERY", "10"))
TARGET = os.environ.get("BENCH_FLOOD_TARGET", "local")
PROBE_EVERY = 0.02
IDLE_SECONDS = 5.0
PROBE_TIMEOUT = 0.8
"""The operator's probe timeout: a /health slower than this counts as a failed probe."""
PATH_BYTES = 8192
AI_REQUESTS = (
    ("/api/images/search", {"query": "workers without hard hats", "top_k": 3}),
    ("/api/diagnostics/query", {"question": "Give me the most frequent IP devices generating error 400"}),
)


# --- the flood (its own process) ------------------------------------------------------------------


def flood_requests(n: int, seed: int, host: str) -> Iterator[bytes]:
    """The flood's raw HTTP/1.1 requests: random 8 KB paths, every AI_EVERY-th an AI request."""
    rng = random.Random(seed)
    for i in range(n):
        if AI_EVERY and i % AI_EVERY == AI_EVERY - 1:
            path, body = AI_REQUESTS[(i // AI_EVERY) % len(AI_REQUESTS)]
            data = json.dumps(body).encode()
            head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            yield f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data
        else:
            path = "/" + rng.randbytes(PATH_BYTES // 2).hex()[: PATH_BYTES - 1]
            yield f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def _flood(host: str, port: int, n: int, connections: int) -> dict[str, int]:
    statuses: Counter[str] = Counter()
    requests = flood_requests(n, seed=17, host=host)

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        for request in requests:  # shared iterator: each request is sent once, by some connection
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12].decode()
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                statuses[status] += 1
                if re.search(rb"(?i)\r\nconnection:\s*close", head):
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                statuses[f"error ({type(exc).__name__})"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return dict(statuses)


def flood_main(host: str, port: str, n: str, connections: str) -> None:
    """`python bench_flood.py --flood HOST PORT N CONNECTIONS`: the flood, its answers as JSON."""
    started = time.monotonic()
    statuses = asyncio.run(_flood(host, int(port), int(n), int(connections)))
    print(json.dumps({"statuses": statuses, "seconds": time.monotonic() - started}), flush=True)


def start_flood(host: str, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    argv = [sys.executable, __file__, "--flood", host, str(port), str(REQUESTS), str(CONNECTIONS)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)


# --- the prober (this process) ----------------------------------------------------------------------


@dataclass
class Probes:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    """Probes that failed or took longer than the operator's probe timeout."""


def probe_once(host: str, port: int, path: str = "/health") -> float | None:
    """One GET on a fresh connection, as the operator's health probe does; seconds, None on failure."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            return None
    except OSError:
        return None
    finally:
        conn.close()
    return time.perf_counter() - started


def probe_until(host: str, port: int, done: Callable[[], bool]) -> Probes:
    probes = Probes()
    while not done():
        began = time.monotonic()
        took = probe_once(host, port)
        if took is None or took > PROBE_TIMEOUT:
            probes.failures += 1
        if took is not None:
            probes.latencies.append(took)
        time.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - began)))
    return probes


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q / 100 * len(ordered) + 0.5) - 1))]


# --- where the flood goes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisMemory:
    used: int
    maxmemory: int


@dataclass(frozen=True)
class Pair:
    epoch: int
    active: str
    phase: str
    last_transition: str


class Target:
    host: str
    port: int

    def memory(self) -> dict[str, RedisMemory]:
        raise NotImplementedError

    def pair(self) -> Pair:
        raise NotImplementedError


def parse_info(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def pair_of(obj: dict[str, Any]) -> Pair:
    status = obj.get("status") or {}
    last = status.get("lastTransition") or {}
    moved = f"{last.get('type')} {last.get('fromRegion')}->{last.get('toRegion')}" if last else "none"
    return Pair(
        epoch=int(status.get("epoch") or 0),
        active=str(status.get("activeRegion")),
        phase=str(status.get("phase")),
        last_transition=f"{moved} at {last.get('completedAt')}" if last else moved,
    )


class Local(Target):
    """Two redis-servers, both region APIs (sample data loaded), the operator on kube-apiserver."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.procs: list[Process] = []
        self.redis_ports = {r: free_port() for r in checker_world.REGIONS}
        self.api_ports = {r: free_port() for r in checker_world.REGIONS}

    def start(self) -> None:
        cp = controlplane.start(self.state / "controlplane")
        self.procs += cp.processes
        self.kube = checker_world.Kube(cp)
        for region, port in self.redis_ports.items():
            self.procs.append(
                programs.redis(port, self.state / f"redis-{region}", persistent=True, extra=programs.PAIR_WRITE_GUARD)
            )
        checker_world.apply_crd(self.kube)
        self.kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": checker_world.NS}})
        service = {
            "metadata": {"name": checker_world.SERVICE},
            "spec": {"selector": {"app": "region-api", "tier0.dev/region": "region1"}, "ports": [{"port": 80}]},
        }
        self.kube.call("POST", f"/api/v1/namespaces/{checker_world.NS}/services", service)
        env = {"TIER0_AI_LOAD_SAMPLES": "true", "TIER0_AI_PROVIDER": "local", "HF_HUB_OFFLINE": "1"}
        for region in checker_world.REGIONS:
            log = self.state / f"api-{region}.log"
            self.procs.append(launch.region_api(region, self.api_ports[region], self.redis_ports[region], log, env))
        self.procs.append(
            launch.operator(self.kube.cp.kubeconfig, checker_world.NS, self.state / "operator.log", "flood")
        )
        ports = self.redis_ports
        manifest = checker_world.pair_manifest(ports, ports, self.api_ports, interval=1.0, threshold=3)
        self.kube.call("POST", f"{checker_world.GROUP_PATH}/namespaces/{checker_world.NS}/regionpairs", manifest)
        checker_world.wait_healthy_sync(self.kube, "region1", timeout=90)
        self.host, self.port = "127.0.0.1", self.api_ports["region1"]
        self._wait_samples()

    def _wait_samples(self, timeout: float = 180) -> None:
        """Until the active region's API has the sample access log (its AI endpoints answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            try:
                conn.request("GET", "/api/diagnostics/logs/stats")
                stats = json.loads(conn.getresponse().read())
                if stats.get("total_entries", 0) >= 12_000:
                    return
            except (OSError, ValueError):
                pass
            finally:
                conn.close()
            time.sleep(1.0)
        raise RuntimeError(f"the sample data was not loaded after {timeout:.0f} s (see {self.state}/api-region1.log)")

    def memory(self) -> dict[str, RedisMemory]:
        out = {}
        for region, port in self.redis_ports.items():
            client = redis.Redis(port=port)
            try:
                info = cast(dict[str, Any], client.info("memory"))
                out[region] = RedisMemory(int(info["used_memory"]), int(info["maxmemory"]))
            finally:
                client.close()
        return out

    def pair(self) -> Pair:
        return pair_of(
            self.kube.call(
                "GET", f"{checker_world.GROUP_PATH}/namespaces/{checker_world.NS}/regionpairs/{checker_world.PAIR}"
            )
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=10)


class OnCluster(Target):
    """tier0 on the e2e tier's cluster; the flood to the global Service's ClusterIP."""

    def __init__(self) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))
        import kit

        from tier0_dev.node import deploy

        self.kubeconfig, self.started = kit.started_kubeconfig()
        self.c = kit.Cluster(self.kubeconfig)
        deploy.install(self.c.rel)
        self.c.healthy()
        svc = self.c.json("-n", self.c.ns, "get", "service", self.c.rel.global_service)
        spec = svc["spec"]
        assert isinstance(spec, dict)
        self.host, self.port = str(spec["clusterIP"]), int(spec["ports"][0]["port"])

    def memory(self) -> dict[str, RedisMemory]:
        # As the applications' Redis user, from a region API pod (its password is a mounted file
        # there; the Redis container's default user may only PING).
        script = (
            "import sys, redis\n"
            "password = open('/var/run/secrets/tier0/redis/app-password').read()\n"
            "r = redis.Redis(host=sys.argv[1], port=6379, username='tier0-app', password=password)\n"
            "m = r.info('memory')\n"
            "print(m['used_memory'], m['maxmemory'])\n"
        )
        out = {}
        for region in ("region1", "region2"):
            host = f"{self.c.rel.name}-redis-{region}"
            pod = f"deploy/{self.c.rel.name}-region-api-{region}"
            used, limit = self.c.kubectl("-n", self.c.ns, "exec", pod, "--", "python", "-c", script, host).split()
            out[region] = RedisMemory(int(used), int(limit))
        return out

    def pair(self) -> Pair:
        return pair_of(self.c.pair())

    def stop(self) -> None:
        if self.started:
            from tier0_dev.node import cluster
            from tier0_dev.node.layout import Layout

            cluster.down(Layout.default())


@contextmanager
def target() -> Iterator[Target]:
    if TARGET == "cluster":
        remote = OnCluster()
        try:
            yield remote
        finally:
            remote.stop()
        return
    if TARGET != "local":
        raise SystemExit(f"BENCH_FLOOD_TARGET={TARGET!r}: local or cluster")
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        local = Local(Path(tmp))
        try:
            local.start()
            yield local
        finally:
            local.stop()


# --- the run ----------------------------------------------------------------------------------------


def mb(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    print(f"load average before: {os.getloadavg()}", flush=True)
    with target() as t:
        before_pair, before_memory = t.pair(), t.memory()
        deadline = time.monotonic() + IDLE_SECONDS
        idle = probe_until(t.host, t.port, lambda: time.monotonic() > deadline)

        flood = start_flood(t.host, t.port)
        during = probe_until(t.host, t.port, lambda: flood.poll() is not None)
        out, _ = flood.communicate(timeout=60)
        if flood.returncode != 0:
            raise RuntimeError(f"the flood process failed ({flood.returncode}): {out}")
        result = json.loads(out.strip().splitlines()[-1])
        statuses, elapsed = result["statuses"], result["seconds"]
        time.sleep(2.0)  # the access-log recorder's flush and replication
        after_pair, after_memory = t.pair(), t.memory()

    print(f"load average after: {os.getloadavg()}", flush=True)
    answered = sum(statuses.values())
    memory = Table(
        f"Redis memory: {REQUESTS:,} unauthenticated requests in {elapsed:.1f} s ({answered / elapsed:,.0f} req/s), "
        f"{TARGET}",
        ["redis", "used before", "used after", "growth", "maxmemory", "target"],
    )
    within = True
    for region in before_memory:
        b, a = before_memory[region], after_memory[region]
        ok = a.maxmemory > 0 and a.used < a.maxmemory
        within &= ok
        memory.add(
            region,
            mb(b.used),
            mb(a.used),
            mb(a.used - b.used),
            mb(a.maxmemory),
            "within maxmemory" if ok else "EXCEEDED",
        )
    memory.print()

    answers = Table("Answers by status code", ["status", "count", "share", "target"])
    for status, n in sorted(statuses.items()):
        note = "admission refused (Retry-After)" if status == "429" else ""
        answers.add(status, n, f"{100 * n / answered:.1f}%", note)
    answers.add("all", answered, "100.0%", f"{REQUESTS:,} sent")
    answers.print()

    health = Table(
        f"/health (fresh connection every {PROBE_EVERY * 1000:.0f} ms, as the operator probes it)",
        ["when", "probes", "p50", "p99", "max", f"failed or > {PROBE_TIMEOUT} s", "target"],
    )
    for name, probes in (("idle (reference)", idle), ("during the flood", during)):
        lat = probes.latencies
        target_text = "" if name.startswith("idle") else f"p99 < {PROBE_TIMEOUT} s, 0 failed"
        health.add(
            name,
            len(lat),
            ms(pct(lat, 50)),
            ms(pct(lat, 99)),
            ms(max(lat, default=float("nan"))),
            probes.failures,
            target_text,
        )
    health.print()

    transitions = after_pair.epoch - before_pair.epoch
    pair = Table("RegionPair across the flood", ["", "before", "after", "target"])
    pair.add("active region", before_pair.active, after_pair.active, "unchanged")
    pair.add("phase", before_pair.phase, after_pair.phase, "Healthy")
    pair.add("epoch", before_pair.epoch, after_pair.epoch, "unchanged")
    pair.add("transitions / failovers during the flood", "", transitions, "0")
    pair.add("last transition", before_pair.last_transition, after_pair.last_transition, "")
    pair.print()

    refused = statuses.get("429", 0)
    server_errors = sum(n for s, n in statuses.items() if not s[:1].isdigit() or s.startswith("5"))
    failed = [
        ("a Redis beyond its maxmemory", not within),
        ("no 429", refused == 0),
        ("a transition during the flood", transitions != 0 or after_pair.active != before_pair.active),
        ("failed /health probes", during.failures > 0),
        ("5xx answers or connection errors", server_errors > 0),
    ]
    for what, bad in failed:
        if bad:
            print(f"CHECK FAILED: {what}", flush=True)
    return 1 if any(bad for _, bad in failed) else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        flood_main(*sys.argv[2:6])
    else:
        sys.exit(main())
