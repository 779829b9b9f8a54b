"""The per-pair loop run by the kopf daemon: probe both regions, ask the pure core, act, write status.

One loop per RegionPair is the only actor on that pair inside this process, so steps never race
each other; across processes only the Lease holder acts (lease.py) and a transition starts with a
compare-and-set on status.epoch. Every decision is pure: a round's in one call, `rounds.plan()`,
a transition's steps in transition.py; this module only probes and carries out what they say. The
status is written, and Events posted, in one place (reporting.py); the Services move in routing.py.
"""

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from tier0_contract import regionpair as rp
from tier0_kube import client, errors
from tier0_operator import decide, endpoints, hangup, metrics, reporting, rounds, routing, secrets, transition
from tier0_operator.lease import Elector
from tier0_operator.model import NOTHING_SEEN, Probe, RegionSeen, now
from tier0_operator.redisops import RegionRedis
from tier0_operator.settings import Settings

log = logging.getLogger("tier0_operator.reconciler")
ROUTE_CHECK_SECONDS = 10.0  # how often the Service selectors are verified outside transitions
RECHECK_SECONDS = 0.25  # bound of the probe of a region found unreachable by the probe before
# The same inside a transition, whose every step re-probes both regions: a vanished old primary
# would cost RECHECK_SECONDS per step (about 0.5 s per failover); one that is back on the same
# network answers well within this, and one that answers late is fenced by the epoch afterwards.
STEP_RECHECK_SECONDS = 0.05
FAILURE_LOG_EVERY = 60  # consecutive failed probes between two log lines, past the threshold
DEFAULT_INTERVAL_SECONDS = 1.0  # the round cadence while the spec cannot be read
RedisErrors = (TimeoutError, RedisError, OSError)


