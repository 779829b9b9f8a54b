"""What the e2e tests and `make bench BENCH=cluster` share: the cluster under test, client pods
that call the global Service every 10 ms from inside the cluster, and the reading of their record.

The cluster is the one TIER0_E2E_KUBECONFIG names (kind in the GitHub workflow, with
TIER0_E2E_VALUES and TIER0_E2E_OPERATOR_VALUES naming the charts' values files), or else the
built-in node with hack/node-values.yaml, started (and stopped afterwards) by the session.
"""

import json
import os
import signal
import statistics
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tier0_contract import keys, regionpair
from tier0_dev.node import cluster, deploy
from tier0_dev.node.layout import Layout
from tier0_dev.procs import find_program

PROBER = Path(__file__).with_name("prober.py")
LEDGER = Path(__file__).with_name("ledger.py")
ACTIVITY_LEDGER = Path(__file__).with_name("activity_ledger.py")
MQTT_PUB = Path(__file__).parents[1] / "support" / "tier0_checker" / "mqtt_pub.py"
LEDGER_RATE = 50.0
"""Device messages per second the ledger publishes during a transition (one new device each)."""
ACTIVITY_RATE = 10.0
"""User-activity messages per second the activity ledger publishes (each waits for its confirm)."""
MQTT_SERVICE = "{release}-mqtt"
"""The Service devices publish through: the chart's global MQTT Service, which the operator points at
the active region's EMQX (brokers.perRegion; `{release}-emqx` is the shared broker without it)."""
AMQP_SERVICE = "{release}-amqp"
"""The Service users publish through: the global AMQP Service, following the active region's RabbitMQ
(`{release}-rabbitmq` with one shared broker)."""
REDIS_APP = (
    "import os, sys, redis\n"
    "from tier0_contract import credentials\n"
    "host, _, port = sys.argv[1].partition(':')\n"
    "password = credentials.read_secret(os.environ['TIER0_REDIS_PASSWORD_FILE'])\n"
    "user = os.environ['TIER0_REDIS_USERNAME']\n"
    "r = redis.Redis(host=host, port=int(port or 6379), username=user, password=password, socket_timeout=5)\n"
)
"""The head of a script run in a region API pod: `r`, a client of the Redis at argv[1] (`host:port`)
as the API itself connects, with its user and mounted password file (the Redis container's default
user may only PING)."""
ZMSCORE = "print('\\n'.join('-' if s is None else repr(s) for s in r.zmscore(sys.argv[2], sys.argv[3:])))\n"
"""After REDIS_APP (argv: host, key, members): each member's score, `-` for none, one a line."""
EXISTS = (
    "p = r.pipeline(transaction=False)\n"
    "for k in sys.argv[2:]:\n"
    "    p.exists(k)\n"
    "print('\\n'.join(str(n) for n in p.execute()))\n"
)
"""After REDIS_APP (argv: host, keys): 1 or 0 for each key, one a line."""
INTERVAL = 0.01
FRESH_INTERVAL = 0.02
"""How often the freshness reader polls the global Service (two GETs each time)."""
# Lines for the end of the pytest run: what the client saw in each transition.
REPORT: list[str] = []


@dataclass(frozen=True)
class Sample:
    t: float
    tries: int
    region: str | None
    error: str


@dataclass(frozen=True)
class Outcome:
    """What a client of the global Service saw around one transition started at t0."""

    requests: int
    first_try_errors: int
    errors: int  # failed even after the one retry
    first_new_s: float | None  # from t0 to the first answer from the new region
    outage_s: float  # longest time without a successful answer
    old_after_new: int  # answers from the old region after the first from the new one


def parse(log: str) -> list[Sample]:
    out = []
    for line in log.splitlines():
        words = line.split()
        if len(words) == 4 and words[0][0].isdigit():
            out.append(Sample(float(words[0]), int(words[1]), None if words[2] == "-" else words[2], words[3]))
    return out


