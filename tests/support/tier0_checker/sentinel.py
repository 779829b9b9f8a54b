"""Redis Sentinel under the same writer and faults, for the side-by-side table.

Debian's redis-sentinel: three sentinels on loopback monitoring a primary and a replica with
`down-after-milliseconds` equal to tier0's detection budget. As on the tier0 side, the sentinels
and the replication link reach each Redis through a toxiproxy proxy (each Redis announces its
proxy address), while the clients reach the Redis that Sentinel names directly (clients in the
same region). The writer does what Sentinel users do: discover the primary through the sentinels,
write, count the reply as the acknowledgement (no WAIT), and re-discover after an error.
"""

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from tier0_checker import ledger, toxiproxy
from tier0_dev import programs
from tier0_dev.procs import Process, find_program, free_port, port_open

MASTER = "checker"
KEY = "sentinel:seq"


@dataclass(frozen=True)
class Result:
    fault: str
    failover_time: float
    acked: int
    lost: int


@dataclass
class SentinelWorld:
    state: Path
    toxi: toxiproxy.Toxiproxy
    direct: dict[int, int] = field(default_factory=dict)  # proxy port -> Redis port
    names: dict[int, str] = field(default_factory=dict)  # Redis port -> proxy name
    redis: dict[int, Process] = field(default_factory=dict)
    sentinels: list[int] = field(default_factory=list)
    procs: list[Process] = field(default_factory=list)

    def start_redis(self, port: int, replica_of: int | None = None) -> None:
        proxy = next(p for p, d in self.direct.items() if d == port)
        extra: tuple[str, ...] = ("--replica-announce-ip", "127.0.0.1", "--replica-announce-port", str(proxy))
        if replica_of is not None:
            extra += ("--replicaof", "127.0.0.1", str(replica_of))
        self.redis[port] = programs.redis(port, self.state / f"redis-{port}", persistent=True, extra=extra)

    def stop(self) -> None:
        for proc in [*self.procs, *self.redis.values(), self.toxi.process]:
            proc.stop(timeout=5)


def _sentinel(state: Path, port: int, master_proxy: int, budget_ms: int) -> Process:
    d = state / f"sentinel-{port}"
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "sentinel.conf"  # sentinel rewrites it: one file each
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {d}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {master_proxy} 2\n"
        f"sentinel down-after-milliseconds {MASTER} {budget_ms}\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    proc = Process(f"sentinel-{port}", [find_program("redis-sentinel"), str(conf)], d / "sentinel.log").start()
    return proc.wait_ready(lambda: port_open(port), timeout=15)