class PairReconciler:
    def __init__(
        self,
        namespace: str,
        name: str,
        uid: str,
        kube: client.Client,
        elector: Elector,
        settings: Settings,
    ) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.pair = f"{namespace}/{name}"
        self.kube, self.elector, self.settings = kube, elector, settings
        self.reporter = reporting.Reporter(namespace, name, uid, kube)  # status and Events
        self.router = routing.Router(namespace, name, kube, self.reporter)  # the Services
        self.clients: dict[str, RegionRedis] = {}
        self._client_key: tuple[Any, ...] = ()
        self._http: aiohttp.ClientSession | None = None
        self._missing_secrets: set[tuple[str, str]] = set()
        self._missing_generated: set[str] = set()
        self._secrets_due = 0.0
        self.regions: list[str] = []
        self.witness: endpoints.Witness | None = None
        self.hangup: hangup.HangupWatch | None = None
        self.detection = decide.Detection()  # the last round's: a corroborated one probes fast

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, body: Mapping[str, Any], stopped: Any, wake: asyncio.Event) -> None:
        self.reporter.load(body.get("status"))
        self.witness = endpoints.Witness(self.kube, self.namespace, wake)
        self.hangup = hangup.HangupWatch(self.pair, wake)
        was_leader = False
        try:
            while not stopped:
                generation = int((body.get("metadata") or {}).get("generation", 0))
                interval = DEFAULT_INTERVAL_SECONDS
                started = time.monotonic()
                leader = self.elector.is_leader()
                try:
                    if leader and not was_leader:
                        await self.reporter.reload()  # another replica may have acted meanwhile
                        self.router.last_check = 0.0
                        self._secrets_due = 0.0
                    was_leader = leader
                    spec = decide.read_spec(body.get("spec"))
                    if isinstance(spec, decide.Problem):
                        await self.reporter.problem(spec, generation, leader)
                        busy = False
                    else:
                        self.witness.track(spec)
                        busy = await self.tick(spec, generation, leader)
                        self.hangup.track(self.clients.get(self.reporter.status.active_region or ""))
                        interval = decide.next_interval(spec, self.detection)
                except (errors.KubeError, *errors.TRANSPORT_ERRORS) as e:
                    # The apiserver (or a connection of the round) hiccuped: report and go on (kopf would
                    # back off a crashed daemon for a minute). An unfinished transition is resumed from
                    # status next round.
                    log.warning("%s: round failed: %s", self.pair, e)
                    busy = False
                except Exception as e:  # noqa: BLE001 - a bug or an unforeseen state: report, go on
                    # Never a crash loop: the pair keeps its daemon, says why in Ready and an Event,
                    # and the next round tries afresh (the steps are derived, safe to repeat).
                    await self.reporter.failure(e, generation, leader)
                    busy = False
                if busy:
                    continue
                # A fixed cadence: probes start every interval, however long the round took.
                pause = interval - (time.monotonic() - started)
                await _sleep_or_wake(max(0.0, pause), wake, stopped)
        finally:
            await self.close()

    async def tick(self, spec: rp.RegionPairSpec, generation: int, leader: bool) -> bool:
        """One probe-decide-act round; True when something changed and the next round is due now."""
        problem = decide.unknown_regions(spec, self.reporter.status)
        if problem is not None:
            await self.reporter.reload()  # fixed by hand meanwhile? (status is read afresh each round)
            problem = decide.unknown_regions(spec, self.reporter.status)
            if problem is not None:
                await self.reporter.problem(problem, generation, leader)
                return False
        self.reporter.can_act()
        if leader:
            await self.generate_secrets(spec)
        await self._ensure_clients(spec)
        probes = await self.probe_all(spec)
        r = rounds.plan(spec, self.reporter.status, probes, self.seen(), now(), generation)
        corroborated = self.detection.corroborated
        self.reporter.status, self.detection = r.observed, r.detection
        if leader and r.detection.corroborated and not corroborated:
            log.info("%s: fast path: %s; probing every %.2f s", self.pair, "; ".join(r.detection.said), r.interval)
        self._observe(spec, probes, leader)
        if not leader:
            return False
        if not isinstance(r.action, decide.Nothing | decide.Blocked):
            log.info("%s: %s", self.pair, r.action)
        acted = await self.carry_out(spec, r, generation, probes)
        if acted and r.runs_transition:
            return True  # the transition wrote its own status; probe afresh
        if not acted:
            await self.apply_guard(r.guard)
        # The Services as routed meanwhile (Bootstrap routes them) are the reconciler's record.
        await self.reporter.write(r.report.model_copy(update={"services": self.reporter.status.services}), force=acted)
        active = self.reporter.status.active_region
        due = time.monotonic() - self.router.last_check > ROUTE_CHECK_SECONDS or bool(self.router.held)
        if not acted and not spec.paused and active and due:
            await self.router.ensure_routing(spec, active, held_on(spec, active, probes[active]))
        return acted

    async def carry_out(
        self, spec: rp.RegionPairSpec, r: rounds.Round, generation: int, probes: dict[str, Probe]
    ) -> bool:
        """Carry out the round's action; False when there was none or its Redis command failed."""
        try:
            match r.action:
                case decide.MakeReplica(region=region, of=of):
                    await self.clients[region].replicaof(self.clients[of])
                case decide.Promote(region=region):
                    await self.clients[region].promote()
                case decide.StartSwitchover() | decide.StartFailover():
                    assert r.started is not None
                    await self.start_transition(spec, r.started, r.events, generation)
                    return True
                case decide.Resume():
                    await self.run_transition(spec, generation)
                    return True
                case decide.Bootstrap() | decide.Acknowledge():
                    pass  # a change of status only (and Bootstrap's routing, below)
                case decide.Nothing() | decide.Blocked():
                    return False
        except RedisErrors as e:
            log.warning("%s: %s failed: %s", self.pair, r.action, e)
            return False
        self.reporter.status = r.done
        self.reporter.post(r.events)
        if isinstance(r.action, decide.Bootstrap):
            active = r.action.active
            await self.router.ensure_routing(spec, active, held_on(spec, active, probes[active]))
        return True

    async def apply_guard(self, g: decide.Guard | None) -> None:
        """Write the pair's epoch and the write guard into the active primary when it lacks them."""
        if g is None:
            return
        try:
            await self.clients[g.region].apply_guard(g)
        except RedisErrors as e:
            log.warning("%s: guard %s not applied: %s", self.pair, g, e)
            return
        if g.min_replicas_to_write is not None:
            log.info("%s: %s min-replicas-to-write %d", self.pair, g.region, g.min_replicas_to_write)

    # -- transitions ----------------------------------------------------------------------------

    async def start_transition(
        self,
        spec: rp.RegionPairSpec,
        started: rp.RegionPairStatus,
        events: tuple[decide.Event, ...],
        generation: int,
    ) -> None:
        """Write the transition's start (a compare-and-set on the epoch), then run it."""
        if not await self.reporter.write_cas(self.reporter.status.epoch, started):
            return
        metrics.IN_TRANSITION.labels(self.pair).set(1)
        self.reporter.post(events)
        await self.run_transition(spec, generation)

    async def run_transition(self, spec: rp.RegionPairSpec, generation: int) -> None:
        t = self.reporter.status.transition
        assert t is not None
        src, dst = spec.region(t.from_region), spec.region(t.to_region)
        limits = transition.deadlines(spec, t)
        paused = False
        # A failover starts because the active region stopped answering: recheck it fast from the start.
        gone = self._failing()
        while True:
            if not self.elector.is_leader():
                log.warning("%s: lost the Lease mid-transition; the new holder resumes it", self.pair)
                return
            # A region unreachable at the previous step is re-probed within STEP_RECHECK_SECONDS: a
            # vanished address costs the client's whole timeout per step (0.8 s at a 1 s interval).
            pf, pt = await asyncio.gather(
                *(
                    self.clients[r.name].probe(
                        None, self._session(), full=False, bound=STEP_RECHECK_SECONDS if r.name in gone else None
                    )
                    for r in (src, dst)
                )
            )
            gone = {p.region for p in (pf, pt) if not p.reachable}
            step = transition.next_step(
                t, src.redis, dst.redis, pf, pt, paused, now(), limits, self.reporter.status.lag_bytes
            )
            if step.kind != "wait":
                log.info("%s: %s step %s (%s)", self.pair, t.type, step.kind, step.why)
            if step.lost_bytes is not None:
                t = t.model_copy(update={"lost_bytes": step.lost_bytes})
            try:
                match step.kind:
                    case "pause":
                        await self.clients[src.name].pause_writes(limits.pause_ms)
                        paused = True
                    case "wait":
                        await asyncio.sleep(0.001 if pf.reachable and pt.reachable else 0.05)
                    case "demote":
                        await self.clients[src.name].replicaof(self.clients[dst.name])
                    case "promote":
                        await self.clients[dst.name].promote()
                    case "restore":
                        await self.clients[src.name].promote()
                    case "route":
                        guard = decide.promotion_min_replicas(spec, pf.reachable)
                        lag = spec.replication.min_replicas_max_lag_seconds
                        seen = await self.clients[dst.name].take_primary(t.epoch, guard, lag)
                        await self.router.route(spec, dst.name, decide.held_routes(spec, dst.name, *seen))
                        if pf.reachable:  # a pause on an unreachable primary expires on its own
                            await self._unpause(src.name)
                        await self.finish(spec, t, "Succeeded", generation, min_replicas_to_write=guard)
                        return
                    case "rollback":
                        await self._unpause(src.name)
                        await self.finish(spec, t, "RolledBack", generation, step.why)
                        return
                    case "fail":
                        await self.finish(spec, t, "Failed", generation, step.why)
                        return
            except RedisErrors as e:
                log.warning("%s: step %s: %s; retrying", self.pair, step.kind, e)
                await asyncio.sleep(0.05)
            _failpoint(self.settings.failpoint, step.kind)

    async def _unpause(self, region: str) -> None:
        try:
            await self.clients[region].unpause()
        except RedisErrors:
            pass  # unreachable: nothing to release (a pause also expires on its own)

    async def finish(
        self,
        spec: rp.RegionPairSpec,
        t: rp.TransitionStatus,
        outcome: rp.Outcome,
        generation: int,
        why: str = "",
        min_replicas_to_write: int | None = None,
    ) -> None:
        self.reporter.status = transition.finished(self.reporter.status, t, outcome, now(), why, min_replicas_to_write)
        last = self.reporter.status.last_transition
        assert last is not None
        metrics.TRANSITIONS.labels(t.type, outcome).inc()
        metrics.TRANSITION_SECONDS.labels(t.type).observe(last.duration_seconds)
        metrics.EPOCH.labels(self.pair).set(t.epoch)
        metrics.IN_TRANSITION.labels(self.pair).set(0)
        self.reporter.event(*transition.event_of_finish(t, last))
        # The phase after a transition is what fresh probes say, like in any other round.
        probes = await self.probe_all(spec)
        await self.reporter.write(
            rounds.settled(spec, self.reporter.status, probes, self.seen(), now(), generation), force=True
        )

    # -- generated Secrets ------------------------------------------------------------------------

    async def generate_secrets(self, spec: rp.RegionPairSpec) -> None:
        """Fill the keys each Secret in spec.generatedSecrets asks for (its `tier0.dev/generate`
        annotation), once; read by name every `secrets.next_check()` seconds, never listed."""
        if not spec.generated_secrets or time.monotonic() < self._secrets_due:
            return
        all_filled = True
        for name in spec.generated_secrets:
            try:
                all_filled &= await self._generate_secret(name)
            except errors.KubeError as e:
                all_filled = False
                log.warning("%s: generated Secret %s: %s", self.pair, name, e)
        self._secrets_due = time.monotonic() + secrets.next_check(all_filled)

    async def _generate_secret(self, name: str) -> bool:
        """True when the Secret has every key it asks for (now or already)."""
        state = await self.kube.secret_state(self.namespace, name)
        if state is None:
            if name not in self._missing_generated:
                self._missing_generated.add(name)
                self.reporter.event("SecretMissing", f"Secret {name} (spec.generatedSecrets) not found", True)
            return False
        self._missing_generated.discard(name)
        keys = secrets.keys_to_generate(state.annotations, state.keys)
        if not keys:
            return True
        try:
            await self.kube.patch_secret(self.namespace, name, secrets.build_patch(keys, state.resource_version))
        except errors.KubeError as e:
            if e.status != 409:
                raise
            return False  # changed meanwhile: read again at the next check
        log.info("%s: secret %s: generated %s", self.pair, name, ", ".join(keys))
        self.reporter.event("SecretGenerated", f"Secret {name}: generated {', '.join(keys)}")
        self._client_key = ()  # a Redis password may be among them: read it again
        return True

    # -- events, metrics ------------------------------------------------------------------------

    def _observe(self, spec: rp.RegionPairSpec, probes: dict[str, Probe], leader: bool) -> None:
        threshold = spec.failover.failure_threshold
        for p in probes.values():
            metrics.observe_region(self.pair, p.region, p.healthy, p.role)
            r = self.reporter.status.region(p.region)
            # Each failure up to the threshold, then once a minute at a 1 s interval: a standby that
            # stays down for hours must not fill the log.
            if (
                not p.reachable
                and r is not None
                and leader
                and (r.consecutive_failures <= threshold or r.consecutive_failures % FAILURE_LOG_EVERY == 0)
            ):
                log.info(
                    "%s: probe of %s failed (%d of %d): %s",
                    self.pair,
                    p.region,
                    r.consecutive_failures,
                    threshold,
                    p.error,
                )
        for r in self.reporter.status.regions:
            metrics.observe_pipeline(self.pair, r.name, r.pipeline.state if r.pipeline else None)
        metrics.LAG_BYTES.labels(self.pair).set(self.reporter.status.lag_bytes)
        metrics.EPOCH.labels(self.pair).set(self.reporter.status.epoch)
        # Only the acting replica's view of these is current (the others do not write status).
        at_risk = leader and self.reporter.status.replication is not None and self.reporter.status.replication.at_risk
        metrics.WRITES_AT_RISK.labels(self.pair).set(1 if at_risk else 0)
        metrics.IN_TRANSITION.labels(self.pair).set(1 if leader and self.reporter.status.transition is not None else 0)

    # -- clients --------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        return self._http

    async def _ensure_clients(self, spec: rp.RegionPairSpec) -> None:
        key = (spec.regions, spec.failover.probe_interval_seconds)
        if key == self._client_key:
            return
        for c in self.clients.values():
            await c.close()
        timeout = min(1.0, max(0.2, spec.failover.probe_interval_seconds * 0.8))
        self.clients = {}
        complete = True
        for r in spec.regions:
            password = None
            if r.redis.password_secret_ref is not None:
                ref = r.redis.password_secret_ref
                password = await self.kube.secret_value(self.namespace, ref.name, ref.key)
                if password is None:
                    complete = False  # read again next round (e.g. a generated Secret not filled yet)
                    if (ref.name, ref.key) not in self._missing_secrets:
                        self._missing_secrets.add((ref.name, ref.key))
                        self.reporter.event(
                            "SecretMissing", f"{ref.name}/{ref.key} for {r.name}'s Redis not found", True
                        )
            ca_pem = None
            if r.redis.tls is not None:
                ca = r.redis.tls.ca_secret_ref
                ca_pem = await self.kube.secret_value(self.namespace, ca.name, ca.key)
                if ca_pem is None:
                    complete = False
                    if (ca.name, ca.key) not in self._missing_secrets:
                        self._missing_secrets.add((ca.name, ca.key))
                        self.reporter.event(
                            "SecretMissing", f"{ca.name}/{ca.key} (TLS CA) for {r.name}'s Redis not found", True
                        )
            self.clients[r.name] = RegionRedis(r.name, r.redis, password, timeout, ca_pem)
        self._client_key = key if complete else ()
        self.regions = [r.name for r in spec.regions]

    def _failing(self) -> set[str]:
        """The regions whose last probe failed (their next probe is bounded by a recheck)."""
        return {r.name for r in self.reporter.status.regions if r.consecutive_failures > 0}

    async def probe_all(self, spec: rp.RegionPairSpec) -> dict[str, Probe]:
        """Every region's probe. A region that failed its last probe gets RECHECK_SECONDS: a vanished
        address would cost the client's whole timeout (0.8 s at a 1 s interval) on each of the
        threshold's probes, the last of which delays the failover itself, while a Redis that is
        back answers well within the bound. Except the active region while no witness agrees with
        its failed probes: only its timeout fails it then, so a slow link (500 ms of jitter) is
        not three failures in a row. And the active region even before its first failure while
        Kubernetes shows its Redis not serving (an independent witness already agrees). On the fast
        path the active region's probe ends when the confirmation is due (`decide.confirmation_left`)."""
        session = self._session()
        suspect = self._failing()
        active = self.reporter.status.active_region or ""
        if self._kubernetes_says_down(active):
            # Its first failed probe too: a deleted pod's address may swallow a new connection for
            # the whole timeout (measured on the node: 0.8 s of a 1.1 s detection).
            suspect.add(active)
        elif not self.detection.corroborated and self.reporter.status.transition is None:
            suspect.discard(active)
        bounds = dict.fromkeys(suspect, RECHECK_SECONDS)
        left = decide.confirmation_left(spec, self.reporter.status, self.detection, now())
        if left is not None and active in suspect:
            bounds[active] = max(STEP_RECHECK_SECONDS, min(RECHECK_SECONDS, left))
        probes = await asyncio.gather(
            *(self.clients[r.name].probe(r.health_url, session, bound=bounds.get(r.name)) for r in spec.regions)
        )
        return {p.region: p for p in probes}

    def _kubernetes_says_down(self, region: str) -> bool:
        """Whether Kubernetes shows `region`'s Redis not serving (its pod deleted, gone, not ready)."""
        return bool(region) and self.seen().get(region, NOTHING_SEEN).redis_down is not None

    def seen(self) -> dict[str, RegionSeen]:
        """Each region as Kubernetes shows it now (its Services' EndpointSlices)."""
        return self.witness.seen() if self.witness is not None else {}

    async def close(self) -> None:
        # Runs while kopf cancels the daemon at exit: release the HTTP session first.
        if self._http is not None:
            await asyncio.shield(self._http.close())
        if self.witness is not None:
            await self.witness.close()
        if self.hangup is not None:
            await self.hangup.close()
        for c in self.clients.values():
            await c.close()
        await self.reporter.close()


def held_on(spec: rp.RegionPairSpec, region: str, probe: Probe) -> dict[str, str]:
    """`decide.held_routes` on what a full probe of `region`'s Redis read."""
    return decide.held_routes(spec, region, probe.heartbeats, probe.server_time if probe.reachable else None)


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


def _failpoint(failpoint: str | None, step: str) -> None:
    """Test hook (TIER0_OPERATOR_FAILPOINT=demote): die right after a step, like a SIGKILL would."""
    if failpoint and failpoint == step:
        log.error("failpoint %s: exiting", step)
        os._exit(17)
