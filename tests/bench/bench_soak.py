"""No false failovers, and what triangulated detection buys: one run on real programs.

Starts a kube-apiserver + etcd, two redis-servers behind toxiproxy, the operator (subprocess) and a
RegionPair at the defaults (probe 1 s x 3; fast path: confirm 0.25 s, probes every 0.1 s), then
(`tier0_testing.detection` says how each fault is made):

1. the soak: BENCH_SOAK_SECONDS (default 120) of latency and jitter (0-500 ms per reply) and 5 %
   loss (retransmission stalls) on the operator's link to the active Redis, a blackout of that link
   every 10 s, every other one as the restarted standby Redis returns; the pass is 0 failovers;
2. a real kill -9 of the active Redis, BENCH_SOAK_KILLS times (default 3), on the fast path (the
   standby's link drops: a witness), then as many with the fast path out of reach
   (fastConfirmSeconds 60: the slow budget), side by side: detection (status.lastTransition
   .detectionSeconds, from the first failed probe) and the kill to the Service's flip.

BENCH_STATE_DIR keeps the logs. Exits 1 on a failover in the soak or a fast path no faster.
"""

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from table import Table

from tier0_contract import regionpair as rp
from tier0_dev import controlplane
from tier0_dev.procs import ROOT, Process
from tier0_testing import detection
from tier0_testing import operator as testing

NS = "soak"
INTERVAL, THRESHOLD = 1.0, 3
CONFIRM = rp.FailoverPolicy().fast_confirm_seconds  # the default the soak runs at


async def bench(state: Path, seconds: float, kills: int) -> int:
    cp = controlplane.start(state / "controlplane")
    kubectl = ["kubectl", "--kubeconfig", str(cp.kubeconfig)]
    kube = await testing.kube_for(cp.kubeconfig)
    procs: list[Process] = []
    stack: detection.Stack | None = None
    log = state / "operator.log"

    def start_operator() -> None:
        procs.append(testing.start_operator(cp.kubeconfig, NS, log)[0])

    try:
        testing.run_kubectl(kubectl, "apply", "-f", str(ROOT / "crds" / "regionpairs.tier0.dev.yaml"))
        testing.run_kubectl(kubectl, "wait", "--for=condition=Established", "crd/regionpairs.tier0.dev")
        testing.run_kubectl(kubectl, "create", "namespace", NS)
        stack = await detection.start(
            state / "stack", kubectl, kube, NS, start_operator, log, interval=INTERVAL, threshold=THRESHOLD
        )
        soak = await detection.soak(stack, seconds)
        print(f"  soak: {soak}", flush=True)
        fast = [await detection.kill_active(stack) for _ in range(kills)]
        await stack.patch_failover({"fastConfirmSeconds": 60})
        await asyncio.sleep(2 * INTERVAL)
        slow = [await detection.kill_active(stack) for _ in range(kills)]
        for k in (*fast, *slow):
            print(f"  kill: {k}", flush=True)
    finally:
        if stack is not None:
            stack.stop()
        await kube.close()
        for p in procs:
            p.stop(timeout=5)
        cp.stop()

    t = Table(
        f"Soak on the operator's link to the active Redis (probe {INTERVAL}s x {THRESHOLD}, fast confirm {CONFIRM} s)",
        [
            "duration s",
            "latency",
            "loss slots",
            "blackouts",
            "standby restarts",
            "failed probes",
            "longest streak",
            "fast paths",
            "failovers",
            "target",
        ],
    )
    t.add(
        soak.seconds,
        soak.latency,
        f"{soak.loss_slots} of {soak.slots} ({soak.loss_slots / max(1, soak.slots):.1%})",
        soak.blackouts,
        soak.standby_restarts,
        soak.failed_probes,
        f"{soak.longest_streak} of {THRESHOLD}",
        soak.fast_paths,
        soak.failovers,
        "0 failovers",
    )
    t.print()

    def med(values: list[float | None]) -> float:
        found = [v for v in values if v is not None]
        return statistics.median(found) if found else float("nan")

    kt = Table(
        f"kill -9 of the active Redis, {kills} runs each: detection (first failed probe -> decision), kill -> flip",
        ["path", "witnesses", "detection p50", "detection max", "flip p50", "flip max", "target"],
    )
    for name, runs, target in (
        ("fast (defaults)", fast, f"detection <= confirm {CONFIRM} s + 0.1 s"),
        ("slow (fastConfirmSeconds 60)", slow, f"detection ~ {(THRESHOLD - 1) * INTERVAL:.1f} s (today's budget)"),
    ):
        witnesses = sorted({", ".join(r.witnesses) for r in runs})
        kt.add(
            name,
            " / ".join(witnesses),
            med([r.detection_seconds for r in runs]),
            max((r.detection_seconds or 0.0) for r in runs),
            med([r.flip_seconds for r in runs]),
            max(r.flip_seconds for r in runs),
            target,
        )
    kt.print()
    faster = med([r.flip_seconds for r in fast]) < med([r.flip_seconds for r in slow])
    ok = soak.failovers == 0 and faster
    if not ok:
        print("CHECK FAILED: a failover in the soak, or the fast path no faster than the slow one", file=sys.stderr)
    return 0 if ok else 1


def main() -> int:
    seconds = float(os.environ.get("BENCH_SOAK_SECONDS", "120"))
    kills = int(os.environ.get("BENCH_SOAK_KILLS", "3"))
    keep = os.environ.get("BENCH_STATE_DIR")
    if keep:
        return asyncio.run(bench(Path(keep), seconds, kills))
    with tempfile.TemporaryDirectory(prefix="tier0-bench-soak-") as tmp:
        return asyncio.run(bench(Path(tmp), seconds, kills))


if __name__ == "__main__":
    sys.exit(main())
