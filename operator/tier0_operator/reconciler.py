"""The per-pair loop run by the kopf daemon: probe both regions, decide, act, write status.

One loop per RegionPair is the only actor on that pair inside this process, so steps never race
each other; across processes only the Lease holder acts (lease.py) and a transition starts with a
compare-and-set on status.epoch. Everything that decides is in decide.py / transition.py /
patches.py; this module only performs I/O in the order they say.
"""

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from tier0_operator import metrics
from tier0_operator.decide import (
    Acknowledge,
    Action,
    Blocked,
    Bootstrap,
    MakeReplica,
    Nothing,
    Promote,
    Resume,
    StartFailover,
    StartSwitchover,
    conditions_of,
    count_failures,
    decide,
    lag_bytes,
    phase_of,
)
from tier0_operator.kube import ApiError, Kube
from tier0_operator.lease import Elector
from tier0_operator.model import (
    GROUP,
    PLURAL,
    VERSION,
    Outcome,
    PairSpec,
    PairStatus,
    Phase,
    Probe,
    Transition,
    TransitionType,
    now,
    parse_spec,
)
from tier0_operator.patches import (
    build_event,
    build_last_transition,
    build_service_patch,
    build_status,
    build_transition_start,
    merge_conditions,
    selector_region,
)
from tier0_operator.redisops import RegionRedis
from tier0_operator.settings import Settings
from tier0_operator.transition import next_step

log = logging.getLogger("tier0_operator.reconciler")
GROUP_PATH = f"/apis/{GROUP}/{VERSION}"
STATUS_REFRESH_SECONDS = 5.0  # unchanged status is still rewritten this often (lastProbeTime)
ROUTE_CHECK_SECONDS = 10.0  # how often the Service selectors are verified outside transitions


