"""The transitions checker: does the telemetry pipeline follow every transition and fault?

One run on real programs on free loopback ports (see tests/support/tier0_checker): a device writer
(MQTT QoS 1, acknowledged = PUBACKed) and an activity writer (AMQP, acknowledged = confirmed) at a
steady rate, then switchover, kill -9 of the active Redis, of the active ingest worker, of the
operator mid-switchover, a broker restart, a partition (toxiproxy cuts the active Redis from
the operator and from the replica) and a cut of the replication link alone. After the first
switchover the old active region stays standby for BENCH_TRANSITIONS_SOAK seconds while its
worker's RSS and the broker's store are sampled. In the same run, Redis Sentinel (Debian's
redis-sentinel, three sentinels, down-after-milliseconds = tier0's detection budget) under the
same writer rate, kill -9 and partition. Prints the tables; exits 1 when an acknowledged message
was lost, one was applied twice, two primaries both acknowledged, or freshness p99 missed 1 s.

Environment: BENCH_TRANSITIONS_SOAK (seconds as standby, default 300), BENCH_TRANSITIONS_RATE
(device messages/s, default 100), BENCH_TRANSITIONS_RUNS (repetitions of the scenarios, default 1),
BENCH_TRANSITIONS_SCENARIOS (comma list, default all), BENCH_TRANSITIONS_SENTINEL (0 to skip),
BENCH_STATE_DIR (keep logs there).
"""

import asyncio
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from tier0_checker import checker, report, sentinel, world  # noqa: E402

INTERVAL, THRESHOLD = 0.5, 3


def _env(name: str, default: str) -> str:
    return os.environ.get(f"BENCH_TRANSITIONS_{name}", default)


async def bench(state: Path) -> int:
    soak = float(_env("SOAK", "300"))
    rate = float(_env("RATE", "100"))
    runs = int(_env("RUNS", "1"))
    scenarios = [s for s in _env("SCENARIOS", ",".join(checker.SCENARIOS)).split(",") if s]
    # A device publishes once per 60 s: longer than any scenario, so every acknowledged message
    # is still its device's newest when it is checked.
    devices = int(rate * 60)
    print(f"load average before: {checker.load()}", flush=True)
    w = await asyncio.to_thread(world.start, state / "tier0", INTERVAL, THRESHOLD)
    try:
        c = checker.Checker(w, rate=rate, devices=devices, activity_rate=10, settle=15)
        result = await c.run(scenarios, soak, runs)
    finally:
        w.stop()
    side: list[sentinel.Result] = []
    if _env("SENTINEL", "1") != "0":
        side = await sentinel.run(state / "sentinel", rate=rate, devices=devices, budget=INTERVAL * THRESHOLD)
    print(f"load average after: {checker.load()}", flush=True)
    return report.render(result, side, INTERVAL, THRESHOLD, rate, soak)


def main() -> int:
    keep = os.environ.get("BENCH_STATE_DIR")
    if keep:
        return asyncio.run(bench(Path(keep)))
    with tempfile.TemporaryDirectory(prefix="tier0-bench-transitions-") as tmp:
        return asyncio.run(bench(Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
