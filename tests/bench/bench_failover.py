"""Switchover and failover of a RegionPair with a writer running at full speed.

Starts a real kube-apiserver + etcd, two redis-servers and the operator (subprocess), then
repeats: a planned switchover (patch spec.activeRegion) and an unplanned failover (SIGKILL of the
active Redis, restarted afterwards). A writer SADDs unique ids through "the Service" (it follows
the selector) and records every acknowledged write. Prints p50/p95/max of time-to-selector-flip
and time-to-writable (first acknowledged write on the new primary) and the acknowledged writes
the new primary does not have. RUNS (default 3; `make bench-failover` uses 20) sets the count.
Reference figures measured in the same run: one Service PATCH round trip, and the failover
detection time (failureThreshold x probeIntervalSeconds).
"""

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from table import Table

from tier0_dev import controlplane, programs
from tier0_dev.procs import ROOT, Process, free_port
from tier0_kube import client as kube_client
from tier0_testing import operator as testing

NS = "bench"
INTERVAL, THRESHOLD = 0.25, 3


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_region(kube: kube_client.Client, region: str, timeout: float = 20) -> float:
    """Poll the Service until it routes to `region`; returns the monotonic time it was seen."""

    async def flipped() -> float | None:
        return time.monotonic() if await testing.service_region(kube, NS, "region-api") == region else None

    result: float = await testing.wait_for(f"selector on {region}", flipped, timeout=timeout, every=0.002)
    return result


async def wait_healthy(kube: kube_client.Client, active: str, timeout: float = 30) -> None:
    async def ok() -> bool:
        st = (await testing.get_pair(kube, NS, "pair")).get("status") or {}
        return st.get("phase") == "Healthy" and st.get("activeRegion") == active

    await testing.wait_for(f"Healthy on {active}", ok, timeout=timeout, every=0.05)


async def one_run(
    kube: kube_client.Client, ports: dict[str, int], active: str, key: str, kill: Process | None
) -> tuple[float, float, int, int]:
    target = "region2" if active == "region1" else "region1"
    writer = testing.Writer(kube, NS, "region-api", ports, key=key)
    task = asyncio.create_task(writer.run())
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    if kill is not None:
        kill.kill()
    else:
        await testing.patch_pair(kube, NS, "pair", {"activeRegion": target})
    flip = await wait_region(kube, target) - t0
    await testing.wait_for("a write on the new primary", lambda: _has(writer, target), timeout=10, every=0.002)
    writable = writer.first_ack_after[target] - t0
    await asyncio.sleep(0.2)
    writer.stop()
    await task
    lost = await testing.missing_writes(ports[target], writer.acked, key=key)
    print(f"  {key:<6} {active}->{target}: flip {flip:.3f} s, writable {writable:.3f} s, lost {lost}", flush=True)
    return flip, writable, len(writer.acked), lost


async def _has(writer: testing.Writer, region: str) -> bool:
    return region in writer.first_ack_after


async def bench(state: Path, runs: int) -> int:
    cp = controlplane.start(state / "controlplane")
    kubectl = ["kubectl", "--kubeconfig", str(cp.kubeconfig)]
    procs: list[Process] = []
    kube = await testing.kube_for(cp.kubeconfig)
    try:
        testing.run_kubectl(kubectl, "apply", "-f", str(ROOT / "crds" / "regionpairs.tier0.dev.yaml"))
        testing.run_kubectl(kubectl, "wait", "--for=condition=Established", "crd/regionpairs.tier0.dev")
        testing.run_kubectl(kubectl, "create", "namespace", NS)
        testing.apply(kubectl, NS, testing.service_manifest("region-api"))
        ports = {"region1": free_port(), "region2": free_port()}
        redis = {r: programs.redis(p, state / r) for r, p in ports.items()}
        op, _ = testing.start_operator(cp.kubeconfig, NS, state / "operator.log")
        procs += [op, *redis.values()]
        manifest = testing.pair_manifest("pair", ports, interval=INTERVAL, threshold=THRESHOLD)
        testing.apply(kubectl, NS, manifest)
        await wait_healthy(kube, "region1")

        patch_rtts = []
        for i in range(20):
            t = time.perf_counter()
            await kube.patch_service(NS, "region-api", {"metadata": {"annotations": {"bench/ref": str(i)}}})
            patch_rtts.append(time.perf_counter() - t)

        results: dict[str, tuple[list[float], list[float], int, int]] = {}
        active = "region1"
        flips, writables, acked, lost = [], [], 0, 0
        for i in range(runs):
            f, w, a, lo = await one_run(kube, ports, active, f"sw:{i}", None)
            flips.append(f)
            writables.append(w)
            acked, lost = acked + a, lost + lo
            active = "region2" if active == "region1" else "region1"
            await wait_healthy(kube, active)
        results["switchover"] = (flips, writables, acked, lost)

        flips, writables, acked, lost = [], [], 0, 0
        for i in range(runs):
            f, w, a, lo = await one_run(kube, ports, active, f"fo:{i}", redis[active])
            flips.append(f)
            writables.append(w)
            acked, lost = acked + a, lost + lo
            dead, active = active, ("region2" if active == "region1" else "region1")
            redis[dead] = programs.redis(ports[dead], state / dead)  # comes back; the operator fences it
            procs.append(redis[dead])
            await wait_healthy(kube, active)
        results["failover"] = (flips, writables, acked, lost)
    finally:
        await kube.close()
        for p in reversed(procs):
            p.stop(timeout=5)
        cp.stop()

    detection = INTERVAL * THRESHOLD
    table = Table(
        f"RegionPair transitions under a full-speed writer ({runs} runs each; probe {INTERVAL}s x {THRESHOLD})",
        [
            "scenario",
            "flip p50",
            "flip p95",
            "flip max",
            "writable p50",
            "writable p95",
            "writable max",
            "acked writes",
            "lost",
            "target",
        ],
    )
    sw, fo = results["switchover"], results["failover"]
    table.add(
        "switchover",
        pct(sw[0], 0.5),
        pct(sw[0], 0.95),
        max(sw[0]),
        pct(sw[1], 0.5),
        pct(sw[1], 0.95),
        max(sw[1]),
        sw[2],
        sw[3],
        "flip p50 < 0.5 s, 0 lost",
    )
    table.add(
        "failover",
        pct(fo[0], 0.5),
        pct(fo[0], 0.95),
        max(fo[0]),
        pct(fo[1], 0.5),
        pct(fo[1], 0.95),
        max(fo[1]),
        fo[2],
        fo[3],
        f"flip < detection + 0.5 = {detection + 0.5:.2f} s",
    )
    table.print()
    ref = Table("References measured in the same run", ["reference", "value (s)"])
    ref.add("Service PATCH round trip p50 (apiserver floor of a flip)", statistics.median(patch_rtts))
    ref.add("failover detection time (threshold x interval)", detection)
    ref.print()
    ok = pct(sw[0], 0.5) < 0.5 and sw[3] == 0 and max(fo[0]) < detection + 0.5
    if not ok:
        print("CHECK FAILED: switchover p50 >= 0.5 s, a lost switchover write, or a slow failover", file=sys.stderr)
    return 0 if ok else 1


def main() -> int:
    runs = int(os.environ.get("RUNS", "3"))
    keep = os.environ.get("BENCH_STATE_DIR")  # keep logs (operator.log, redis logs) for a look
    if keep:
        return asyncio.run(bench(Path(keep), runs))
    with tempfile.TemporaryDirectory(prefix="tier0-bench-failover-") as tmp:
        return asyncio.run(bench(Path(tmp), runs))


if __name__ == "__main__":
    sys.exit(main())
