"""`make bench BENCH=cluster`: switchover and failover through the real Service and kube-proxy.

On the cluster of the e2e tier (the built-in node, or TIER0_E2E_KUBECONFIG) with both charts
installed, a client pod calls the global Service every 10 ms (fresh connection, one retry) while
the pair switches over (spec.activeRegion patched) or loses its active Redis: its process killed
and kept down (a crash: the unplanned failover), its process killed and restarted by its kubelet,
or its pod force-deleted and kept down (the kubelet still stops it with a 2 s grace: the operator
may switch over meanwhile), RUNS times each, and a ledger pod publishes device messages to the
broker Service
(one new device each, `kit.LEDGER_RATE` per second): every one the broker acknowledged is looked
up in the active Redis afterwards. Reference in the same run: a bare selector flip of a Service
between two trivial pods, the floor kube-proxy sets. Outage = the longest time without an answer.
"""

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

import kit  # noqa: E402
from table import Table  # noqa: E402

from tier0_dev.node import cluster, deploy  # noqa: E402
from tier0_dev.node.layout import Layout  # noqa: E402

RUNS = int(os.environ.get("RUNS", "5"))

TRIVIAL = """
import http.server, json, os
body = json.dumps({"region": os.environ["COLOR"]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def remove_trivial_pair(c: kit.Cluster) -> None:
    # Waited for: a pod still terminating from an earlier run would satisfy the next run's apply.
    c.kubectl("-n", c.ns, "delete", "pod", "-l", "bench=flip", "--ignore-not-found", "--wait=true")
    c.kubectl("-n", c.ns, "delete", "service", "bench-flip", "--ignore-not-found")


def trivial_pair(c: kit.Cluster) -> None:
    remove_trivial_pair(c)
    image = c.kubectl(
        "-n",
        c.ns,
        "get",
        "deployment",
        f"{c.rel.name}-region-api-region1",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    )
    docs = []
    for color in ("blue", "green"):
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"bench-{color}", "namespace": c.ns, "labels": {"bench": "flip", "color": color}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-c", TRIVIAL],
                            "env": [{"name": "COLOR", "value": color}],
                            "ports": [{"containerPort": 8000}],
                            "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
                        }
                    ]
                },
            }
        )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "bench-flip", "namespace": c.ns},
            "spec": {"selector": {"bench": "flip", "color": "blue"}, "ports": [{"port": 80, "targetPort": 8000}]},
        }
    )
    c.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    c.kubectl("-n", c.ns, "wait", "pod/bench-blue", "pod/bench-green", "--for=condition=Ready", "--timeout=120s")


Run = tuple[kit.Outcome, int, int]
"""What a client saw, device messages the broker acknowledged meanwhile, and how many are lost."""


def flip(c: kit.Cluster, to: str) -> Run:
    name = f"e2e-flip-{to}-{time.time_ns() % 100000}"
    c._prober_pod(name, ["probe", f"http://bench-flip.{c.ns}.svc.cluster.local/", str(kit.INTERVAL), "8"])
    c.wait_pod_log(name, "ready")
    time.sleep(1.0)
    t0 = time.time()
    c.kubectl("-n", c.ns, "patch", "service", "bench-flip", "-p", json.dumps({"spec": {"selector": {"color": to}}}))
    return kit.summarize(kit.parse(c.wait_pod_done(name, timeout=70)), t0, to), 0, 0


def switchover(c: kit.Cluster) -> Run:
    old = c.healthy()
    new = c.other(old)
    with c.ledger(duration=15) as ledger, c.client(duration=15) as samples:
        t0 = time.time()
        c.patch_active(new)
        c.wait_active(new)
    c.healthy()
    return kit.summarize(samples, t0, new), len(ledger.acked), len(c.missing(ledger))


Loss = Literal["crashed", "restarted", "deleted"]
"""How the active Redis is lost: its process SIGKILLed and its pod then force-deleted (kept down: the
unplanned failover of issue 20's target), its process SIGKILLed and restarted by its kubelet, or its
pod force-deleted and kept down (it lives about 2 s more: a switchover may beat it)."""


def failover(c: kit.Cluster, how: Loss) -> Run:
    """The active Redis lost (`Loss`), the client and the ledger running."""
    old = c.healthy()
    new = c.other(old)
    with c.ledger(duration=25) as ledger, c.client(duration=25) as samples:
        restore, t0 = c.lose_redis(old) if how == "deleted" else c.crash_redis(old, keep_down=how == "crashed")
        try:
            c.wait_active(new, timeout=60)
        except BaseException:
            restore()
            raise
    lost = len(c.missing(ledger))
    restore()
    c.healthy()
    outcome = kit.summarize(samples, t0, new)
    LOSSES[how].append(loss_of(c.status().get("lastTransition"), t0, outcome.first_new_s))
    print(f"  {old}->{new}: {LOSSES[how][-1]}", flush=True)
    end = (outcome.first_new_s if outcome.first_new_s is not None else 5.0) + 0.2
    print(f"    the client saw: {kit.timeline(samples, t0, -0.2, end)}", flush=True)
    a, b = kit.longest_gap(samples)
    print(f"    its longest gap: {kit.timeline(samples, t0, a - t0 - 0.05, b - t0 + 0.05)}", flush=True)
    return outcome, len(ledger.acked), lost


@dataclass(frozen=True)
class Lost:
    """What one loss of the active Redis became, from status.lastTransition: its type (trigger),
    seconds from the kill to the decision (its startedAt), the operator's own detection time and
    witnesses (a failover's), the transition, and when the client first had an answer of the new
    region: what kube-proxy and the client add after the operator has routed."""

    became: str
    decided_after_kill: float
    detection: float | None
    witnesses: str
    transition: float
    first_new: float | None

    @property
    def routed_after_kill(self) -> float:
        return self.decided_after_kill + self.transition

    def __str__(self) -> str:
        detection = "-" if self.detection is None else f"{self.detection:.3f}"
        first = "-" if self.first_new is None else f"{self.first_new:.3f}"
        return (
            f"{self.became}: decided {self.decided_after_kill:.3f} s after the kill, detection {detection} s "
            f"({self.witnesses}), transition {self.transition:.3f} s, routed at {self.routed_after_kill:.3f} s, "
            f"the client's first answer of the new region at {first} s"
        )


LOSSES: dict[Loss, list[Lost]] = {"crashed": [], "restarted": [], "deleted": []}
"""What each loss became, by how the Redis was lost."""


def loss_of(last: object, killed: float, first_new: float | None) -> Lost:
    assert isinstance(last, dict), f"no lastTransition: {last}"
    started = datetime.fromisoformat(str(last["startedAt"]).replace("Z", "+00:00")).timestamp()
    seconds = last.get("detectionSeconds")
    return Lost(
        f"{last.get('type')} ({last.get('trigger')})",
        started - killed,
        float(seconds) if seconds is not None else None,
        ", ".join(last.get("witnesses") or []) or "-",
        float(last.get("durationSeconds") or 0.0),
        first_new,
    )


def main() -> int:
    print(f"load average before: {os.getloadavg()}", flush=True)
    kubeconfig, started = kit.started_kubeconfig()
    try:
        c = kit.Cluster(kubeconfig)
        deploy.install(c.rel)
        trivial_pair(c)
        rows: dict[Loss, str] = {
            "crashed": "failover: Redis process killed",
            "restarted": "Redis process killed, restarted",
            "deleted": "Redis pod force-deleted",
        }
        names = ["bare selector flip (reference)", "switchover", *rows.values()]
        results: dict[str, list[Run]] = {name: [] for name in names}
        for i in range(RUNS):
            results["bare selector flip (reference)"].append(flip(c, "green" if i % 2 == 0 else "blue"))
            results["switchover"].append(switchover(c))
            for how, row in rows.items():
                results[row].append(failover(c, how))
            print(f"run {i + 1}/{RUNS} done", flush=True)
        remove_trivial_pair(c)
        table = Table(
            f"Transitions through the real Service (client every 10 ms, fresh connection, 1 retry), {RUNS} runs",
            [
                "transition",
                "outage p50 s",
                "outage p99 s",
                "first new p50 s",
                "first new p99 s",
                "errors after retry",
                "first-try errors",
                "old answers after new",
                "acked msgs lost",
                "target",
            ],
        )
        targets = {
            "bare selector flip (reference)": "floor set by kube-proxy",
            "switchover": "outage p99 < 0.5 s, 0 errors, 0 lost",
            rows["crashed"]: "outage p99 <= 0.5 s (issue 20), 0 lost",
            rows["restarted"]: "0 lost",
            rows["deleted"]: "0 lost",
        }
        for name, runs in results.items():
            outs = [o for o, _, _ in runs]
            outage = [o.outage_s for o in outs]
            first = [o.first_new_s for o in outs if o.first_new_s is not None]
            acked, lost = sum(a for _, a, _ in runs), sum(m for _, _, m in runs)
            table.add(
                name,
                p(outage, 50),
                p(outage, 99),
                p(first, 50),
                p(first, 99),
                sum(o.errors for o in outs),
                sum(o.first_try_errors for o in outs),
                sum(o.old_after_new for o in outs),
                "-" if name.startswith("bare") else f"{lost} of {acked}",
                targets[name],
            )
        table.print()
        where = Table(
            "Where a loss's outage goes (status.lastTransition of each run; client: its first new answer)",
            ["loss", "became", "kill -> decision p50 s", "max s", "detection p50 s", "witnesses"]
            + ["transition p50 s", "kill -> routed p50 s", "routed -> client p50 s"],
        )
        for how, name in rows.items():
            ls = LOSSES[how]
            found = [loss.detection for loss in ls if loss.detection is not None]
            where.add(
                name,
                ", ".join(sorted({loss.became for loss in ls})),
                p([loss.decided_after_kill for loss in ls], 50),
                max((loss.decided_after_kill for loss in ls), default=float("nan")),
                p(found, 50),
                "; ".join(sorted({loss.witnesses for loss in ls})) or "-",
                p([loss.transition for loss in ls], 50),
                p([loss.routed_after_kill for loss in ls], 50),
                p([loss.first_new - loss.routed_after_kill for loss in ls if loss.first_new is not None], 50),
            )
        where.print()
        print(f"load average after: {os.getloadavg()}", flush=True)
        lost = sum(m for runs in results.values() for _, _, m in runs)
        return 1 if lost else 0  # an acknowledged message lost is a failed check, not a figure
    finally:
        if started:
            cluster.down(Layout.default())


if __name__ == "__main__":
    sys.exit(main())