@dataclass(frozen=True)
class Reading:
    """What a reader of the global Service saw at t: the newest device message of a site and the
    newest user activity (their timestamps, epoch s; None when unanswered or absent)."""

    t: float
    telemetry: float | None
    activity: float | None


def parse_readings(log: str) -> list[Reading]:
    out = []
    for line in log.splitlines():
        words = line.split()
        if len(words) == 3 and words[0][0].isdigit():
            seen, act = (None if w == "-" else float(w) for w in words[1:])
            out.append(Reading(float(words[0]), seen, act))
    return out


def summarize(samples: list[Sample], t0: float, new_region: str) -> Outcome:
    ok = [s for s in samples if s.region is not None]
    first_new = next((s.t for s in ok if s.t >= t0 and s.region == new_region), None)
    start, end = longest_gap(samples)
    outage = end - start
    old_after = sum(1 for s in ok if first_new is not None and s.t > first_new and s.region != new_region)
    return Outcome(
        requests=len(samples),
        first_try_errors=sum(1 for s in samples if s.tries > 1),
        errors=sum(1 for s in samples if s.region is None),
        first_new_s=None if first_new is None else first_new - t0,
        outage_s=outage,
        old_after_new=old_after,
    )


def timeline(samples: list[Sample], t0: float, start: float, end: float) -> str:
    """What a client saw from `start` to `end` (seconds from t0): runs of requests with the same
    answer (region, or the error after the tries), each `+start..+end answer xN` (a request's time
    is when it started)."""
    runs: list[tuple[float, float, str, int]] = []
    for s in samples:
        if not t0 + start <= s.t <= t0 + end:
            continue
        answer = s.region or f"{s.error} ({s.tries} tries)"
        if runs and runs[-1][2] == answer:
            first, _, _, n = runs[-1]
            runs[-1] = (first, s.t, answer, n + 1)
        else:
            runs.append((s.t, s.t, answer, 1))
    return "; ".join(f"{a - t0:+.2f}..{b - t0:+.2f} {answer} x{n}" for a, b, answer, n in runs)


def longest_gap(samples: list[Sample]) -> tuple[float, float]:
    """The longest time without an answer (`Outcome.outage_s`): the last answer before it and the
    first after it, or the last request when none came (epoch s)."""
    if not samples:
        return 0.0, 0.0
    gap, last_ok = (samples[0].t, samples[0].t), samples[0].t
    for s in samples:
        if s.region is not None:
            if s.t - last_ok > gap[1] - gap[0]:
                gap = (last_ok, s.t)
            last_ok = s.t
    if samples[-1].t - last_ok > gap[1] - gap[0]:
        gap = (last_ok, samples[-1].t)
    return gap


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (inclusive method; the value itself for one run, nan for none)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class Ledger:
    """What a ledger pod was acknowledged by its broker (message ids in order, with the epoch second
    each acknowledgement arrived) and its last line. Device ledgers name a message by its device
    id (one message per device), activity ledgers by its message_id."""

    acked: list[str] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)
    summary: str = ""

    def read(self, log: str, word: str) -> None:
        """Fill from a ledger pod's log: `<word> <id> <epoch s>` lines, then the summary line."""
        for line in log.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == word:
                self.acked.append(parts[1])
                self.acked_at.append(float(parts[2]))
        lines = log.strip().splitlines()
        self.summary = lines[-1] if lines else ""

    def first_ack_after(self, t: float) -> float | None:
        """Seconds from `t` to the first acknowledgement at or after it (None: none came)."""
        return next((at - t for at in self.acked_at if at >= t), None)


