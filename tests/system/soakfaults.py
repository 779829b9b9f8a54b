"""The node soak's faults (`make bench BENCH=nodesoak`, issue 20): what the operator must ride out on
a real cluster without failing over, and what it did meanwhile. Like `regionfaults`, each fault is
applied on entry and ALWAYS taken back on exit (in `finally`, and at interpreter exit should the
process die inside it): a qdisc or a rule left behind would slow or cut the next run's pair.

- The link between the operator's pods and the active region's Redis pod, and only that link (the
  standby's replication link and the kubelet's probes pass untouched):
  - latency and jitter, 250 +- 250 ms on what the operator sends that Redis: `tc netem` on the host
    side of the Redis pod's veth (found from the pod's netns: the peer ifindex of its eth0) as the
    leaf of an HTB root, with a u32 filter per operator pod IP sending only their packets to it. A
    kernel without sch_netem refuses the leaf; the root goes again and `Link.latency_note` carries
    tc's own answer, which the bench prints instead of a latency;
  - 5 % packet loss each way: iptables `statistic --mode random` DROP rules in a chain hooked into
    FORWARD (pod-to-pod traffic on the node's bridge passes it, as for `regionfaults`' partition),
    each behind a rule that only counts, so the loss is read from the counters, not assumed. Loss is
    made with iptables on every kernel, netem or not: the same fault, measured the same way.
- A pod deleted (gracefully, as a rollout would) and waited for until its replacement is Ready: the
  standby Redis, the active region's EMQX (MQTT) and RabbitMQ.
- Load on the active region's API, two kinds at once: the console's Simulate High Traffic burst
  (`POST /api/console/traffic` with the chart's API token: up to 5,000 real reads in the API
  process, 32 at a time, on the event loop that answers /health; admission neither counts nor
  refuses them), and wrk (closed loop, `LOAD_CONNECTIONS`) on its Service from the node, most of
  which the per-client rate limit answers 429 (one client address). `HealthTimer` times /health
  through the same Service for the whole soak, each sample tagged with the window it fell in.
- `StatusWatch`: every status the operator writes (`kubectl get --watch`), tallied (`Tally`): the
  active region's failed probes and their longest streak (`consecutiveFailures` counts a probe that
  failed on Redis or on /health), epochs and transitions.
"""

import atexit
import base64
import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kit
import regionfaults

from tier0_contract import regionpair as rp
from tier0_dev.node import layout
from tier0_dev.node.layout import Layout
from tier0_dev.procs import find_program
from tier0_services.api.console import models as console

CHAIN = "TIER0-NODESOAK"
"""The loss rules' iptables chain (node-down removes every TIER0-* chain too)."""
LATENCY_MS, JITTER_MS = 250, 250
LOSS = 0.05
LOAD_CONNECTIONS = 32
"""wrk's connections: below the API's maxConcurrentRequests (128), so the load is served, not refused."""
HEALTH_TIMEOUT = 2.0
PROBE_TIMEOUT = 0.8
"""The operator's probe timeout at a 1 s interval (0.8 x the interval): a /health slower than this fails it."""
NETEM_PARENT = "1:2"


def redis_selector(region: str) -> str:
    return f"app.kubernetes.io/component=redis,{regionfaults.REGION_LABEL}={region}"


def broker_selector(component: str, region: str) -> str:
    """EMQX (`emqx`) or RabbitMQ (`rabbitmq`) of `region` (brokers.perRegion)."""
    return f"app.kubernetes.io/component={component},{regionfaults.REGION_LABEL}={region}"


# -- pure parts --------------------------------------------------------------------------------------


def loss_rules(operators: list[str], redis: str, loss: float, chain: str = CHAIN) -> list[list[str]]:
    """Both directions between each operator pod and the Redis pod: a rule that only counts the
    packet, then one that drops it with probability `loss`."""
    rules = []
    for op in operators:
        for src, dst in ((op, redis), (redis, op)):
            match = ["-s", f"{src}/32", "-d", f"{dst}/32"]
            rules.append(["-A", chain, *match])
            drop = ["-m", "statistic", "--mode", "random", "--probability", f"{loss}", "-j", "DROP"]
            rules.append(["-A", chain, *match, *drop])
    return rules


