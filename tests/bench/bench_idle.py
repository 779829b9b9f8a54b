"""What a quiet region pair costs: CPU of each region's ingest worker and API with no traffic, and
the first message after a switchover, which the quiet workers must not be slow to pick up.

Real programs on free loopback ports (no node, no operator): two redis-servers as a pair (region1
primary, region2 its replica, the chart's write guard), Mosquitto, one ingest worker per region
(both in the share group, connected to both Redis) and one region API per region. After a settle,
each process's CPU (utime + stime from /proc/<pid>/stat) is sampled over BENCH_IDLE_SECONDS
(default 30) with no device publishing: the fixed cost of being deployed. Only what a deployment
always sends: each API's `/health` once a second (the operator's probe). Before the window each API
is sent BENCH_IDLE_BACKLOG_SECONDS (default 5) of `/health` by wrk, a few thousand requests that
stand in for the hours of probes a standby API has answered by the time anyone looks (its access
log cannot be written to a replica and waits in memory). redis-server and Mosquitto are the
reference (C programs that sleep in epoll when idle).

Then the switchover an operator would make (region2 `REPLICAOF NO ONE`, its `pair:epoch` raised,
region1 made its replica) and one device message published (QoS 1) the moment region2 is
promoted: the time until that message is in region2's Redis is the takeover freshness, target
< 1 s (a quiet worker must wake at once, not at its next poll).

Targets: each standby component (region2's ingest worker and API) at most 3% of a core idle.
Exits 1 when a target is missed or the message is not stored within 5 s.

Environment: BENCH_IDLE_SECONDS (measurement window, default 30), BENCH_IDLE_PROFILE (a folder:
py-spy records region2's worker and API over the window into flame graphs there; the CPU figures of
such a run include py-spy's pauses).
"""

import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import cast

import redis
from table import Table

from tier0_checker import launch
from tier0_contract import keys
from tier0_dev import programs
from tier0_dev.procs import Process, find_program, free_port
from tier0_testing import api as testing

SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "30"))
PROFILE = os.environ.get("BENCH_IDLE_PROFILE", "")
BACKLOG_SECONDS = float(os.environ.get("BENCH_IDLE_BACKLOG_SECONDS", "5"))
SETTLE = 5.0
PROBE_EVERY = 1.0
STANDBY_TARGET = 0.03
"""Share of one core a standby component may use idle."""
FRESHNESS_TARGET = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def measure(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Share of one core each pid used over `seconds`."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    return {name: (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}


def profilers(pids: dict[str, int], seconds: float) -> list[subprocess.Popen[bytes]]:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(f"BENCH_IDLE_PROFILE needs py-spy: {Path(sys.executable).parent}/pip install py-spy")
    Path(PROFILE).mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [str(spy), "record", "--pid", str(pid), "--duration", str(round(seconds)), "--format", "flamegraph"]
            + ["--output", str(Path(PROFILE) / f"idle-{name}.svg")],
            stdout=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def backlog(urls: list[str], seconds: float) -> None:
    for url in urls:
        argv = [find_program("wrk"), "-t1", "-c8", f"-d{max(1, round(seconds))}s", url]
        subprocess.run(argv, capture_output=True, timeout=seconds + 60, check=True)


def probe(urls: list[str], stop: threading.Event) -> None:
    """GET each URL every PROBE_EVERY seconds on a fresh connection, as the operator's probe does."""
    while not stop.wait(PROBE_EVERY):
        for url in urls:
            try:
                urllib.request.urlopen(url, timeout=1).close()
            except OSError:
                pass


def takeover(ports: dict[str, int], mqtt_port: int) -> float:
    """Switch the pair over to region2 and publish one message at once; seconds until region2 holds it."""
    new, old = redis.Redis(port=ports["region2"]), redis.Redis(port=ports["region1"])
    device = testing.fleet(1)[0]  # the Redis is new: this device is not in it yet
    topic, payload = testing.message(device, time.time(), random.Random(0))
    try:
        epoch = int(cast(bytes | None, old.get(keys.PAIR_EPOCH)) or 0) + 1
        # The pair's policy while its new replica catches up: keep accepting (the operator lowers
        # it so), so the figure is the workers', not the replication sync's.
        new.config_set("min-replicas-to-write", 0)
        new.replicaof("NO", "ONE")
        new.set(keys.PAIR_EPOCH, epoch)
        promoted = time.monotonic()
        old.replicaof("127.0.0.1", ports["region2"])
        pub = [find_program("mosquitto_pub"), "-p", str(mqtt_port), "-q", "1", "-t", topic.decode()]
        subprocess.run([*pub, "-m", payload.decode()], check=True, timeout=5)
        while time.monotonic() - promoted < 5:
            if new.zscore(keys.DEVICES_LAST_SEEN, device.device_id) is not None:
                return time.monotonic() - promoted
            time.sleep(0.005)
        return float("inf")
    finally:
        new.close()
        old.close()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        state = Path(tmp)
        ports = {"region1": free_port(), "region2": free_port()}
        mqtt_port = free_port()
        procs: dict[str, Process] = {}
        health: list[str] = []
        try:
            print("load average before the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
            guard = programs.PAIR_WRITE_GUARD
            procs["redis region1"] = programs.redis(ports["region1"], state / "redis-1", extra=guard)
            replica = (*guard, "--replicaof", "127.0.0.1", str(ports["region1"]))
            procs["redis region2"] = programs.redis(ports["region2"], state / "redis-2", extra=replica)
            procs["mosquitto"] = programs.mosquitto(mqtt_port, state / "mosquitto")
            for region in ports:
                log = state / f"ingest-{region}.log"
                procs[f"ingest {region}"] = launch.ingest_worker(region, ports, mqtt_port, log)
                api_port = free_port()
                procs[f"api {region}"] = launch.region_api(region, api_port, ports[region], state / f"api-{region}.log")
                health.append(f"http://127.0.0.1:{api_port}/health")
            backlog(health, BACKLOG_SECONDS)
            stop_probes = threading.Event()
            threading.Thread(target=probe, args=(health, stop_probes), daemon=True).start()
            time.sleep(SETTLE)
            pids = {name: p.pid for name, p in procs.items()}
            standby = {"ingest region2", "api region2"}
            spies = profilers({n.replace(" ", "-"): pids[n] for n in standby}, SECONDS) if PROFILE else []
            cpu = measure(pids, SECONDS)
            stop_probes.set()
            for spy in spies:
                spy.wait(timeout=60)
            table = Table(
                f"idle region pair: CPU over {SECONDS:g} s, no devices, /health probed each {PROBE_EVERY:g} s, after "
                f"{BACKLOG_SECONDS:g} s of /health (share of one core; region2 standby)",
                ["process", "CPU % of a core", "target"],
            )
            missed: list[str] = []
            for name, share in cpu.items():
                target = "reference" if name.startswith(("redis", "mosquitto")) else "-"
                if name in standby:
                    target = "met" if share <= STANDBY_TARGET else "MISSED"
                    if target == "MISSED":
                        missed.append(f"{name} {share:.1%} of a core idle")
                table.add(
                    name, f"{share * 100:.2f}", f"{target} (<= {STANDBY_TARGET:.0%})" if name in standby else target
                )
            table.print()
            took = takeover(ports, mqtt_port)
            fresh = Table(
                "switchover to the idle standby: first message published at promotion, stored in region2",
                ["figure", "seconds", "target"],
            )
            ok = took < FRESHNESS_TARGET
            fresh.add("promotion to stored", f"{took:.3f}", f"{'met' if ok else 'MISSED'} (< {FRESHNESS_TARGET:g} s)")
            fresh.print()
            if not ok:
                missed.append(f"takeover freshness {took:.3f} s")
            if missed:
                print("MISSED targets: " + "; ".join(missed), flush=True)
            return 1 if missed else 0
        finally:
            for proc in reversed(procs.values()):
                proc.stop()


if __name__ == "__main__":
    sys.exit(main())