async def start(state: Path, budget: float) -> SentinelWorld:
    state.mkdir(parents=True, exist_ok=True)
    w = SentinelWorld(state, toxiproxy.start(state))
    try:
        a, b = free_port(), free_port()
        for port in (a, b):
            proxy = w.toxi.proxy(f"sentinel-redis-{port}", port)
            w.direct[proxy], w.names[port] = port, f"sentinel-redis-{port}"
        proxy_a = next(p for p, d in w.direct.items() if d == a)
        w.start_redis(a)
        w.start_redis(b, replica_of=proxy_a)
        for _ in range(3):
            port = free_port()
            w.procs.append(_sentinel(state, port, proxy_a, int(budget * 1000)))
            w.sentinels.append(port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # every sentinel knows the replica and the other two
            ready = 0
            for port in w.sentinels:
                c = aioredis.Redis(port=port, decode_responses=True)
                try:
                    info = await c.execute_command("SENTINEL", "MASTER", MASTER)  # type: ignore[no-untyped-call]
                    fields = dict(zip(info[::2], info[1::2], strict=True))
                    ready += fields.get("num-slaves") == "1" and fields.get("num-other-sentinels") == "2"
                except RedisError:
                    pass
                finally:
                    await c.aclose()
            if ready == 3:
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError("sentinels did not discover the replica and each other within 30 s")
    except BaseException:
        w.stop()
        raise
    return w


@dataclass
class SentinelWriter:
    w: SentinelWorld
    devices: int
    rate: float
    acked: ledger.Ledger = field(default_factory=ledger.Ledger)
    acks: list[tuple[float, int]] = field(default_factory=list)
    """(time, Redis port) of every acknowledged write."""
    paused: bool = False
    _stop: bool = False

    async def run(self) -> None:
        sentinel = Sentinel([("127.0.0.1", p) for p in self.w.sentinels], socket_timeout=0.5)  # type: ignore[no-untyped-call]
        seq: dict[str, int] = {}
        k = 0
        while not self._stop:
            try:
                _, proxy = await sentinel.discover_master(MASTER)
            except RedisError:
                await asyncio.sleep(0.05)
                continue
            port = self.w.direct[int(proxy)]
            client = aioredis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
            start, done = time.monotonic(), 0
            try:
                while not self._stop:
                    await asyncio.sleep(0.005)
                    due = int((time.monotonic() - start) * self.rate) - done
                    for _ in range(due):
                        done += 1
                        if self.paused:
                            continue
                        device = f"S-{k % self.devices:05d}"
                        k += 1
                        n = seq.get(device, 0) + 1
                        seq[device] = n
                        at = time.time()
                        await client.hset(KEY, device, str(n))  # type: ignore[misc]
                        self.acked.record(ledger.Ack(device, n, at))
                        self.acks.append((time.time(), port))
            except (RedisError, OSError):
                await asyncio.sleep(0.05)  # like a client's retry delay, then ask the sentinels again
            finally:
                await client.aclose()

    def first_ack_after(self, t: float, not_port: int) -> float:
        return next((at for at, port in self.acks if at > t and port != not_port), math.nan)


async def _master_port(w: SentinelWorld) -> int:
    c = aioredis.Redis(port=w.sentinels[0], decode_responses=True)
    try:
        _, proxy = await c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)  # type: ignore[no-untyped-call]
    finally:
        await c.aclose()
    return w.direct[int(proxy)]


async def _wait_replica(port: int, timeout: float = 60) -> None:
    """Until the Redis on `port` replicates with its link up (Sentinel reconfigured it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c = aioredis.Redis(port=port, socket_timeout=0.5)
        try:
            info = await c.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                return
        except (RedisError, OSError):
            pass
        finally:
            await c.aclose()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"Redis {port} did not rejoin as a replica within {timeout:.0f} s")


async def _check(w: SentinelWorld, wr: SentinelWriter) -> ledger.Verdict:
    wr.paused = True
    await asyncio.sleep(0.3)
    acks = wr.acked.take()
    c = aioredis.Redis(port=await _master_port(w), decode_responses=True)
    try:
        raw = await c.hgetall(KEY)  # type: ignore[misc]
    finally:
        await c.aclose()
    wr.paused = False
    return ledger.check(acks, {d: int(s) for d, s in raw.items()})


async def run(state: Path, rate: float, devices: int, budget: float) -> list[Result]:
    w = await start(state, budget)
    wr = SentinelWriter(w, devices, rate)
    task = asyncio.create_task(wr.run())
    out: list[Result] = []
    try:
        await asyncio.sleep(2.0)
        await _check(w, wr)  # warm-up writes are not part of either fault

        old = await _master_port(w)
        t0 = time.time()
        w.redis[old].kill()
        deadline = time.monotonic() + 60
        while math.isnan(wr.first_ack_after(t0, old)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        failover = wr.first_ack_after(t0, old) - t0
        w.start_redis(old)  # back with its data; Sentinel makes it a replica of the new primary
        await _wait_replica(old)
        v = await _check(w, wr)
        out.append(Result("kill -9 of the primary", failover, v.acked, v.lost))

        old = await _master_port(w)
        t0 = time.time()
        w.toxi.cut(w.names[old])
        deadline = time.monotonic() + 60
        while await _master_port(w) == old and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # as long as tier0's partition lasts after its failover
        w.toxi.heal(w.names[old])
        await _wait_replica(old)
        deadline = time.monotonic() + 30
        while math.isnan(wr.first_ack_after(t0, old)) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        v = await _check(w, wr)
        out.append(Result("primary cut from control + replica", wr.first_ack_after(t0, old) - t0, v.acked, v.lost))
    finally:
        wr._stop = True
        await asyncio.gather(task, return_exceptions=True)
        w.stop()
    return out
