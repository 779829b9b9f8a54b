"""Ingest throughput beside mosquitto_sub, with and without replicated acknowledgement, in one run.

One broker, one Redis pair (a primary with `min-replicas-to-write 1` and a real `REPLICAOF`
replica, as the local stack and the chart run them). Three persistent sessions subscribe, then go
away: `mosquitto_sub` and two ingest workers in share groups of their own. The device simulator
publishes as fast as one process can while the broker queues every message for all three. Then
each drains its queue alone:

- `mosquitto_sub -C N`: raw receive (C, no processing), the reference;
- the ingest worker with `--no-replicated-ack`: acknowledges after the primary has the batch
  (today's behaviour);
- the ingest worker as shipped: acknowledges after `WAIT 1` saw the batch on the replica.

The data is flushed between the two worker runs, so both do the same work. Each worker's stored
count against the simulator's acknowledged count is its loss, which must be 0; the replicated
worker's rate must be at least 0.9 x the unreplicated one's.

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
TARGET_REPLICATED = 0.9
TARGET_RAW_SHARE = 0.6
"""The worker as shipped (replicated) against raw receive in the same run (issue 23)."""
MODES = {"unreplicated": ["--no-replicated-ack"], "replicated": ["--replicated-ack"]}


def _worker(mode: str, mqtt: int, primary: int, replica: int, log: Path) -> Process:
    argv = [
        PY,
        "-m",
        "tier0_services.ingest",
        "--mqtt-port",
        str(mqtt),
        "--redis-url",
        f"redis://127.0.0.1:{primary}/0",
        "--peer-redis-urls",
        f'["redis://127.0.0.1:{replica}/0"]',
        "--client-id",
        f"bench-ingest-{mode}",
        "--share-group",
        f"bench-{mode}",
        "--metrics-port",
        "0",
        *MODES[mode],
    ]
    return Process(f"ingest-{mode}", argv, log).start()


def _stats(r: redis.Redis) -> dict[str, int]:
    raw: dict[bytes, bytes] = r.hgetall(keys.INGEST_STATS)  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items() if k != b"future_clamped"}


def _drain(worker: Process, r: redis.Redis, acked: int) -> tuple[float, dict[str, int]]:
    """Rate at which `worker` drains `acked` queued messages (first stored to last), and the stats."""
    first_t, first_n, done_t, handled = 0.0, 0, 0.0, 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        handled = sum(_stats(r).values())
        now = time.perf_counter()
        if handled and not first_t:
            first_t, first_n = now, handled
        if handled >= acked:
            done_t = now
            break
        time.sleep(0.02)
    time.sleep(0.5)  # anything beyond `acked` (duplicates) shows up too
    worker.stop()
    rate = (handled - first_n) / (done_t - first_t) if done_t > first_t else 0.0
    return rate, _stats(r)


def main() -> int:
    sub = find_program("mosquitto_sub")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rates: dict[str, float] = {}
    results: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        state = Path(tmp)
        mqtt, p_port, r_port = free_port(), free_port(), free_port()
        broker = programs.mosquitto(mqtt, state / "mosquitto")
        primary = programs.redis(p_port, state / "primary")
        replica = programs.redis(r_port, state / "replica", extra=("--replicaof", "127.0.0.1", str(p_port)))
        p, rr = redis.Redis(port=p_port), redis.Redis(port=r_port)
        procs: list[Process] = [broker, primary, replica]
        try:
            while rr.info("replication").get("master_link_status") != "up":  # type: ignore[union-attr]
                time.sleep(0.05)
            p.config_set("min-replicas-to-write", programs.PAIR_WRITE_GUARD[1])
            p.config_set("min-replicas-max-lag", programs.PAIR_WRITE_GUARD[3])

            # 1. The three persistent sessions subscribe, then leave: the broker queues for them.
            ref = [
                sub,
                "-p",
                str(mqtt),
                "-q",
                "1",
                "-c",
                "-i",
                "bench-ref",
                "-V",
                "mqttv5",
                "-x",
                "3600",
                "-t",
                "og/field/#",
            ]
            subprocess.run([*ref, "-E"], check=True, timeout=10)
            for mode in MODES:
                log = state / f"worker-{mode}.log"
                w = _worker(mode, mqtt, p_port, r_port, log)
                w.wait_ready(lambda log=log: "subscription acknowledged" in log.read_text(), timeout=30)  # type: ignore[misc]
                time.sleep(0.5)
                w.stop()

            # 2. The simulator publishes flat out for SECONDS.
            sim = subprocess.run(
                [
                    PY,
                    "-m",
                    "tier0_simulators.devices",
                    "--devices",
                    str(DEVICES),
                    "--mqtt-port",
                    str(mqtt),
                    "--duration",
                    str(SECONDS),
                    "--metrics-port",
                    "0",
                    "--summary-json",
                    "--report-every",
                    "3600",
                    "--seed",
                    "1",
                ],
                capture_output=True,
                text=True,
                timeout=SECONDS + 120,
            )
            if sim.returncode != 0:
                print(sim.stderr[-3000:], file=sys.stderr)
            summary = json.loads(sim.stdout.strip().splitlines()[-1])
            published, acked = int(summary["published"]), int(summary["acknowledged"])

            # 3. Raw receive rate of mosquitto_sub over its queued session.
            t0 = time.perf_counter()
            subprocess.run([*ref, "-C", str(acked)], stdout=subprocess.DEVNULL, check=True, timeout=300)
            ref_rate = acked / (time.perf_counter() - t0)

            # 4. Each worker drains its session into the pair, from empty data.
            for mode in MODES:
                p.flushall()
                worker = _worker(mode, mqtt, p_port, r_port, state / f"worker-{mode}.log")
                procs.append(worker)
                rates[mode], results[mode] = _drain(worker, p, acked)
            replica_stats = _stats(rr)
        finally:
            for proc in reversed(procs):
                proc.stop()

    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    plain, wait = rates["unreplicated"], rates["replicated"]
    ratio = plain / ref_rate if ref_rate else 0.0
    t = Table(
        f"ingest: {acked:,} device messages, QoS 1, one broker, a Redis pair, one process each",
        ["measure", "value", "reference", "target", "ok"],
    )
    t.add("mosquitto_sub raw receive (msg/s)", ref_rate, "-", "-", "-")
    t.add(
        "ingest, ack after the primary (msg/s)",
        plain,
        f"{ratio:.2f} x mosquitto_sub",
        f">= {TARGET_RATE:,} and >= 0.5 x",
        _yes(plain >= TARGET_RATE and ratio >= 0.5),
    )
    t.add(
        "ingest, ack after WAIT 1 (replicated, msg/s)",
        wait,
        f"{wait / plain:.2f} x ack after the primary" if plain else "-",
        f">= {TARGET_REPLICATED} x",
        _yes(plain > 0 and wait >= TARGET_REPLICATED * plain),
    )
    t.add(
        "ingest as shipped (replicated) vs raw receive",
        wait,
        f"{wait / ref_rate:.2f} x mosquitto_sub" if ref_rate else "-",
        f">= {TARGET_RATE:,} and >= {TARGET_RAW_SHARE} x",
        _yes(wait >= TARGET_RATE and ref_rate > 0 and wait >= TARGET_RAW_SHARE * ref_rate),
    )
    ok = True
    for mode, s in results.items():
        loss = acked - s.get("stored", 0)
        ok = ok and loss == 0 and s.get("invalid", 0) == 0
        t.add(f"end-to-end loss, {mode} (messages)", loss, f"{acked:,} acked by broker", "0", _yes(loss == 0))
        counts = "/".join(str(s.get(k, 0)) for k in ("stored", "duplicate", "stale", "invalid"))
        t.add(f"stored/duplicate/stale/invalid, {mode}", counts, "-", "invalid 0", _yes(s.get("invalid", 0) == 0))
    t.add(
        "replica's stored count after the replicated run",
        replica_stats.get("stored", 0),
        f"{acked:,}",
        "= acked",
        _yes(replica_stats.get("stored", 0) == acked),
    )
    sim_ref = f"{published:,} in {summary['seconds']:.1f} s"
    t.add("simulator publish, 1 process (msg/s)", float(summary["rate"]), sim_ref, "-", "-")
    t.print()
    return 0 if ok else 1


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    sys.exit(main())