def loss_restore(operators: list[str], redis: str, loss: float, chain: str = CHAIN) -> str:
    """`iptables-restore --noflush` input: the chain, its rules, its jump at the top of FORWARD."""
    lines = ["*filter", f":{chain} - [0:0]"]
    lines += [" ".join(rule) for rule in loss_rules(operators, redis, loss, chain)]
    lines.append(f"-I FORWARD 1 -j {chain}")
    return "\n".join([*lines, "COMMIT", ""])


def loss_counters(saved: str, chain: str = CHAIN) -> tuple[int, int]:
    """(packets on the link, packets dropped) from `iptables-save -c` of the filter table."""
    packets = dropped = 0
    for line in saved.splitlines():
        m = re.match(rf"\[(\d+):\d+\] -A {re.escape(chain)} (.*)$", line)
        if m is None:
            continue
        if "-j DROP" in m.group(2):
            dropped += int(m.group(1))
        else:
            packets += int(m.group(1))
    return packets, dropped


def netem_commands(dev: str, operators: list[str], latency_ms: int, jitter_ms: int) -> list[list[str]]:
    """tc arguments, in order: an HTB root whose default class passes everything as before, a second
    class with netem as its leaf, and a u32 filter per operator pod IP into that class (so only what
    the operator sends the Redis waits; netem's jitter is uniform, latency +- jitter)."""
    root = ["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1"]
    classes = [
        ["class", "add", "dev", dev, "parent", "1:", "classid", c, "htb", "rate", "10gbit", "quantum", "1514"]
        for c in ("1:1", NETEM_PARENT)
    ]
    leaf = ["qdisc", "add", "dev", dev, "parent", NETEM_PARENT, "handle", "20:", "netem"]
    leaf += ["delay", f"{latency_ms}ms", f"{jitter_ms}ms"]
    filters = [
        ["filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32"]
        + ["match", "ip", "src", f"{ip}/32", "flowid", NETEM_PARENT]
        for ip in operators
    ]
    return [root, *classes, leaf, *filters]


