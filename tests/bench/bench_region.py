"""`make bench BENCH=region`: losing the active region on a real cluster (issue 18's scenarios).

On the cluster of the e2e tier (the built-in node, or TIER0_E2E_KUBECONFIG) with both charts
installed, RUNS times each (default 3): the active region killed and kept down, cut off by iptables,
drained off its node, and its API rolled, while a client pod calls the global API Service every
10 ms, devices publish through the MQTT Service and users through the AMQP Service, and a reader
pod polls telemetry and activity through the API every 20 ms (tests/system/regionrun.py says what
each figure is and how it is measured). Reference in the same run: a bare selector flip of a
Service between two trivial pods (bench_cluster's), the floor kube-proxy sets. Exits non-zero when
an acknowledged message was lost or two primaries accepted writes (a failed check, not a figure).
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

import bench_cluster  # noqa: E402
import kit  # noqa: E402
import regionrun  # noqa: E402
from table import Table  # noqa: E402

from tier0_dev.node import cluster, deploy  # noqa: E402
from tier0_dev.node.layout import Layout  # noqa: E402

RUNS = int(os.environ.get("RUNS", "3"))
REFERENCE = "bare selector flip (reference)"
COLUMNS = [
    "scenario",
    "outage p50 s",
    "outage p99 s",
    "errors after retry",
    "transition",
    "devices publishing after flip p99 s",
    "fresh telemetry p99 s",
    "fresh activity p99 s",
    "acked device msgs lost",
    "acked activity msgs lost",
    "dual-primary writes",
    "rejoin p99 s",
    "target",
]


def main() -> int:
    print(f"load average before: {os.getloadavg()}", flush=True)
    kubeconfig, started = kit.started_kubeconfig()
    try:
        c = kit.Cluster(kubeconfig)
        deploy.install(c.rel)
        bench_cluster.trivial_pair(c)
        flips: list[kit.Outcome] = []
        results: dict[str, list[regionrun.RegionRun]] = {name: [] for name in regionrun.SCENARIOS}
        for i in range(RUNS):
            flips.append(bench_cluster.flip(c, "green" if i % 2 == 0 else "blue")[0])
            for name, scenario in regionrun.SCENARIOS.items():
                start = time.monotonic()
                r = regionrun.run(c, scenario)
                results[name].append(r)
                print(f"run {i + 1}/{RUNS}, {time.monotonic() - start:.0f} s: {regionrun.describe(r)}", flush=True)
        bench_cluster.remove_trivial_pair(c)
        detection = regionrun.detection_s(c)
        table = Table(
            f"Losing the active region (client every 10 ms through the global Service, fresh connection, "
            f"1 retry; detection budget {detection:.0f} s), {RUNS} runs each",
            COLUMNS,
        )
        outage = [o.outage_s for o in flips]
        reference = [kit.percentile(outage, 50), kit.percentile(outage, 99), sum(o.errors for o in flips)]
        table.add(REFERENCE, *reference, *["-"] * (len(COLUMNS) - 5), "floor set by kube-proxy")
        for name, runs in results.items():
            table.add(*regionrun.row(name, runs), regionrun.SCENARIOS[name].target)
        table.print()
        for name, runs in results.items():
            missed = regionrun.misses(name, runs, detection)
            print(f"{name}: {'targets met' if not missed else 'missed: ' + '; '.join(missed)}", flush=True)
        print(f"load average after: {os.getloadavg()}", flush=True)
        failed = [r for runs in results.values() for r in runs if r.device_lost or r.activity_lost or r.dual_writes]
        return 1 if failed else 0
    finally:
        if started:
            cluster.down(Layout.default())


if __name__ == "__main__":
    sys.exit(main())
