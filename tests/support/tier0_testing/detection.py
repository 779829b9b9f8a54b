"""Failure detection on real programs (the operator's tests and `make bench BENCH=soak`): two
redis-servers reached through toxiproxy, the operator, a RegionPair; faults on the link between
the operator and the active Redis only; a real kill measured.

The RegionPair names each Redis by two proxies: `redis-<region>`, the operator's probes and
commands, and `repl-<region>`, the other region's replication link (`replicationPort`). A fault on
the first is what the operator alone sees (its probes fail, the standby still hears its primary);
a crash is seen by both.

The soak's faults, all on `redis-<active>` (the replication link stays clean):
- latency and jitter: a `latency` toxic on the replies, 250 ms +- 250 ms (0 to 500 ms per reply);
- 5 % packet loss, as TCP shows it to the operator: toxiproxy forwards a byte stream, and on a TCP
  stream a lost segment is not lost but retransmitted one RTO later (200 ms at least on Linux). So
  each 100 ms slot is, with probability 0.05, a retransmission stall: a 200 ms `latency` toxic both
  ways. (`timeout` and `limit_data` close or blackhole the stream, a connection failure rather than
  loss; `slicer` only fragments it.)
- blackouts: the stream held both ways for `blackout` (1.2) seconds (a `timeout` toxic with timeout
  0 stops forwarding until it is removed; TCP would hold the bytes the same way through an outage),
  failing at most two probes in a row at a 1 s interval (a probe fails when its reply is held past
  its 0.8 s timeout): the operator's probes failing alone, with the standby's link healthy, which
  must neither take the fast path nor reach the slow budget;
- a restart of the standby Redis, with a blackout started as it comes back: while it reconnects
  its link is down, the case a naive "link down" witness would turn into a false failover.
"""

import asyncio
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tier0_checker import toxiproxy
from tier0_contract import regionpair as rp
from tier0_dev import programs
from tier0_dev.procs import Process, free_port
from tier0_kube import client as kube_client
from tier0_testing import operator as testing

REGIONS = ("region1", "region2")
SERVICE = "region-api"
PAIR = "pair"


def other(region: str) -> str:
    return REGIONS[1] if region == REGIONS[0] else REGIONS[0]


@dataclass
class Stack:
    state: Path
    kubectl: list[str]
    kube: kube_client.Client
    namespace: str
    toxi: toxiproxy.Toxiproxy
    operator_log: Path
    redis_ports: dict[str, int] = field(default_factory=dict)
    redis: dict[str, Process] = field(default_factory=dict)

    def start_redis(self, region: str) -> None:
        self.redis[region] = programs.redis(
            self.redis_ports[region], self.state / f"redis-{region}", extra=programs.PAIR_WRITE_GUARD
        )

    def restart_redis(self, region: str) -> None:
        self.redis[region].stop(timeout=5)
        self.start_redis(region)

    async def status(self) -> rp.RegionPairStatus:
        return await testing.get_status(self.kube, self.namespace, PAIR)

    async def wait_healthy(self, active: str, timeout: float = 30) -> rp.RegionPairStatus:
        async def check() -> rp.RegionPairStatus | None:
            st = await self.status()
            ok = st.phase == "Healthy" and st.active_region == active and all(r.healthy for r in st.regions)
            return st if ok else None

        found: rp.RegionPairStatus = await testing.wait_for(f"Healthy on {active}", check, timeout, every=0.05)
        return found

    async def wait_ping_period(self, region: str, timeout: float = 10) -> None:
        """Until the operator has made `region`'s primary ping its replica every second."""
        import redis.asyncio as aioredis

        client = aioredis.Redis(port=self.redis_ports[region], decode_responses=True)

        async def check() -> bool:
            got = await client.config_get("repl-ping-replica-period")
            return bool(got.get("repl-ping-replica-period") == "1")

        try:
            await testing.wait_for(f"repl-ping-replica-period 1 on {region}", check, timeout, every=0.05)
        finally:
            await client.aclose()

    async def patch_failover(self, fields: dict[str, Any]) -> None:
        await testing.patch_pair(self.kube, self.namespace, PAIR, {"failover": fields})

    def log_lines(self, pattern: str) -> list[str]:
        text = self.operator_log.read_text(errors="replace") if self.operator_log.exists() else ""
        return [line for line in text.splitlines() if re.search(pattern, line)]

    def stop(self) -> None:
        for proc in self.redis.values():
            proc.stop(timeout=5)
        self.toxi.process.stop(timeout=5)