def netns_of(inspect: dict[str, Any]) -> str:
    """The network namespace of a pod sandbox from `crictl inspectp`: its path in the runtime spec,
    else its process's."""
    info = inspect.get("info") or {}
    for ns in ((info.get("runtimeSpec") or {}).get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == "network" and ns.get("path"):
            return str(ns["path"])
    if info.get("pid"):
        return f"/proc/{int(info['pid'])}/ns/net"
    raise LookupError("crictl inspectp names no network namespace for the pod")


def peer_index(links: list[dict[str, Any]]) -> int:
    """ifindex of the host side of a pod's eth0, from `ip -j link show eth0` inside the pod's netns."""
    link = links[0] if links else {}
    if "link_index" in link:  # the peer is in another netns that this one has an id for
        return int(link["link_index"])
    m = re.fullmatch(r"if(\d+)", str(link.get("link", "")))  # without the id: `eth0@if12` as a name
    if m is None:
        raise LookupError(f"the pod's eth0 has no peer: {links}")
    return int(m.group(1))


def host_link(links: list[dict[str, Any]], index: int, bridge: str) -> str:
    """Name of the host's link `index` (`ip -j link show`), which must be a port of `bridge`."""
    for link in links:
        if link.get("ifindex") == index:
            if link.get("master") != bridge:
                raise LookupError(f"{link.get('ifname')} (ifindex {index}) is not on {bridge}")
            return str(link["ifname"])
    raise LookupError(f"no host link has ifindex {index}")


@dataclass(frozen=True)
class Load:
    """What wrk reported."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_wrk(out: str) -> Load:
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", out)
    if m is None:
        raise ValueError(f"no request count in wrk's output: {out.strip()[-500:]}")
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(
        requests=int(m.group(1)),
        seconds=float(m.group(2)) * _UNITS[m.group(3)],
        non_2xx=int(non.group(1)) if non else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
    )


@dataclass(frozen=True)
class HealthStats:
    """/health as timed from the node in one window: latencies of the answered, how many took longer
    than the operator's probe allows, how many failed (no 2xx within HEALTH_TIMEOUT)."""

    samples: int
    p50: float
    p99: float
    max: float
    over: int
    failed: int


def json_objects(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The objects `kubectl get --watch -o json` prints one after the other, each indented over many
    lines, its last line a `}` of its own."""
    buffered: list[str] = []
    for line in lines:
        buffered.append(line)
        if line.rstrip() == "}":
            yield dict(json.loads("".join(buffered)))
            buffered = []


def health_stats(samples: list[tuple[str, float | None]], *labels: str) -> HealthStats:
    """The figures of the samples tagged with any of `labels`."""
    mine = [s for tag, s in samples if tag in labels]
    answered = [s for s in mine if s is not None]
    return HealthStats(
        samples=len(mine),
        p50=kit.percentile(answered, 50),
        p99=kit.percentile(answered, 99),
        max=max(answered, default=float("nan")),
        over=sum(1 for s in answered if s > PROBE_TIMEOUT),
        failed=len(mine) - len(answered),
    )


@dataclass
class Tally:
    """What the operator wrote while one run lasted: each failed probe of `region` (a rise of its
    `consecutiveFailures`; a streak that ended and a new one between two writes counts the new one's
    length), the longest streak, the epochs, and each transition begun at or after `since`."""

    region: str
    since: datetime
    writes: int = 0
    failed_probes: int = 0
    longest_streak: int = 0
    epochs: set[int] = field(default_factory=set)
    phases: set[str] = field(default_factory=set)
    transitions: dict[tuple[int, str], str] = field(default_factory=dict)
    _last: int | None = None

    def see(self, status: rp.RegionPairStatus) -> None:
        self.writes += 1
        r = status.region(self.region)
        n = r.consecutive_failures if r is not None else 0
        if self._last is not None:  # the first write is where the run started, not something it saw
            if n > self._last:
                self.failed_probes += n - self._last
            elif 0 < n < self._last:
                self.failed_probes += n
            self.longest_streak = max(self.longest_streak, n)
        self._last = n
        self.epochs.add(status.epoch)
        self.phases.add(status.phase)
        for t in (status.transition, status.last_transition):
            if t is not None and t.started_at >= self.since:
                self.transitions[(t.epoch, t.started_at.isoformat())] = t.type

    @property
    def failovers(self) -> int:
        return sum(1 for kind in self.transitions.values() if kind == "Failover")


# -- I/O ---------------------------------------------------------------------------------------------


def _out(argv: list[str], timeout: float = 60) -> str:
    out = regionfaults.run(argv, timeout=timeout)
    if out.returncode != 0:
        raise LookupError(f"{' '.join(argv)}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def running_pods(c: kit.Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items = c.json("-n", namespace, "get", "pods", "-l", selector)["items"]
    assert isinstance(items, list)
    return [p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def operator_pods(c: kit.Cluster) -> list[dict[str, Any]]:
    return running_pods(c, c.rel.operator_namespace, f"app.kubernetes.io/instance={c.rel.operator_name}")


def _ready(pod: dict[str, Any]) -> bool:
    conds = pod["status"].get("conditions") or []
    return any(cond["type"] == "Ready" and cond["status"] == "True" for cond in conds)


def host_veth(namespace: str, pod: str) -> str:
    """The host side of `pod`'s veth on the node's bridge: from the pod's netns (crictl), the peer
    ifindex of its eth0, then the host's link with that index."""
    crictl = [find_program("crictl"), "--runtime-endpoint", f"unix://{Layout.default().containerd_sock}"]
    ids = _out([*crictl, "pods", "--name", f"^{re.escape(pod)}$", "--namespace", namespace, "--state", "ready", "-q"])
    if not ids.split():
        raise LookupError(f"crictl knows no ready sandbox of {namespace}/{pod}")
    netns = netns_of(json.loads(_out([*crictl, "inspectp", "-o", "json", ids.split()[0]])))
    ip = find_program("ip")
    peer = peer_index(json.loads(_out([find_program("nsenter"), f"--net={netns}", ip, "-j", "link", "show", "eth0"])))
    return host_link(json.loads(_out([ip, "-j", "link", "show"])), peer, layout.BRIDGE)


def add_latency(dev: str, operators: list[str], latency_ms: int, jitter_ms: int) -> str | None:
    """netem on `dev` for the operators' packets; None when injected, else the command tc refused
    and its answer (all of it taken back)."""
    tc = find_program("tc")
    for args in netem_commands(dev, operators, latency_ms, jitter_ms):
        out = regionfaults.run([tc, *args])
        if out.returncode != 0:
            remove_latency(dev)
            answer = (out.stderr.strip() or out.stdout.strip()).replace("\n", " ")
            return f"`tc {' '.join(args)}` answered {answer!r}"
    return None


def remove_latency(dev: str) -> None:
    regionfaults.run([find_program("tc"), "qdisc", "del", "dev", dev, "root"])  # none there: an answer, not an error


@dataclass
class Link:
    """The operator's link to the active Redis as faulted: who is on it, what was injected, what was dropped."""

    operators: list[str]
    redis_pod: str
    redis_ip: str
    veth: str = ""
    latency: str = ""
    """What was injected (`250 +- 250 ms`), or `none` and why in `latency_note`."""
    latency_note: str = ""
    loss: float = 0.0
    packets: int = 0
    dropped: int = 0
    counted: list[str] = field(default_factory=list)
    """The chain's rules with their counters as `iptables-save -c` showed them before they went."""


@contextmanager
def link_fault(
    c: kit.Cluster, region: str, latency_ms: int = LATENCY_MS, jitter_ms: int = JITTER_MS, loss: float = LOSS
) -> Iterator[Link]:
    """Latency, jitter and loss between every operator pod and `region`'s Redis pod (module
    docstring); on exit the qdisc and the rules go, the loss counters read first."""
    ops = sorted(p["status"]["podIP"] for p in operator_pods(c) if p["status"].get("podIP"))
    redis = running_pods(c, c.ns, redis_selector(region))
    assert ops, "no running operator pod"
    assert len(redis) == 1, f"{region}: {len(redis)} running Redis pods"
    link = Link(ops, redis[0]["metadata"]["name"], redis[0]["status"]["podIP"], loss=loss)
    regionfaults.remove_partition(CHAIN)  # a chain left by a run that was killed
    undone = False

    def undo() -> None:
        nonlocal undone
        if undone:
            return
        undone = True
        if link.veth:
            remove_latency(link.veth)
        *prefix, program = regionfaults.iptables_command()
        saved = regionfaults.run([*prefix, f"{program}-save", "-c", "-t", "filter"])
        link.packets, link.dropped = loss_counters(saved.stdout)
        link.counted = [line for line in saved.stdout.splitlines() if f"-A {CHAIN} " in line]
        regionfaults.remove_partition(CHAIN)

    atexit.register(undo)
    try:
        try:
            link.veth = host_veth(c.ns, link.redis_pod)
        except LookupError as e:
            link.latency, link.latency_note = "none (no veth)", f"the Redis pod's veth was not found: {e}"
        if link.veth:
            remove_latency(link.veth)  # a qdisc left by a run that was killed
            refused = add_latency(link.veth, ops, latency_ms, jitter_ms)
            link.latency = f"{latency_ms} +- {jitter_ms} ms" if refused is None else "none (tc refused netem)"
            link.latency_note = f"netem on {link.veth}" if refused is None else refused
        out = regionfaults.run(
            [*regionfaults.iptables_restore_command(), "-w", "5"], stdin=loss_restore(ops, link.redis_ip, loss)
        )
        if out.returncode != 0:
            raise AssertionError(f"iptables-restore refused the loss rules: {out.stderr.strip()}")
        yield link
    finally:
        atexit.unregister(undo)
        undo()


def restart_pod(c: kit.Cluster, selector: str, timeout: float = 300) -> float:
    """The one running pod `selector` matches deleted (gracefully, as a rollout or a drain would);
    seconds until a replacement is Ready."""
    pods = running_pods(c, c.ns, selector)
    assert len(pods) == 1, f"{selector}: {len(pods)} running pods"
    uid = pods[0]["metadata"]["uid"]
    start = time.monotonic()
    c.kubectl("-n", c.ns, "delete", "pod", pods[0]["metadata"]["name"], "--wait=false")
    while time.monotonic() - start < timeout:
        items = c.json("-n", c.ns, "get", "pods", "-l", selector)["items"]
        assert isinstance(items, list)
        if any(p["metadata"]["uid"] != uid and _ready(p) for p in items):
            return time.monotonic() - start
        time.sleep(1.0)
    raise AssertionError(f"{selector}: no replacement Ready within {timeout:.0f} s")


def api_load(url: str, seconds: float, connections: int = LOAD_CONNECTIONS) -> Load:
    """wrk on `url` for `seconds` from the node (closed loop, 2 threads)."""
    argv = [find_program("wrk"), "-t", "2", "-c", str(connections), "-d", f"{seconds:.0f}s", "--timeout", "2s", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise AssertionError(f"wrk failed: {out.stderr.strip()}")
    return parse_wrk(out.stdout)


BURST_REQUESTS, BURST_CONCURRENCY = 5000, 32
"""The console's burst at its largest (TrafficRequest's bounds; the chart's TIER0_TRAFFIC_MAX_* cap it)."""
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # straight to the Service


def api_token(c: kit.Cluster) -> str:
    """The chart's API token (Secret `<release>-api`), for the burst's bearer header; kept in memory,
    never printed nor passed as an argument."""
    raw = c.kubectl("-n", c.ns, "get", "secret", c.rel.api_secret, "-o", "jsonpath={.data.token}")
    return base64.b64decode(raw).decode()


def _call(req: urllib.request.Request, timeout: float = 30) -> tuple[int, bytes]:
    """(status, body) of `req`; a 429 (the per-client rate limit: wrk shares this client's address)
    is waited out as its Retry-After says, for up to `timeout` s. Other errors raise (HTTPError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _DIRECT.open(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            if e.code != 429 or time.monotonic() > deadline:
                raise
            time.sleep(float(e.headers.get("Retry-After") or 1))


def start_burst(base: str, token: str) -> None:
    """Simulate High Traffic on the API at `base` (202, or an error naming the status)."""
    body = json.dumps({"requests": BURST_REQUESTS, "concurrency": BURST_CONCURRENCY}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    status, _ = _call(urllib.request.Request(f"{base}/api/console/traffic", body, headers, method="POST"))
    if status != 202:
        raise AssertionError(f"POST /api/console/traffic answered {status}")


def burst_result(base: str, timeout: float = 30) -> console.TrafficRun:
    """The latest burst of the API at `base`, once finished."""
    deadline = time.monotonic() + timeout
    while True:
        run = console.TrafficRun.model_validate_json(_call(urllib.request.Request(f"{base}/api/console/traffic"))[1])
        if run.state != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def burst_cell(runs: list[console.TrafficRun]) -> str:
    """The bursts in a few words: sent, answers by status, their own p99."""
    if not runs:
        return "-"
    statuses: dict[str, int] = {}
    for r in runs:
        for code, n in r.by_status.items():
            statuses[code] = statuses.get(code, 0) + n
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    p99 = max(r.latency_ms.get("p99", float("nan")) for r in runs)
    elapsed = sum(r.elapsed_seconds for r in runs)
    return f"{sum(r.sent for r in runs)} sent in {elapsed:.1f} s ({codes}), their p99 up to {p99:.0f} ms"


class HealthTimer:
    """A thread GETting `url` every `every` s (a fresh connection each, HEALTH_TIMEOUT): one sample
    per GET, its seconds (None: failed), tagged with `label` as it was when the GET began."""

    def __init__(self, url: str, every: float = 0.2) -> None:
        self.url, self.every = url, every
        self.label = "quiet"
        self.samples: list[tuple[str, float | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="health-timer", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            label, began = self.label, time.monotonic()
            took: float | None = None
            try:
                with _DIRECT.open(self.url, timeout=HEALTH_TIMEOUT) as resp:
                    resp.read()
                    took = time.monotonic() - began if 200 <= resp.status < 300 else None
            except OSError:  # URLError, a refused connection, a timeout
                took = None
            self.samples.append((label, took))
            self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))

    def __enter__(self) -> "HealthTimer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=HEALTH_TIMEOUT + 1)


class StatusWatch:
    """`kubectl get regionpair --watch -o json`: every status the operator writes, kept as the
    latest and handed to the current `Tally` (`counting`). A watch that ended early fails the run
    (`check`): a tally that stopped seeing would report fewer failures than there were."""

    def __init__(self, c: kit.Cluster) -> None:
        self.c = c
        self.latest: rp.RegionPairStatus | None = None
        self.error = ""
        self._tally: Tally | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._read, name="status-watch", daemon=True)
        self._stopping = False

    def __enter__(self) -> "StatusWatch":
        argv = [find_program("kubectl"), "--kubeconfig", str(self.c.rel.kubeconfig), "-n", self.c.ns]
        argv += ["get", "regionpair", self.c.rel.pair, "-o", "json", "--watch"]
        self._proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while self.latest is None and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.1)
        self.check()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for obj in json_objects(self._proc.stdout):
            status = rp.RegionPairStatus.model_validate(obj.get("status") or {})
            with self._lock:
                self.latest = status
                if self._tally is not None:
                    self._tally.see(status)
        if not self._stopping:
            err = self._proc.stderr.read() if self._proc.stderr else ""
            self.error = f"the status watch ended early (exit {self._proc.wait()}): {err.strip()}"

    def check(self) -> None:
        if self.error:
            raise AssertionError(self.error)
        if self.latest is None:
            raise AssertionError("the status watch saw no RegionPair within 30 s")

    @contextmanager
    def counting(self, tally: Tally) -> Iterator[Tally]:
        with self._lock:
            if self.latest is not None:
                tally.see(self.latest)
            self._tally = tally
        try:
            yield tally
        finally:
            with self._lock:
                self._tally = None
        self.check()

    def wait_for(self, what: str, ok: Callable[[rp.RegionPairStatus], bool], timeout: float = 120) -> float:
        """Seconds until the latest status satisfies `ok`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.check()
            with self._lock:
                latest = self.latest
            if latest is not None and ok(latest):
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"{what} not within {timeout:.0f} s: {self.latest}")

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._thread.join(timeout=5)


def operator_log(c: kit.Cluster, since: datetime) -> str:
    """Every operator pod's log since `since` (each line prefixed with its pod)."""
    at = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    selector = f"app.kubernetes.io/instance={c.rel.operator_name}"
    ns = c.rel.operator_namespace
    return c.kubectl("-n", ns, "logs", "-l", selector, f"--since-time={at}", "--tail=-1", "--prefix")


def fast_paths(log: str) -> int:
    """Times the operator took the fast path (a witness agreed with failing probes: its log line)."""
    return sum(1 for line in log.splitlines() if ": fast path: " in line)


def failed_redis_probes(log: str, region: str) -> int:
    """Probes of `region` the operator logged as failed on Redis (its log says nothing of a probe that
    failed on /health alone; the status's consecutiveFailures counts both)."""
    return sum(1 for line in log.splitlines() if re.search(rf"probe of {re.escape(region)} failed \(\d+ of", line))


def operator_restarts(c: kit.Cluster) -> int:
    """Container restarts of the operator's pods so far (a liveness kill would show here)."""
    return sum(
        int(s.get("restartCount", 0)) for p in operator_pods(c) for s in p["status"].get("containerStatuses") or []
    )