class Cluster:
    """kubectl/helm on the cluster under test, with tier0 deployed as `make up` deploys it."""

    def __init__(self, kubeconfig: Path) -> None:
        values = os.environ.get("TIER0_E2E_VALUES")
        operator_values = os.environ.get("TIER0_E2E_OPERATOR_VALUES")
        self.rel = deploy.Release(kubeconfig)
        if values and operator_values:
            self.rel = deploy.Release(kubeconfig, values=Path(values), operator_values=Path(operator_values))
        self.ns = self.rel.namespace

    def kubectl(self, *args: str, timeout: float = 120, stdin: str | None = None) -> str:
        argv = [find_program("kubectl"), "--kubeconfig", str(self.rel.kubeconfig), *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=stdin)
        if out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def json(self, *args: str) -> dict[str, object]:
        return dict(json.loads(self.kubectl(*args, "-o", "json")))

    def pair(self) -> dict[str, object]:
        return deploy.regionpair(self.rel)

    def status(self) -> dict[str, object]:
        status = self.pair().get("status")
        return status if isinstance(status, dict) else {}

    def active(self) -> str:
        return str(self.status().get("activeRegion"))

    def other(self, region: str) -> str:
        return "region2" if region == "region1" else "region1"

    def wait_phase(self, phase: str, timeout: float = 120) -> dict[str, object]:
        return deploy.wait_phase(self.rel, phase, timeout)

    def wait_active(self, region: str, timeout: float = 60) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.active() == region:
                return time.monotonic() - start
            time.sleep(0.2)
        raise AssertionError(f"activeRegion never became {region}: {self.status()}")

    def selector_region(self) -> str:
        svc = self.json("-n", self.ns, "get", "service", self.rel.global_service)
        spec = svc["spec"]
        assert isinstance(spec, dict)
        return str(spec["selector"]["tier0.dev/region"])

    def patch_active(self, region: str) -> None:
        patch = json.dumps({"spec": {"activeRegion": region}})
        self.kubectl("-n", self.ns, "patch", "regionpair", self.rel.pair, "--type", "merge", "-p", patch)

    def desired(self) -> str:
        """spec.activeRegion as the operator reads it (the first region when the manifest omits it)."""
        return regionpair.RegionPairSpec.model_validate(self.pair()["spec"]).active_region

    def healthy(self) -> str:
        """Wait until the pair is Healthy with spec following status; returns the active region."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            pair = self.pair()
            spec, status = pair.get("spec", {}), pair.get("status", {})
            assert isinstance(spec, dict) and isinstance(status, dict)
            # The chart leaves spec.activeRegion out (GitOps): the contract's model supplies the default.
            desired = regionpair.RegionPairSpec.model_validate(spec).active_region
            if status.get("phase") == "Healthy" and desired == status.get("activeRegion"):
                return str(status["activeRegion"])
            conds = status.get("conditions") or []
            assert isinstance(conds, list)
            moved = ("FailedOver", "SwitchedOverForDisruption")  # the operator's move, not the user's wish
            if any(c.get("reason") in moved and c.get("status") == "False" for c in conds):
                self.patch_active(str(status["activeRegion"]))  # acknowledge a failover: spec follows status
            time.sleep(0.5)
        raise AssertionError(f"RegionPair not Healthy: {self.pair().get('status')}")

    def hold_down(self, selector: str) -> tuple[Callable[[], None], float]:
        """Every pod matching `selector` killed (force-deleted) and kept down; returns what brings
        them back and when the pods were killed. Nothing may recreate a pod in between: a
        replacement that became ready and was then deleted gracefully (scaled to 0) would be a
        drain, which the operator rightly answers with a switchover, not the loss simulated here
        (a race the e2e tier lost once). So the
        workloads that own the pods (StatefulSets, Deployments and their ReplicaSets) are deleted
        first with `--cascade=orphan`, then the pods; giving back recreates the workloads from
        their manifests as they were (their volumes, kept by their claims, come back with them).
        A force-deleted pod still lives about 2 s (the kubelet's shortest grace): the operator may
        answer it with a switchover while it answers; `crash` is the loss without that warning."""
        give_back = self._orphan(selector)
        killed = time.time()
        self._force_delete(selector)
        return give_back, killed

    def crash(self, selector: str, container: str, keep_down: bool = True) -> tuple[Callable[[], None], float]:
        """`container` of every pod matching `selector` crashed: its process SIGKILLed from the
        node's host, as a segfault or the OOM killer would (connections reset at once, the pod still
        in the API). `keep_down`: the pod then force-deleted so that the kubelet does not restart
        it, the workloads orphaned first (`hold_down`); else the kubelet restarts the container.
        Needs the built-in node, whose containers run on this host; returns what brings them back
        and when they died."""
        lay = Layout.default()
        needs = "a crash is a SIGKILL from the node's host: it needs the built-in node (make node-up)"
        assert self.on_node, f"{needs}, not {self.rel.kubeconfig}"
        pods = self.kubectl("-n", self.ns, "get", "pods", "-l", selector, "-o", "jsonpath={.items[*].metadata.name}")
        assert pods.split(), f"no pod carries {selector}"
        pids = [self._pid(lay, pod, container) for pod in pods.split()]
        give_back = self._orphan(selector) if keep_down else (lambda: None)
        killed = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        if keep_down:
            self._force_delete(selector)
        return give_back, killed

    @property
    def on_node(self) -> bool:
        """Whether the cluster is the built-in node, whose containers run on this host."""
        lay = Layout.default()
        return self.rel.kubeconfig == lay.kubeconfig and cluster.status_quiet(lay)

    def _pid(self, lay: Layout, pod: str, container: str) -> int:
        """The host PID of `container` in `pod` (through the node's container runtime)."""
        crictl = [find_program("crictl"), "--runtime-endpoint", f"unix://{lay.containerd_sock}"]
        labels = [f"io.kubernetes.pod.namespace={self.ns}", f"io.kubernetes.pod.name={pod}"]
        labels.append(f"io.kubernetes.container.name={container}")
        argv = [*crictl, "ps", "-q", "--state", "running", *(a for label in labels for a in ("--label", label))]
        ids = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.split()
        assert len(ids) == 1, f"{pod}: {len(ids)} running containers named {container}"
        out = subprocess.run([*crictl, "inspect", ids[0]], capture_output=True, text=True, timeout=30, check=True)
        pid = json.loads(out.stdout)["info"]["pid"]
        assert isinstance(pid, int) and pid > 1, f"{pod}/{container}: no host PID in crictl inspect"
        return pid

    def _orphan(self, selector: str) -> Callable[[], None]:
        """The workloads owning the pods of `selector` deleted, their pods left (see `hold_down`);
        returns what recreates them."""
        kinds = "statefulsets,deployments"
        items = self.json("-n", self.ns, "get", kinds, "-l", selector)["items"]
        assert isinstance(items, list) and items, f"no workload carries {selector}"
        manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": [recreatable(i) for i in items]})
        for kind in (kinds, "replicasets"):
            self.kubectl("-n", self.ns, "delete", kind, "-l", selector, "--cascade=orphan", "--wait=true")

        def give_back() -> None:
            out = subprocess.run(
                [find_program("kubectl"), "--kubeconfig", str(self.rel.kubeconfig), "create", "-f", "-"],
                capture_output=True, text=True, timeout=120, input=manifest,
            )  # fmt: skip
            failed = [line for line in out.stderr.splitlines() if "AlreadyExists" not in line and line.strip()]
            assert out.returncode == 0 or not failed, f"could not recreate {selector}: {out.stderr.strip()}"

        return give_back

    def _force_delete(self, selector: str) -> None:
        self.kubectl("-n", self.ns, "delete", "pods", "-l", selector, "--grace-period=0", "--force", "--wait=false")

    def lose_redis(self, region: str) -> tuple[Callable[[], None], float]:
        """The region's Redis pod force-deleted and kept down (`hold_down`): what restores it, when."""
        return self.hold_down(_redis_of(region))

    def crash_redis(self, region: str, keep_down: bool = True) -> tuple[Callable[[], None], float]:
        """The region's Redis process killed, and kept down or restarted by its kubelet (`crash`):
        what restores it, when it died."""
        return self.crash(_redis_of(region), "redis", keep_down)

    def _prober_pod(self, name: str, args: list[str]) -> str:
        return self._client_pod(name, PROBER.read_text(), args, "e2e-client")

    @property
    def mqtt_service(self) -> str:
        return MQTT_SERVICE.format(release=self.rel.name)

    @property
    def amqp_service(self) -> str:
        return AMQP_SERVICE.format(release=self.rel.name)

    def _client_pod(
        self,
        name: str,
        script: str,
        args: list[str],
        component: str,
        secret: tuple[str, str] | None = None,
        like: dict[str, Any] | None = None,
    ) -> str:
        """A pod running `script`; with `secret` (Secret name, key), that key mounted at
        /var/run/secrets/tier0/client/<key> (credentials are files, never arguments). With `like`
        (`{"image", "env", "volumeMounts", "volumes"}`), that image and those extra pieces: a client
        that connects as a chart's component does, from its own pod spec."""
        like = like or {}
        image = like.get("image") or self.kubectl(
            "-n",
            self.ns,
            "get",
            "deployment",
            f"{self.rel.name}-region-api-region1",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.ns,
                # The instance label and a component the broker's NetworkPolicy admits (device-simulator).
                "labels": {"app.kubernetes.io/instance": self.rel.name, "app.kubernetes.io/component": component},
            },
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                # fsGroup as the chart's pods have it: their Secret volumes (mode 0440) are readable.
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "runAsGroup": 10001,
                    "fsGroup": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "client",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", script, *args],
                        "env": like.get("env", []),
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                        "volumeMounts": (
                            [{"name": "client", "mountPath": "/var/run/secrets/tier0/client", "readOnly": True}]
                            if secret
                            else []
                        )
                        + like.get("volumeMounts", []),
                    }
                ],
                "volumes": (
                    [
                        {
                            "name": "client",
                            "secret": {"secretName": secret[0], "items": [{"key": secret[1], "path": secret[1]}]},
                        }
                    ]
                    if secret
                    else []
                )
                + like.get("volumes", []),
            },
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
        return name

    def wait_pod_log(self, name: str, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                [find_program("kubectl"), "--kubeconfig", str(self.rel.kubeconfig), "-n", self.ns, "logs", name],
                capture_output=True,
                text=True,
            )
            if out.returncode == 0 and text in out.stdout:
                return out.stdout
            time.sleep(0.2)
        raise AssertionError(f"pod {name} never logged {text!r}")

    def wait_pod_done(self, name: str, timeout: float = 120) -> str:
        self.kubectl(
            "-n",
            self.ns,
            "wait",
            f"pod/{name}",
            "--for=jsonpath={.status.phase}=Succeeded",
            f"--timeout={timeout:.0f}s",
            timeout=timeout + 10,
        )
        log = self.kubectl("-n", self.ns, "logs", name)
        self.kubectl("-n", self.ns, "delete", "pod", name, "--wait=false")
        return log

    def url(self, path: str) -> str:
        return f"http://{self.rel.global_service}.{self.ns}.svc.cluster.local{path}"

    @contextmanager
    def client(self, duration: float, path: str = "/api/status") -> Iterator[list[Sample]]:
        """A pod calling the global Service every 10 ms for `duration` s; the list fills on exit."""
        name = f"e2e-client-{uuid.uuid4().hex[:6]}"
        self._prober_pod(name, ["probe", self.url(path), str(INTERVAL), str(duration)])
        self.wait_pod_log(name, "ready")
        time.sleep(1.0)  # a baseline before the transition
        samples: list[Sample] = []
        yield samples
        samples.extend(parse(self.wait_pod_done(name, timeout=duration + 60)))

    @contextmanager
    def ledger(self, duration: float) -> Iterator[Ledger]:
        """A pod publishing device messages to the MQTT Service for `duration` s (LEDGER_RATE per
        second, each from a new device); on exit, which the broker acknowledged and when."""
        tag = uuid.uuid4().hex[:6]
        name = f"e2e-ledger-{tag}"
        broker = self.mqtt_service
        port = self.kubectl("-n", self.ns, "get", "service", broker, "-o", "jsonpath={.spec.ports[0].port}")
        script = MQTT_PUB.read_text() + "\n" + LEDGER.read_text()
        # As the chart's gateway user (it publishes for many devices over one connection).
        password = "/var/run/secrets/tier0/client/gateway-password"
        args = ["publish", broker, port, tag, str(LEDGER_RATE), str(duration), "tier0-gateway", password]
        self._client_pod(name, script, args, "device-simulator", (f"{self.rel.name}-mqtt", "gateway-password"))
        self.wait_pod_log(name, "ready")
        out = Ledger()
        yield out
        out.read(self.wait_pod_done(name, timeout=duration + 60), "acked")

    @contextmanager
    def activity_ledger(self, duration: float) -> Iterator[Ledger]:
        """A pod publishing user-activity messages to the AMQP Service for `duration` s
        (ACTIVITY_RATE per second, publisher confirms); on exit, which RabbitMQ confirmed and when.
        It runs as the user simulator does: its image, its AMQP settings and password file."""
        tag = uuid.uuid4().hex[:6]
        name = f"e2e-activity-{tag}"
        sim = self.json("-n", self.ns, "get", "deployment", f"{self.rel.name}-user-simulator")
        pod_spec: dict[str, Any] = sim["spec"]["template"]["spec"]  # type: ignore[index]
        container = pod_spec["containers"][0]
        env = [e for e in container.get("env", []) if e["name"].startswith("TIER0_AMQP_")]
        for e in env:
            if e["name"] == "TIER0_AMQP_URL":
                e["value"] = amqp_url_via(e["value"], self.amqp_service)
        mounts = [m for m in container.get("volumeMounts", []) if "amqp" in m["name"]]
        volumes = [v for v in pod_spec.get("volumes", []) if v["name"] in {m["name"] for m in mounts}]
        like = {"image": container["image"], "env": env, "volumeMounts": mounts, "volumes": volumes}
        args = ["publish", tag, str(ACTIVITY_RATE), str(duration)]
        self._client_pod(name, ACTIVITY_LEDGER.read_text(), args, "user-simulator", like=like)
        self.wait_pod_log(name, "ready")
        out = Ledger()
        yield out
        out.read(self.wait_pod_done(name, timeout=duration + 60), "confirmed")

    @contextmanager
    def fresh(self, duration: float, site: str = "E2E-LEDGER") -> Iterator[list[Reading]]:
        """A pod reading `site`'s last_seen and the newest user activity through the global Service
        every FRESH_INTERVAL s for `duration` s; the list fills on exit."""
        name = f"e2e-fresh-{uuid.uuid4().hex[:6]}"
        urls = [self.url(f"/api/devices/metrics/site/{site}"), self.url("/api/users/activity?limit=1")]
        self._prober_pod(name, ["fresh", *urls, str(FRESH_INTERVAL), str(duration)])
        self.wait_pod_log(name, "ready")
        readings: list[Reading] = []
        yield readings
        readings.extend(parse_readings(self.wait_pod_done(name, timeout=duration + 60)))

    def redis_host(self, region: str) -> str:
        """`ClusterIP:port` of the region's Redis Service: reached without DNS (a partitioned
        region's own pods reach it; the cluster's DNS is outside the partition)."""
        svc = f"{self.rel.name}-redis-{region}"
        out = self.kubectl(
            "-n", self.ns, "get", "service", svc, "-o", "jsonpath={.spec.clusterIP}:{.spec.ports[0].port}"
        )
        return out.strip()

    def redis_script(self, via: str, host: str, script: str, *args: str) -> str:
        """`script` after REDIS_APP in `via`'s region API pod, with `r` a client of the Redis at
        `host` (through the kubelet, so it runs while that region is cut off)."""
        pod = f"deploy/{self.rel.name}-region-api-{via}"
        return self.kubectl("-n", self.ns, "exec", pod, "--", "python", "-c", REDIS_APP + script, host, *args)

    def missing(self, ledger: Ledger, timeout: float = 30) -> list[str]:
        """The acknowledged device messages the active region's Redis does not hold, after waiting
        up to `timeout` s for the ingest workers to drain what the broker still holds."""

        def gone() -> list[str]:
            region = self.active()
            host = self.redis_host(region)
            scores = self.redis_script(region, host, ZMSCORE, keys.DEVICES_LAST_SEEN, *ledger.acked).splitlines()
            return [d for d, score in zip(ledger.acked, scores, strict=True) if score.strip() in ("", "-")]

        return self._wait_missing(ledger, gone, timeout)

    def missing_activity(self, ledger: Ledger, timeout: float = 30) -> list[str]:
        """The confirmed user-activity messages the active region's Redis has not applied
        (`EXISTS keys.activity_seen(id)`), after waiting up to `timeout` s for the consumers."""

        def gone() -> list[str]:
            region = self.active()
            seen = [keys.activity_seen(m) for m in ledger.acked]
            found = self.redis_script(region, self.redis_host(region), EXISTS, *seen).split()
            return [m for m, n in zip(ledger.acked, found, strict=True) if n.strip() != "1"]

        return self._wait_missing(ledger, gone, timeout)

    @staticmethod
    def _wait_missing(ledger: Ledger, gone: Callable[[], list[str]], timeout: float) -> list[str]:
        if not ledger.acked:
            return []
        deadline = time.monotonic() + timeout
        while True:
            lost = gone()
            if not lost or time.monotonic() > deadline:
                return lost
            time.sleep(1.0)

    def via_service(self, path: str, body: dict[str, object] | None = None) -> dict[str, Any]:
        """GET (or POST `body` as JSON to) `path` of the global Service from a region API pod, through
        the cluster's DNS and kube-proxy: the JSON answer, for checking content."""
        script = (
            "import json, sys, urllib.request\n"
            "data = sys.argv[2].encode() if sys.argv[2] else None\n"
            "req = urllib.request.Request(sys.argv[1], data, {'Content-Type': 'application/json'})\n"
            "print(urllib.request.urlopen(req, timeout=30).read().decode())\n"
        )
        pod = f"deploy/{self.rel.name}-region-api-region1"
        payload = "" if body is None else json.dumps(body)
        out = self.kubectl("-n", self.ns, "exec", pod, "--", "python", "-c", script, self.url(path), payload)
        answer = json.loads(out)
        assert isinstance(answer, dict), out
        return answer

    def get_all(self, paths: list[str]) -> dict[str, str]:
        """GET each path through the global Service from inside the cluster: path -> status."""
        name = f"e2e-get-{uuid.uuid4().hex[:6]}"
        self._prober_pod(name, ["get", *[self.url(p) for p in paths]])
        log = self.wait_pod_done(name, timeout=240)
        prefix = self.url("")
        return {url.removeprefix(prefix): status for status, url in (line.split(" ", 1) for line in log.splitlines())}