async def start(
    state: Path,
    kubectl: list[str],
    kube: kube_client.Client,
    namespace: str,
    start_operator: Callable[[], Any],
    operator_log: Path,
    *,
    interval: float = 1.0,
    threshold: int = 3,
    failover: dict[str, Any] | None = None,
) -> Stack:
    """Two Redis behind their proxies, the operator (`start_operator()`, writing `operator_log`) and
    the RegionPair, Healthy on region1 with region1 pinging its replica every second."""
    state.mkdir(parents=True, exist_ok=True)
    toxi = await asyncio.to_thread(toxiproxy.start, state)
    stack = Stack(state, kubectl, kube, namespace, toxi, operator_log)
    try:
        pair_ports, repl_ports = {}, {}
        for r in REGIONS:
            stack.redis_ports[r] = free_port()
            await asyncio.to_thread(stack.start_redis, r)
            pair_ports[r] = toxi.proxy(f"redis-{r}", stack.redis_ports[r])
            repl_ports[r] = toxi.proxy(f"repl-{r}", stack.redis_ports[r])
        testing.apply(kubectl, namespace, testing.service_manifest(SERVICE))
        start_operator()
        manifest = testing.pair_manifest(
            PAIR,
            pair_ports,
            interval=interval,
            threshold=threshold,
            replication_ports=repl_ports,
            failover=failover,
        )
        testing.apply(kubectl, namespace, manifest)
        await stack.wait_healthy("region1", timeout=60)
        await stack.wait_ping_period("region1")
    except BaseException:
        stack.stop()
        raise
    return stack


# --- a real kill -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    region: str
    flip_seconds: float  # SIGKILL of the active Redis -> the Service selects the other region
    detection_seconds: float | None  # status.lastTransition.detectionSeconds
    witnesses: tuple[rp.Witness, ...]
    epoch: int


async def kill_active(stack: Stack) -> Kill:
    """SIGKILL the active region's Redis, wait for the Service to follow, bring the Redis back (the
    operator fences it: a replica of the new primary) and wait for Healthy."""
    before = await stack.status()
    active = before.active_region
    assert active is not None
    target = other(active)
    killed = time.monotonic()
    stack.redis[active].kill()

    async def flipped() -> float | None:
        region = await testing.service_region(stack.kube, stack.namespace, SERVICE)
        return time.monotonic() if region == target else None

    at: float = await testing.wait_for(f"failover to {target}", flipped, timeout=30, every=0.005)
    await asyncio.to_thread(stack.start_redis, active)
    after = await stack.wait_healthy(target)
    await stack.wait_ping_period(target)
    last = after.last_transition
    assert last is not None and last.type == "Failover" and last.to_region == target, last
    return Kill(active, at - killed, last.detection_seconds, last.witnesses, after.epoch)


# --- the soak --------------------------------------------------------------------------------------


@dataclass
class Soak:
    seconds: float = 0.0
    latency: str = ""
    loss_slots: int = 0  # 100 ms slots stalled by a retransmission
    slots: int = 0
    blackouts: int = 0
    standby_restarts: int = 0
    failed_probes: int = 0  # of the active region, from the operator's log
    longest_streak: int = 0  # consecutive failed probes of the active region, at most
    fast_paths: int = 0  # times a witness agreed with failing probes
    failovers: int = 0  # epoch changes
    active_after: str | None = None


