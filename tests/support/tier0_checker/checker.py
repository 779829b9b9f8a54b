"""The checker's run: writers on, one scenario after another, a verdict after each.

Each scenario injects one fault or transition, measures freshness (from the transition's
completion, read from the RegionPair status, to the first message published after it that the
active region's API returns), lets the system recover (a killed program is started again as a
Deployment would, a partition heals), then pauses the writers and checks every acknowledged
message against the active Redis. Samplers run throughout: both Redis' roles and write counters
every 50 ms (two writable primaries that both stored), and a client reading the API through the
Service every 50 ms (client-visible errors).
"""

import asyncio
import math
import os
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tier0_checker import ledger, world, writer
from tier0_checker.world import World, other, parse_time
from tier0_contract import keys
from tier0_dev.procs import find_program

SCENARIOS = (
    "switchover",
    "kill-redis",
    "kill-worker",
    "kill-operator",
    "broker-restart",
    "partition",
    "partition-replication",
)
REPLICATION_CUT_SECONDS = 6.0
"""How long the replication-only partition lasts: past min-replicas-max-lag (2 s), after which the
cut-off primary refuses writes, and past the operator's at-risk decision (threshold x interval)."""


@dataclass
class Row:
    scenario: str
    acked: int = 0
    lost: int = 0
    unverifiable: int = 0
    dup_applied: int = 0
    redeliveries_refused: int = 0
    """Redelivered messages the store recognised and did not apply (its stale/duplicate counts)."""
    activity_confirmed: int = 0
    activity_lost: int = 0
    freshness: list[float] = field(default_factory=list)
    activity_freshness: list[float] = field(default_factory=list)
    failover_time: list[float] = field(default_factory=list)
    """Fault to the first message published after it readable through the API (kill / partition)."""
    api_errors: int = 0
    dual_primary: int = 0
    notes: list[str] = field(default_factory=list)

    def merge(self, o: "Row") -> None:
        for name in (
            "acked",
            "lost",
            "unverifiable",
            "dup_applied",
            "activity_confirmed",
            "activity_lost",
            "api_errors",
            "dual_primary",
        ):
            setattr(self, name, getattr(self, name) + getattr(o, name))
        self.freshness += o.freshness
        self.activity_freshness += o.activity_freshness
        self.failover_time += o.failover_time
        self.notes += o.notes


@dataclass
class Outcome:
    """What a scenario's action hands to the measurement: the instants freshness counts from, the
    region that must end Healthy, and a freshness measurement already running (kill-worker)."""

    marks: list[float]
    recover: str | None = None
    fresh_task: "asyncio.Task[tuple[list[float], float]] | None" = None


@dataclass
class SoakSample:
    at: float
    standby: str
    worker_rss_mb: float
    broker_rss_mb: float
    broker_stored: int | None


@dataclass
class Report:
    rows: list[Row]
    soak: list[SoakSample]
    sent: int
    activity_sent: int
    errors: list[str]


def rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def broker_stored(port: int) -> int | None:
    """Mosquitto's `$SYS/broker/store/messages/count` (retained, refreshed every sys_interval)."""
    try:
        out = subprocess.run(
            [
                find_program("mosquitto_sub"),
                "-p",
                str(port),
                "-t",
                "$SYS/broker/store/messages/count",
                "-C",
                "1",
                "-W",
                "3",
            ],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return int(out.stdout.strip())
    except (ValueError, subprocess.SubprocessError, OSError):
        return None


class Checker:
    def __init__(self, w: World, rate: float, devices: int, activity_rate: float, settle: float) -> None:
        self.w = w
        self.settle = settle
        self.dev = writer.DeviceWriter(w.mqtt_port, devices, rate)
        assert w.secrets is not None
        self.act = writer.ActivityWriter(w.amqp_port, activity_rate, w.secrets)
        self.clients = {
            r: aioredis.Redis(port=p, socket_timeout=1, socket_connect_timeout=0.5) for r, p in w.redis_ports.items()
        }
        self.http = httpx.AsyncClient(timeout=1.0)
        self.current = Row("startup")
        self.samples: list[ledger.RoleSample] = []
        self._stop = False
        self._excess = 0
        self._refused = 0

    # --- samplers -------------------------------------------------------------------------------

    async def _sample_roles(self) -> None:
        while not self._stop:
            roles: dict[str, str | None] = {}
            stored: dict[str, int | None] = {}
            for r, c in self.clients.items():
                try:
                    info = await c.info("replication")
                    roles[r] = str(info.get("role"))
                    stored[r] = int(await c.hget(keys.INGEST_STATS, "stored") or 0)  # type: ignore[misc]
                except (RedisError, OSError):
                    roles[r], stored[r] = None, None
            sample = ledger.RoleSample(time.time(), roles, stored)
            if self.samples:
                count, _ = ledger.dual_primary_acks([self.samples[-1], sample])
                self.current.dual_primary += count
            self.samples.append(sample)
            await asyncio.sleep(0.05)

    async def _api_client(self) -> None:
        """A client of the global Service: resolves the selector, reads the site, counts errors."""
        region: str | None = None
        while not self._stop:
            await asyncio.sleep(0.05)
            try:
                region = await self.w.kube.service_region() or region
            except OSError:
                pass
            if region is None:
                continue
            try:
                r = await self.http.get(
                    f"http://127.0.0.1:{self.w.api_ports[region]}/api/devices/metrics/site/{writer.SITE}"
                )
                if r.status_code != 200:
                    self.current.api_errors += 1
            except httpx.HTTPError:
                self.current.api_errors += 1

    # --- measurements ---------------------------------------------------------------------------

    async def fresh(
        self, marks: list[float], timeout: float = 20, region: str | None = None, activity: bool = True
    ) -> tuple[list[float], float]:
        """Seconds from each mark to the first device message published after it readable through
        the active API (the one the Service selects, or `region`'s), and the same for activity
        (from the last mark); nan when not within timeout."""
        out = [math.nan] * len(marks)
        act = math.nan
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (any(math.isnan(x) for x in out) or (activity and math.isnan(act))):
            try:
                via = region or await self.w.kube.service_region() or "region1"
                base = f"http://127.0.0.1:{self.w.api_ports[via]}"
                site = (await self.http.get(f"{base}/api/devices/metrics/site/{writer.SITE}")).json()
                users = (await self.http.get(f"{base}/api/users/activity?limit=1")).json()
            except (httpx.HTTPError, OSError, ValueError):
                await asyncio.sleep(0.02)
                continue
            now = time.time()
            seen = site.get("last_seen") if isinstance(site, dict) else None
            if seen:
                t = parse_time(seen)
                out = [now - m if math.isnan(x) and t >= m else x for x, m in zip(out, marks, strict=True)]
            latest = (users.get("latest") or {}) if isinstance(users, dict) else {}
            if math.isnan(act) and latest.get("timestamp_utc") and parse_time(latest["timestamp_utc"]) >= marks[-1]:
                act = now - marks[-1]
            await asyncio.sleep(0.02)
        return out, act

    async def pair(self) -> dict[str, Any]:
        return await self.w.kube.pair()

    async def active(self) -> str:
        return str(((await self.pair()).get("status") or {}).get("activeRegion"))

    async def wait_transition(self, prev: str | None, target: str, timeout: float = 60) -> float:
        """Until the RegionPair reports a completed transition to `target` newer than `prev`;
        returns its completion time (epoch s)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = (await self.pair()).get("status") or {}
            last = st.get("lastTransition") or {}
            done = last.get("completedAt")
            if done and done != prev and last.get("to") == target and st.get("activeRegion") == target:
                return parse_time(done)
            outcome = last.get("outcome")
            if done and done != prev and outcome == "RolledBack" and last.get("type") == "Switchover":
                # spec.activeRegion still asks for `target`: the operator retries after its backoff.
                note = f"rolled back: {last.get('reason')}"
                if note not in self.current.notes:
                    self.current.notes.append(note)
            elif done and done != prev and outcome not in (None, "Succeeded"):
                raise RuntimeError(f"transition to {target} {outcome}: {last.get('reason')}")
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no completed transition to {target} within {timeout:.0f} s (last {last})")

    async def wait_healthy(self, region: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if world.healthy_on(await self.pair(), region):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"not Healthy on {region} within {timeout:.0f} s: {(await self.pair()).get('status')}")

    async def _prev(self) -> tuple[str, str | None]:
        st = (await self.pair()).get("status") or {}
        return str(st.get("activeRegion")), (st.get("lastTransition") or {}).get("completedAt")

    # --- scenarios: each returns once the system has recovered --------------------------------------

    async def switchover(self, row: Row) -> Outcome:
        active, prev = await self._prev()
        await self.w.kube.patch_pair({"activeRegion": other(active)})
        return Outcome([await self.wait_transition(prev, other(active))])

    async def kill_redis(self, row: Row) -> Outcome:
        active, prev = await self._prev()
        t_kill = time.time()
        self.w.redis[active].kill()
        fresh = asyncio.create_task(self.fresh([t_kill], region=other(active), activity=False))
        done = await self.wait_transition(prev, other(active))
        after = asyncio.create_task(self.fresh([done]))
        row.failover_time += (await fresh)[0]
        await asyncio.to_thread(self.w.start_redis, active)  # back with its data; the operator fences it
        return Outcome([done], recover=other(active), fresh_task=after)

    async def kill_worker(self, row: Row) -> Outcome:
        active, _ = await self._prev()
        t_kill = time.time()
        self.w.workers[active].kill()

        async def replace() -> None:  # a Deployment starts a new pod
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.w.start_worker, active)

        restart = asyncio.create_task(replace())
        fresh = asyncio.create_task(self.fresh([t_kill]))
        await restart
        return Outcome([t_kill], fresh_task=fresh)

    async def kill_operator(self, row: Row) -> Outcome:
        active, prev = await self._prev()
        assert self.w.operator is not None
        log = self.w.operator.log_path
        offset = log.stat().st_size
        await self.w.kube.patch_pair({"activeRegion": other(active)})
        # The operator logs each step before it takes it: kill it at the first one (a switchover
        # takes tens of milliseconds, too short to catch by polling the status).
        step = ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not step:
            with log.open("rb") as f:
                f.seek(offset)
                step = next((line.decode(errors="replace") for line in f if b"Switchover step" in line), "")
            if not step:
                await asyncio.sleep(0.001)
        self.w.operator.kill()
        st = (await self.pair()).get("status") or {}
        seen = step.split("Switchover step ", 1)[-1].split(" ", 1)[0] if step else "none seen"
        row.notes.append(f"operator killed at step {seen}, phase {st.get('phase')}")
        await asyncio.sleep(0.5)
        self.w.start_operator()
        return Outcome([await self.wait_transition(prev, other(active))])

    async def broker_restart(self, row: Row) -> Outcome:
        assert self.w.broker is not None
        self.w.broker.stop()
        await asyncio.to_thread(self.w.start_broker)
        return Outcome([time.time()])

    async def partition(self, row: Row) -> Outcome:
        active, prev = await self._prev()
        t_cut = time.time()
        self.w.toxi.cut(f"redis-{active}")
        self.w.toxi.cut(f"repl-{active}")
        row.notes.append(f"{active} cut from operator + replica")
        try:
            fresh = asyncio.create_task(self.fresh([t_cut], region=other(active), activity=False))
            done = await self.wait_transition(prev, other(active))
            after = asyncio.create_task(self.fresh([done]))
            row.failover_time += (await fresh)[0]
            await asyncio.sleep(2.0)  # the isolated old primary stays reachable by its own region
        finally:
            self.w.toxi.heal(f"redis-{active}")
            self.w.toxi.heal(f"repl-{active}")
        return Outcome([done], recover=other(active), fresh_task=after)

    async def partition_replication(self, row: Row) -> Outcome:
        """The replication link alone cut (the operator still reaches both regions): no failover;
        the primary stops acknowledging after min-replicas-max-lag until the operator decides the
        standby is down (whenStandbyDown), then acknowledges at risk; after the heal the standby
        catches up. Freshness counts from the heal."""
        active, _ = await self._prev()
        self.w.toxi.cut(f"repl-{active}")
        row.notes.append(f"replication link from {active} cut for {REPLICATION_CUT_SECONDS:g} s")
        try:
            await asyncio.sleep(REPLICATION_CUT_SECONDS)
            st = (await self.pair()).get("status") or {}
            row.notes.append(f"during the cut: phase {st.get('phase')}, active {st.get('activeRegion')}")
        finally:
            self.w.toxi.heal(f"repl-{active}")
        return Outcome([time.time()], recover=None)

    # --- the check --------------------------------------------------------------------------------

    async def check(self, row: Row) -> None:
        self.dev.paused = self.act.paused = True
        try:
            await asyncio.sleep(0.5)  # PUBACKs and confirms in flight
            acks = self.dev.ledger.take()
            confirmed = [mid for mid, _ in self.act.take()]
            active = await self.active()
            client = self.clients[active]
            deadline = time.monotonic() + self.settle
            while True:
                try:
                    verdict = ledger.check(acks, await writer.stored_seqs(client, list(acks)))
                    missing = await writer.missing_activity(client, confirmed)
                except (RedisError, OSError) as exc:
                    row.notes.append(f"check read failed: {exc}")
                    await asyncio.sleep(0.5)
                    continue
                if (verdict.lost == 0 and not missing) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            row.acked += verdict.acked
            row.lost += verdict.lost
            row.unverifiable += verdict.unverifiable
            row.activity_confirmed += len(confirmed)
            row.activity_lost += len(missing)
            if verdict.lost_examples:
                row.notes.append("lost e.g. " + ", ".join(verdict.lost_examples[:2]))
            dev_stats = await client.hgetall(keys.INGEST_STATS)  # type: ignore[misc]
            act_stats = await client.hgetall(keys.ACTIVITY_STATS)  # type: ignore[misc]
            # The store applies a message only when it is newer than the device's state, so its
            # history can never hold more applications than distinct messages were sent: any excess
            # is a message applied twice. (Cumulative, as a message may be applied late, in a later
            # scenario than the one it was sent in; a loss can hide a double application.)
            excess = max(0, int(dev_stats.get(b"stored", 0)) - self.dev.sent)
            excess += max(0, int(act_stats.get(b"stored", 0)) - self.act.sent)
            row.dup_applied += max(0, excess - self._excess)
            self._excess = max(self._excess, excess)
            refused = sum(int(dev_stats.get(k, 0)) + int(act_stats.get(k, 0)) for k in (b"stale", b"duplicate"))
            row.redeliveries_refused += max(0, refused - self._refused)
            self._refused = refused
        finally:
            self.dev.paused = self.act.paused = False

    async def scenario(self, name: str) -> Row:
        row = Row(name)
        self.current = row
        actions: dict[str, Callable[[Row], Awaitable[Outcome]]] = {
            "switchover": self.switchover,
            "kill-redis": self.kill_redis,
            "kill-worker": self.kill_worker,
            "kill-operator": self.kill_operator,
            "broker-restart": self.broker_restart,
            "partition": self.partition,
            "partition-replication": self.partition_replication,
        }
        try:
            outcome = await actions[name](row)
            task = outcome.fresh_task
            dev, act = await task if task is not None else await self.fresh(outcome.marks)
            row.freshness += dev
            row.activity_freshness.append(act)
            if outcome.recover:  # after a failover a user sets spec.activeRegion to what is active
                await self.w.kube.patch_pair({"activeRegion": outcome.recover})
            await self.wait_healthy(outcome.recover or await self.active())
        except (TimeoutError, RuntimeError, OSError) as exc:
            row.notes.append(f"FAILED: {exc}")
        await asyncio.sleep(2.0)  # the window checked: the transition and 2 s of steady writes after it
        await self.check(row)
        fresh = ", ".join(f"{x:.3f}" for x in row.freshness)
        print(
            f"  {name:<15} acked {row.acked:>6} lost {row.lost:>5} activity lost {row.activity_lost:>4} "
            f"fresh [{fresh}] s  {'; '.join(row.notes)}",
            flush=True,
        )
        return row

    async def soak(self, seconds: float, every: float) -> list[SoakSample]:
        out = []
        t0 = time.time()
        while True:
            standby = other(await self.active())
            broker = self.w.broker
            out.append(
                SoakSample(
                    time.time() - t0,
                    standby,
                    rss_mb(self.w.workers[standby].pid),
                    rss_mb(broker.pid) if broker else math.nan,
                    await asyncio.to_thread(broker_stored, self.w.mqtt_port),
                )
            )
            if time.time() - t0 >= seconds:
                return out
            await asyncio.sleep(min(every, max(0.0, seconds - (time.time() - t0))))

    async def run(self, scenarios: list[str], soak_seconds: float, runs: int = 1) -> Report:
        activity = threading.Thread(target=self.act.run, daemon=True)
        activity.start()
        tasks = [asyncio.create_task(t) for t in (self.dev.run(), self._sample_roles(), self._api_client())]
        rows: dict[str, Row] = {}
        soak: list[SoakSample] = []
        errors: list[str] = []
        try:
            await asyncio.sleep(2.0)  # writers warm, the site exists
            warm = Row("warm-up (no fault)")
            self.current = warm
            await self.check(warm)
            rows[warm.scenario] = warm
            for run in range(runs):
                for name in scenarios:
                    row = await self.scenario(name)
                    rows.setdefault(name, Row(name)).merge(row)
                    if run == 0 and name == scenarios[0] and soak_seconds > 0:
                        soak_row = Row(f"standby soak ({soak_seconds:.0f} s)")
                        self.current = soak_row
                        soak = await self.soak(soak_seconds, max(1.0, soak_seconds / 10))
                        await self.check(soak_row)
                        rows[soak_row.scenario] = soak_row
        except Exception as exc:  # report what was measured, and why the run stopped
            errors.append(repr(exc))
        finally:
            self._stop = True
            self.dev.stop()
            self.act.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            activity.join(timeout=5)
            await self.http.aclose()
            for c in self.clients.values():
                await c.aclose()
        return Report(list(rows.values()), soak, self.dev.sent, self.act.sent, errors)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