class PairReconciler:
    def __init__(
        self,
        namespace: str,
        name: str,
        uid: str,
        kube: Kube,
        elector: Elector,
        settings: Settings,
    ) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.pair = f"{namespace}/{name}"
        self.kube, self.elector, self.settings = kube, elector, settings
        self.status = PairStatus()
        self.conditions: list[dict[str, Any]] = []
        self.clients: dict[str, RegionRedis] = {}
        self._client_key: tuple[Any, ...] = ()
        self._last_written: dict[str, Any] | None = None
        self._last_write = 0.0
        self._last_route_check = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self.regions: list[str] = []

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, body: Mapping[str, Any], stopped: Any, wake: asyncio.Event) -> None:
        self.status = PairStatus.from_dict(body.get("status"))
        self.conditions = list((body.get("status") or {}).get("conditions") or [])
        was_leader = False
        try:
            while not stopped:
                spec = parse_spec(body["spec"])
                generation = int(body["metadata"].get("generation", 0))
                leader = self.elector.is_leader()
                if leader and not was_leader:
                    await self._reload_status()  # another replica may have acted meanwhile
                    self._last_route_check = 0.0
                was_leader = leader
                started = time.monotonic()
                try:
                    busy = await self.tick(spec, generation, leader)
                except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
                    # The apiserver hiccuped: report and go on (kopf would back off a crashed daemon
                    # for a minute). An unfinished transition is resumed from status next round.
                    log.warning("%s: round failed: %s", self.pair, e)
                    busy = False
                if busy:
                    continue
                # A fixed cadence: probes start every interval, however long the round took.
                pause = spec.failover.probe_interval_seconds - (time.monotonic() - started)
                await _sleep_or_wake(max(0.0, pause), wake, stopped)
        finally:
            await self.close()

    async def tick(self, spec: PairSpec, generation: int, leader: bool) -> bool:
        """One probe-decide-act round; True when something changed and the next round is due now."""
        await self._ensure_clients(spec)
        probes = await self.probe_all(spec)
        self.status = self.status.with_(
            failures=count_failures(self.status.failures, probes),
            lag_bytes=lag_bytes(spec, self.status.active_region, probes, self.status.lag_bytes),
        )
        self._observe(probes)
        if not leader:
            return False
        action = decide(spec, self.status, probes)
        if not isinstance(action, Nothing | Blocked):
            log.info("%s: %s", self.pair, action)
        acted = await self.execute(spec, action, probes)
        if acted and isinstance(action, StartSwitchover | StartFailover | Resume):
            return True  # the transition wrote its own status; probe afresh
        await self.write_status(spec, probes, action, generation, force=acted)
        if (
            not acted
            and not spec.paused
            and self.status.active_region
            and time.monotonic() - self._last_route_check > ROUTE_CHECK_SECONDS
        ):
            await self.ensure_routing(spec, self.status.active_region)
        return acted

    async def execute(self, spec: PairSpec, action: Action, probes: dict[str, Probe]) -> bool:
        try:
            match action:
                case Bootstrap(active=active):
                    requested = spec.active_region if spec.active_region == active else None
                    self.status = self.status.with_(
                        active_region=active, requested_region=requested, epoch=max(1, self.status.epoch)
                    )
                    self._event("Bootstrapped", f"{active} is the active region")
                    await self.ensure_routing(spec, active)
                case MakeReplica(region=region, of=of, fencing=fencing):
                    await self.clients[region].replicaof(self.clients[of])
                    if fencing:
                        self._event("Fenced", f"{region} was a writable primary; made it a replica of {of}", True)
                    else:
                        self._event("ReplicationConfigured", f"{region} replicates from {of}")
                case Promote(region=region):
                    await self.clients[region].promote()
                    self._event("Promoted", f"{region} (active, was a replica with no primary) promoted")
                case Acknowledge(region=region):
                    self.status = self.status.with_(requested_region=region)
                case StartSwitchover(to=to):
                    await self.start_transition(spec, "Switchover", to, f"spec.activeRegion set to {to}", 0)
                case StartFailover(to=to, lost_bytes=lost):
                    assert self.status.active_region is not None
                    fails = self.status.failures.get(self.status.active_region, 0)
                    reason = f"{self.status.active_region} failed {fails} consecutive probes"
                    await self.start_transition(spec, "Failover", to, reason, lost)
                case Resume():
                    await self.run_transition(spec)
                case _:
                    return False
        except (TimeoutError, RedisError, OSError) as e:
            log.warning("%s: %s failed: %s", self.pair, action, e)
            return False
        return True

    # -- transitions ----------------------------------------------------------------------------

    async def start_transition(self, spec: PairSpec, kind: TransitionType, to: str, reason: str, lost: int) -> None:
        assert self.status.active_region is not None
        t = Transition(kind, self.status.active_region, to, reason, self.status.epoch + 1, now(), lost)
        phase: Phase = "SwitchingOver" if kind == "Switchover" else "FailingOver"
        patch = build_transition_start(self.status.epoch, t, phase)
        requested = spec.active_region if kind == "Switchover" else self.status.requested_region
        patch.append({"op": "add", "path": "/status/requestedRegion", "value": requested})
        try:
            await self.kube.patch_status(GROUP_PATH, self.namespace, PLURAL, self.name, patch, json_patch=True)
        except ApiError as e:
            if not e.conflict:
                raise
            log.warning("%s: epoch %d moved under us; reloading status", self.pair, self.status.epoch)
            await self._reload_status()
            return
        self.status = self.status.with_(epoch=t.epoch, transition=t, requested_region=requested, phase=phase)
        self._event(f"{kind}Started", f"{kind} {t.from_region} -> {to} (epoch {t.epoch}): {reason}", kind == "Failover")
        await self.run_transition(spec)

    async def run_transition(self, spec: PairSpec) -> None:
        t = self.status.transition
        assert t is not None
        src, dst = spec.region(t.from_region), spec.region(t.to_region)
        timeout = spec.failover.switchover_timeout_seconds
        pause_ms = int((timeout + 2.0) * 1000)  # the pause outlives the wait: a crash cannot leak writes
        hard_deadline = t.started_at + timedelta(seconds=timeout * 3 + 10)
        paused = False
        while True:
            if not self.elector.is_leader():
                log.warning("%s: lost the Lease mid-transition; the new holder resumes it", self.pair)
                return
            pf, pt = await asyncio.gather(self.clients[src.name].probe(None, self._session(), ping=False),
                                          self.clients[dst.name].probe(None, self._session(), ping=False))  # fmt: skip
            at = now()
            step = next_step(t, src.redis, dst.redis, pf, pt, paused, at > t.started_at + timedelta(seconds=timeout))
            if step.kind != "wait":
                log.info("%s: %s step %s (%s)", self.pair, t.type, step.kind, step.why)
            elif at > hard_deadline:
                await self.finish(spec, t, "Failed", f"gave up: {step.why}")
                return
            try:
                match step.kind:
                    case "pause":
                        await self.clients[src.name].pause_writes(pause_ms)
                        paused = True
                    case "wait":
                        await asyncio.sleep(0.001 if pf.reachable and pt.reachable else 0.05)
                    case "demote":
                        await self.clients[src.name].replicaof(self.clients[dst.name])
                    case "promote":
                        if not pf.reachable and t.type == "Switchover":
                            t = Transition(t.type, t.from_region, t.to_region, t.reason, t.epoch, t.started_at,
                                           self.status.lag_bytes)  # fmt: skip
                        await self.clients[dst.name].promote()
                    case "restore":
                        await self.clients[src.name].promote()
                    case "route":
                        await self.route(spec, dst.name)
                        await self._unpause(src.name)
                        await self.finish(spec, t, "Succeeded")
                        return
                    case "rollback":
                        await self._unpause(src.name)
                        await self.finish(spec, t, "RolledBack", step.why)
                        return
                    case "fail":
                        await self.finish(spec, t, "Failed", step.why)
                        return
            except (TimeoutError, RedisError, OSError) as e:
                log.warning("%s: step %s: %s; retrying", self.pair, step.kind, e)
                await asyncio.sleep(0.05)
            _failpoint(self.settings.failpoint, step.kind)

    async def _unpause(self, region: str) -> None:
        try:
            await self.clients[region].unpause()
        except (TimeoutError, RedisError, OSError):
            pass  # unreachable: nothing to release (a pause also expires on its own)

    async def finish(self, spec: PairSpec, t: Transition, outcome: Outcome, why: str = "") -> None:
        completed = now()
        last = build_last_transition(t, outcome, completed, why)
        active = t.to_region if outcome == "Succeeded" else t.from_region
        failures = dict(self.status.failures)
        failures[active] = 0
        self.status = self.status.with_(
            active_region=active, transition=None, last_transition=last, failures=failures,
            lag_bytes=0 if outcome == "Succeeded" else self.status.lag_bytes,
        )  # fmt: skip
        metrics.TRANSITIONS.labels(t.type, outcome).inc()
        metrics.TRANSITION_SECONDS.labels(t.type).observe(last["durationSeconds"])
        metrics.EPOCH.labels(self.pair).set(t.epoch)
        self._event(
            f"{t.type}{'Completed' if outcome == 'Succeeded' else outcome}",
            f"{last['summary']}, epoch {t.epoch}, lost {t.lost_bytes} bytes" + (f": {why}" if why else ""),
            outcome != "Succeeded" or t.type == "Failover",
        )
        patch = {
            "activeRegion": active,
            "transition": None,
            "lastTransition": last,
            "phase": "Degraded",  # the next probe round says Healthy once replication is up
            "lagBytes": self.status.lag_bytes,
        }
        await self.kube.patch_status(GROUP_PATH, self.namespace, PLURAL, self.name, {"status": patch})

    # -- Services -------------------------------------------------------------------------------

    async def route(self, spec: PairSpec, active: str) -> None:
        patch = build_service_patch(spec, active)
        results = await asyncio.gather(
            *(self.kube.patch_service(self.namespace, svc, patch) for svc in spec.services), return_exceptions=True
        )
        for svc, res in zip(spec.services, results, strict=True):
            if isinstance(res, ApiError) and res.status == 404:
                self._event("ServiceMissing", f"Service {svc} not found; its selector cannot follow {active}", True)
            elif isinstance(res, BaseException):
                raise res
        self._last_route_check = time.monotonic()

    async def ensure_routing(self, spec: PairSpec, active: str) -> None:
        self._last_route_check = time.monotonic()
        for svc in spec.services:
            body = await self.kube.get(f"/api/v1/namespaces/{self.namespace}/services/{svc}")
            if body is not None and selector_region(spec, body["spec"].get("selector")) != active:
                log.info("%s: Service %s does not route to %s; patching", self.pair, svc, active)
                await self.kube.patch_service(self.namespace, svc, build_service_patch(spec, active))
                self._event("Routed", f"Service {svc} selector set to {active}")

    # -- status, events, metrics ----------------------------------------------------------------

    async def write_status(
        self, spec: PairSpec, probes: dict[str, Probe], action: Action, generation: int, force: bool = False
    ) -> None:
        phase = phase_of(spec, self.status, probes)
        self.status = self.status.with_(phase=phase)
        self.conditions = merge_conditions(
            self.conditions, conditions_of(spec, self.status, probes, action), now(), generation
        )
        body = build_status(spec, self.status, probes, phase, self.conditions, generation)
        material = _without_probe_times(body)
        if (
            not force
            and material == self._last_written
            and time.monotonic() - self._last_write < STATUS_REFRESH_SECONDS
        ):
            return
        try:
            await self.kube.patch_status(GROUP_PATH, self.namespace, PLURAL, self.name, {"status": body})
        except ApiError as e:
            if e.status == 404:
                return  # deleted meanwhile
            raise
        self._last_written, self._last_write = material, time.monotonic()

    def _event(self, reason: str, message: str, warning: bool = False) -> None:
        log.info("%s: event %s: %s", self.pair, reason, message)
        event = build_event(self.namespace, self.name, self.uid, reason, message, now(), warning)
        task = asyncio.ensure_future(self._post_event(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_event(self, event: dict[str, Any]) -> None:
        try:
            await self.kube.create_event(self.namespace, event)
        except (TimeoutError, ApiError, OSError) as e:
            log.warning("%s: event not posted: %s", self.pair, e)

    def _observe(self, probes: dict[str, Probe]) -> None:
        for p in probes.values():
            metrics.observe_region(self.pair, p.region, p.healthy, p.role)
        metrics.LAG_BYTES.labels(self.pair).set(self.status.lag_bytes)
        metrics.EPOCH.labels(self.pair).set(self.status.epoch)

    async def _reload_status(self) -> None:
        body = await self.kube.get(f"{GROUP_PATH}/namespaces/{self.namespace}/{PLURAL}/{self.name}")
        if body is not None:
            failures = self.status.failures
            self.status = PairStatus.from_dict(body.get("status")).with_(failures=failures)
            self.conditions = list((body.get("status") or {}).get("conditions") or [])
            self._last_written = None

    # -- clients --------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        return self._http

    async def _ensure_clients(self, spec: PairSpec) -> None:
        key = (spec.regions, spec.failover.probe_interval_seconds)
        if key == self._client_key:
            return
        for c in self.clients.values():
            await c.close()
        timeout = min(1.0, max(0.2, spec.failover.probe_interval_seconds * 0.8))
        self.clients = {}
        for r in spec.regions:
            password = None
            if r.redis.password_secret_ref is not None:
                ref = r.redis.password_secret_ref
                password = await self.kube.secret_value(self.namespace, ref.name, ref.key)
                if password is None:
                    self._event("SecretMissing", f"{ref.name}/{ref.key} for {r.name}'s Redis not found", True)
            self.clients[r.name] = RegionRedis(r.name, r.redis, password, timeout)
        self._client_key = key
        self.regions = [r.name for r in spec.regions]

    async def probe_all(self, spec: PairSpec) -> dict[str, Probe]:
        session = self._session()
        probes = await asyncio.gather(*(self.clients[r.name].probe(r.health_url, session) for r in spec.regions))
        return {p.region: p for p in probes}

    async def close(self) -> None:
        # Runs while kopf cancels the daemon at exit: release the HTTP session first.
        if self._http is not None:
            await asyncio.shield(self._http.close())
        for c in self.clients.values():
            await c.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _sleep_or_wake(seconds: float, wake: asyncio.Event, stopped: Any) -> None:
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(_awaitable(stopped))]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        wake.clear()


async def _awaitable(stopped: Any) -> None:
    await stopped.wait()


def _without_probe_times(status: dict[str, Any]) -> dict[str, Any]:
    regions = [
        {k: v for k, v in r.items() if k not in ("lastProbeTime", "replicationOffset")} for r in status["regions"]
    ]
    return {**status, "regions": regions}


def _failpoint(failpoint: str | None, step: str) -> None:
    """Test hook (TIER0_OPERATOR_FAILPOINT=demote): die right after a step, like a SIGKILL would."""
    if failpoint and failpoint == step:
        log.error("failpoint %s: exiting", step)
        os._exit(17)