class Faults:
    """The soak's faults on the proxy between the operator and `active`'s Redis (module docstring)."""

    def __init__(
        self,
        stack: Stack,
        active: str,
        *,
        latency_ms: int = 250,
        jitter_ms: int = 250,
        loss: float = 0.05,
        slot: float = 0.1,
        rto: float = 0.2,
        blackout: float = 1.2,
        seed: int | None = None,
    ) -> None:
        self.stack, self.proxy = stack, f"redis-{active}"
        self.latency_ms, self.jitter_ms = latency_ms, jitter_ms
        self.loss, self.slot, self.rto, self.blackout = loss, slot, rto, blackout
        self.random = random.Random(seed)
        self.result = Soak(latency=f"{latency_ms} +- {jitter_ms} ms", active_after=active)
        self._lock = asyncio.Lock()

    async def _toxi(self, method: Callable[..., None], *args: Any) -> None:
        async with self._lock:  # one call to toxiproxy's API at a time
            await asyncio.to_thread(method, *args)

    async def latency(self, on: bool) -> None:
        if on:
            attrs = {"latency": self.latency_ms, "jitter": self.jitter_ms}
            await self._toxi(self.stack.toxi.add_toxic, self.proxy, "jitter", "latency", "downstream", attrs)
        else:
            await self._toxi(self.stack.toxi.remove_toxic, self.proxy, "jitter")

    async def lossy(self, until: float) -> None:
        """Retransmission stalls: each slot, with probability `loss`, every byte waits one RTO."""
        toxi = self.stack.toxi
        while time.monotonic() < until:
            self.result.slots += 1
            if self.random.random() >= self.loss:
                await asyncio.sleep(self.slot)
                continue
            self.result.loss_slots += 1
            for stream in ("upstream", "downstream"):
                attrs = {"latency": int(self.rto * 1000)}
                await self._toxi(toxi.add_toxic, self.proxy, f"rto-{stream}", "latency", stream, attrs)
            await asyncio.sleep(self.rto)
            for stream in ("upstream", "downstream"):
                await self._toxi(toxi.remove_toxic, self.proxy, f"rto-{stream}")

    async def black_out(self) -> None:
        """Hold everything both ways for `blackout` seconds (the probes in flight time out)."""
        toxi = self.stack.toxi
        for stream in ("upstream", "downstream"):
            await self._toxi(toxi.add_toxic, self.proxy, f"blackout-{stream}", "timeout", stream, {"timeout": 0})
        await asyncio.sleep(self.blackout)
        for stream in ("upstream", "downstream"):
            await self._toxi(toxi.remove_toxic, self.proxy, f"blackout-{stream}")
        self.result.blackouts += 1

    async def restart_standby(self, standby: str) -> None:
        """Stop the standby Redis, start it again and black the active region out as it returns."""
        await asyncio.to_thread(self.stack.redis[standby].stop, 5)
        await asyncio.to_thread(self.stack.start_redis, standby)
        self.result.standby_restarts += 1
        await self.black_out()


async def soak(stack: Stack, seconds: float, cycle: float = 10.0, seed: int | None = None) -> Soak:
    """`seconds` of the faults on the active region's operator link: latency and loss throughout;
    every `cycle` seconds a blackout, every other one as the restarted standby returns. Counts
    what was injected and what the operator did (0 failovers is the pass)."""
    before = await stack.status()
    active = before.active_region
    assert active is not None
    standby = other(active)
    faults = Faults(stack, active, seed=seed)
    mark = len(stack.log_lines(""))
    started = time.monotonic()
    until = started + seconds
    await faults.latency(True)
    loss = asyncio.create_task(faults.lossy(until))
    try:
        n = 0
        while time.monotonic() + cycle <= until + 0.01:
            await asyncio.sleep(cycle / 2)
            if n % 2:
                await faults.restart_standby(standby)
            else:
                await faults.black_out()
            n += 1
            await asyncio.sleep(max(0.0, started + n * cycle - time.monotonic()))
        await loss
    finally:
        loss.cancel()
        for name in stack.toxi.toxics(f"redis-{active}"):
            stack.toxi.remove_toxic(f"redis-{active}", name)
    result = faults.result
    result.seconds = time.monotonic() - started
    await stack.wait_healthy(active, timeout=30)  # what was injected is over: the pair recovers where it was
    after = await stack.status()
    result.failovers = after.epoch - before.epoch
    result.active_after = after.active_region
    lines = stack.log_lines("")[mark:]
    failed = [m for line in lines if (m := re.search(rf"probe of {active} failed \((\d+) of", line))]
    result.failed_probes = len(failed)
    result.longest_streak = max((int(m.group(1)) for m in failed), default=0)
    result.fast_paths = sum(1 for line in lines if ": fast path: " in line)
    return result