def _redis_of(region: str) -> str:
    return f"app.kubernetes.io/component=redis,tier0.dev/region={region}"


def recreatable(obj: dict[str, Any]) -> dict[str, Any]:
    """A workload as `kubectl create` takes it back: its spec, name, labels and annotations (Helm's
    ownership included), without what the API server assigned (uid, resourceVersion, status)."""
    meta = obj["metadata"]
    kept = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    spec = dict(obj["spec"])
    if "volumeClaimTemplates" in spec:
        claims = spec["volumeClaimTemplates"]
        spec["volumeClaimTemplates"] = [{k: v for k, v in t.items() if k != "status"} for t in claims]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": kept, "spec": spec}


def amqp_url_via(url: str, host: str) -> str:
    """`url` (no credentials in it: they are files) with its host replaced by `host`."""
    parts = urllib.parse.urlsplit(url)
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def started_kubeconfig() -> tuple[Path, bool]:
    """(kubeconfig, whether this process started the built-in node for it)."""
    given = os.environ.get("TIER0_E2E_KUBECONFIG")
    if given:
        return Path(given), False
    lay = Layout.default()
    if cluster.status_quiet(lay):
        return lay.kubeconfig, False
    rc = cluster.up(lay)
    assert rc == 0, "node-up failed"
    return lay.kubeconfig, True
