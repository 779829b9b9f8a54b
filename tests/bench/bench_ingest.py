"""Ingest throughput beside mosquitto_sub, end-to-end loss at QoS 1, simulator publish rate.

One run, one broker: the ingest worker's persistent session and a `mosquitto_sub` persistent
session are both subscribed, then go away; the device simulator publishes as fast as one process
can (its rate is the simulator figure) while the broker queues every message for both sessions.
Then each drains its queue alone: `mosquitto_sub -C N` (raw receive, C, no processing) and the
ingest worker (validate, Lua write to Redis, ack). Their rates side by side are the figure; the
worker's stored count against the simulator's acknowledged count is the loss, which must be 0.

Environment: BENCH_INGEST_SECONDS (simulator publishing time, default 8), BENCH_INGEST_DEVICES
(fleet size, default 50000: more than one process can publish per second, so it runs flat out).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from table import Table

from tier0_contract import keys
from tier0_dev import programs
from tier0_dev.procs import Process, find_program, free_port

PY = sys.executable
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", "8"))
DEVICES = int(os.environ.get("BENCH_INGEST_DEVICES", "50000"))
TARGET_RATE = 40_000


def _worker(mqtt: int, redis_port: int, log: Path) -> Process:
    argv = [PY, "-m", "tier0_services.ingest", "--mqtt-port", str(mqtt), "--redis-url",
            f"redis://127.0.0.1:{redis_port}/0", "--client-id", "bench-ingest", "--metrics-port", "0"]  # fmt: skip
    return Process("ingest", argv, log).start()


def _stats(r: redis.Redis) -> dict[str, int]:
    raw: dict[bytes, bytes] = r.hgetall(keys.INGEST_STATS)  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def main() -> int:
    sub = find_program("mosquitto_sub")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        state = Path(tmp)
        mqtt, redis_port = free_port(), free_port()
        broker = programs.mosquitto(mqtt, state / "mosquitto")
        store = programs.redis(redis_port, state / "redis")
        r = redis.Redis(port=redis_port)
        procs: list[Process] = [broker, store]
        try:
            # 1. Both persistent sessions subscribe, then leave: the broker queues for them.
            ref = [sub, "-p", str(mqtt), "-q", "1", "-c", "-i", "bench-ref", "-V", "mqttv5", "-x", "3600",
                   "-t", "og/field/#"]  # fmt: skip
            subprocess.run([*ref, "-E"], check=True, timeout=10)
            worker = _worker(mqtt, redis_port, state / "worker.log")
            log = state / "worker.log"
            worker.wait_ready(lambda: "subscription acknowledged" in log.read_text(), timeout=30)
            time.sleep(0.5)  # the SUBACK
            worker.stop()

            # 2. The simulator publishes flat out for SECONDS.
            sim = subprocess.run(
                [PY, "-m", "tier0_simulators.devices", "--devices", str(DEVICES), "--mqtt-port", str(mqtt),
                 "--duration", str(SECONDS), "--metrics-port", "0", "--summary-json", "--report-every", "3600",
                 "--seed", "1"],
                capture_output=True, text=True, timeout=SECONDS + 120,
            )  # fmt: skip
            if sim.returncode != 0:
                print(sim.stderr[-3000:], file=sys.stderr)
            summary = json.loads(sim.stdout.strip().splitlines()[-1])
            published, acked = int(summary["published"]), int(summary["acknowledged"])

            # 3. Raw receive rate of mosquitto_sub over its queued session.
            t0 = time.perf_counter()
            subprocess.run([*ref, "-C", str(acked)], stdout=subprocess.DEVNULL, check=True, timeout=300)
            ref_rate = acked / (time.perf_counter() - t0)

            # 4. The ingest worker drains its session into Redis.
            worker = _worker(mqtt, redis_port, state / "worker.log")
            procs.append(worker)
            first_t, first_n, done_t, handled = 0.0, 0, 0.0, 0
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                s = _stats(r)
                handled = sum(s.values())
                now = time.perf_counter()
                if handled and not first_t:
                    first_t, first_n = now, handled
                if handled >= acked:
                    done_t = now
                    break
                time.sleep(0.02)
            time.sleep(0.5)  # anything beyond `acked` (duplicates) shows up too
            s = _stats(r)
            worker_rate = (handled - first_n) / (done_t - first_t) if done_t > first_t else 0.0
            stored = s.get("stored", 0)
            loss = acked - stored
        finally:
            for p in reversed(procs):
                p.stop()

    ratio = worker_rate / ref_rate if ref_rate else 0.0
    t = Table(
        f"ingest: {acked:,} device messages, QoS 1, one broker, one process each",
        ["measure", "value", "reference", "target", "ok"],
    )
    t.add("mosquitto_sub raw receive (msg/s)", ref_rate, "-", "-", "-")
    t.add("ingest worker, 1 process (msg/s)", worker_rate, f"{ratio:.2f} x mosquitto_sub",
          f">= {TARGET_RATE:,} and >= 0.5 x", _yes(worker_rate >= TARGET_RATE and ratio >= 0.5))  # fmt: skip
    t.add("end-to-end loss at QoS 1 (messages)", loss, f"{acked:,} acked by broker", "0", _yes(loss == 0))
    counts = "/".join(str(s.get(k, 0)) for k in ("stored", "duplicate", "stale", "invalid"))
    t.add("stored / duplicate / stale / invalid", counts, "-", "invalid 0", _yes(s.get("invalid", 0) == 0))
    sim_ref = f"{published:,} in {summary['seconds']:.1f} s"
    t.add("simulator publish, 1 process (msg/s)", float(summary["rate"]), sim_ref, "-", "-")
    t.print()
    return 0 if loss == 0 and s.get("invalid", 0) == 0 else 1


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    sys.exit(main())
