"""The per-pair loop run by the kopf daemon: probe both regions, ask the pure core, act, write status.

One loop per RegionPair is the only actor on that pair inside this process, so steps never race
each other; across processes only the Lease holder acts (lease.py) and a transition starts with a
compare-and-set on status.epoch. Every decision is pure: a round's in one call, `rounds.plan()`,
a transition's steps in transition.py; this module only probes, carries out what they say, and
writes, and the status is written in one place (`write_status`).
"""

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp
from redis.exceptions import RedisError

from tier0_contract import regionpair as rp
from tier0_operator import decide, endpoints, metrics, patches, rounds, secrets, transition
from tier0_operator.kube import ApiError, Kube, TransportErrors
from tier0_operator.lease import Elector
from tier0_operator.model import Probe, RegionSeen, now
from tier0_operator.redisops import RegionRedis
from tier0_operator.settings import Settings

log = logging.getLogger("tier0_operator.reconciler")
STATUS_REFRESH_SECONDS = 5.0  # unchanged status is still rewritten this often (lastProbeTime)
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
        kube: Kube,
        elector: Elector,
        settings: Settings,
    ) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.pair = f"{namespace}/{name}"
        self.kube, self.elector, self.settings = kube, elector, settings
        self.status = rp.RegionPairStatus()
        self.clients: dict[str, RegionRedis] = {}
        self._client_key: tuple[Any, ...] = ()
        self._written = rp.RegionPairStatus()
        self._last_written: dict[str, Any] | None = None
        self._last_write = 0.0
        self._last_route_check = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._missing_secrets: set[tuple[str, str]] = set()
        self._missing_generated: set[str] = set()
        self._secrets_due = 0.0
        self._unowned: set[str] = set()
        self._problem: decide.Problem | None = None  # the last problem logged
        self._announced: decide.Problem | None = None  # ... and reported (Event, status) as the leader
        self._deferred: list[dict[str, Any]] = []
        self.regions: list[str] = []
        self._routes: tuple[rp.ServiceRoute, ...] = ()
        self.witness: endpoints.Witness | None = None
        self.detection = decide.Detection()  # the last round's: a corroborated one probes fast

    # -- the loop -------------------------------------------------------------------------------

    async def run(self, body: Mapping[str, Any], stopped: Any, wake: asyncio.Event) -> None:
        self._load(body.get("status"))
        self.witness = endpoints.Witness(self.kube, self.namespace, wake)
        was_leader = False
        try:
            while not stopped:
                generation = int((body.get("metadata") or {}).get("generation", 0))
                interval = DEFAULT_INTERVAL_SECONDS
                started = time.monotonic()
                leader = self.elector.is_leader()
                try:
                    if leader and not was_leader:
                        await self._reload_status()  # another replica may have acted meanwhile
                        self._last_route_check = 0.0
                        self._secrets_due = 0.0
                    was_leader = leader
                    spec = decide.read_spec(body.get("spec"))
                    if isinstance(spec, decide.Problem):
                        await self.report_problem(spec, generation, leader)
                        busy = False
                    else:
                        self._routes = spec.routes
                        self.witness.track(spec)
                        busy = await self.tick(spec, generation, leader)
                        interval = decide.next_interval(spec, self.detection)
                except (ApiError, *TransportErrors) as e:
                    # The apiserver hiccuped: report and go on (kopf would back off a crashed daemon
                    # for a minute). An unfinished transition is resumed from status next round.
                    log.warning("%s: round failed: %s", self.pair, e)
                    busy = False
                except Exception as e:  # noqa: BLE001 - a bug or an unforeseen state: report, go on
                    # Never a crash loop: the pair keeps its daemon, says why in Ready and an Event,
                    # and the next round tries afresh (the steps are derived, safe to repeat).
                    await self._report_failure(e, generation, leader)
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
        problem = decide.unknown_regions(spec, self.status)
        if problem is not None:
            await self._reload_status()  # fixed by hand meanwhile? (status is read afresh each round)
            problem = decide.unknown_regions(spec, self.status)
            if problem is not None:
                await self.report_problem(problem, generation, leader)
                return False
        self._problem = self._announced = None  # this round can act: a problem seen again is news
        if leader:
            await self.generate_secrets(spec)
        await self._ensure_clients(spec)
        probes = await self.probe_all(spec)
        r = rounds.plan(spec, self.status, probes, self.seen(), now(), generation)
        corroborated = self.detection.corroborated
        self.status, self.detection = r.observed, r.detection
        if leader and r.detection.corroborated and not corroborated:
            log.info("%s: fast path: %s; probing every %.2f s", self.pair, "; ".join(r.detection.said), r.interval)
        self._observe(spec, probes, leader)
        if not leader:
            return False
        if not isinstance(r.action, decide.Nothing | decide.Blocked):
            log.info("%s: %s", self.pair, r.action)
        acted = await self.carry_out(spec, r, generation)
        if acted and r.runs_transition:
            return True  # the transition wrote its own status; probe afresh
        if not acted:
            await self.apply_guard(r.guard)
        # The Services as routed meanwhile (Bootstrap routes them) are the reconciler's record.
        await self.write_status(r.report.model_copy(update={"services": self.status.services}), force=acted)
        if (
            not acted
            and not spec.paused
            and self.status.active_region
            and time.monotonic() - self._last_route_check > ROUTE_CHECK_SECONDS
        ):
            await self.ensure_routing(spec, self.status.active_region)
        return acted

    async def carry_out(self, spec: rp.RegionPairSpec, r: rounds.Round, generation: int) -> bool:
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
        self.status = r.done
        self._post_events(r.events)
        if isinstance(r.action, decide.Bootstrap):
            await self.ensure_routing(spec, r.action.active)
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
        if not await self.write_status_cas(self.status.epoch, started):
            return
        metrics.IN_TRANSITION.labels(self.pair).set(1)
        self._post_events(events)
        await self.run_transition(spec, generation)

    async def run_transition(self, spec: rp.RegionPairSpec, generation: int) -> None:
        t = self.status.transition
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
            step = transition.next_step(t, src.redis, dst.redis, pf, pt, paused, now(), limits, self.status.lag_bytes)
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
                        await self.clients[dst.name].take_primary(t.epoch, guard, lag)
                        await self.route(spec, dst.name)
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
        self.status = transition.finished(self.status, t, outcome, now(), why, min_replicas_to_write)
        last = self.status.last_transition
        assert last is not None
        metrics.TRANSITIONS.labels(t.type, outcome).inc()
        metrics.TRANSITION_SECONDS.labels(t.type).observe(last.duration_seconds)
        metrics.EPOCH.labels(self.pair).set(t.epoch)
        metrics.IN_TRANSITION.labels(self.pair).set(0)
        self._event(*transition.event_of_finish(t, last))
        # The phase after a transition is what fresh probes say, like in any other round.
        probes = await self.probe_all(spec)
        await self.write_status(rounds.settled(spec, self.status, probes, self.seen(), now(), generation), force=True)

    # -- Services -------------------------------------------------------------------------------

    async def route(self, spec: rp.RegionPairSpec, active: str) -> None:
        """Point every Service of spec.services at `active`, one after the other in the spec's order
        (a transition's defined order: the API first, say, then the brokers), and record each. Each
        flip is one JSON patch whose `test` op leaves a Service that is not annotated as this pair's
        untouched (reported instead)."""
        started = time.monotonic()
        moved = []
        for route in spec.routes:
            try:
                await self.kube.patch_service(
                    self.namespace, route.name, patches.build_service_patch(spec, active, route, self.name)
                )
            except ApiError as e:
                if e.status == 404:
                    self._routed(route.name, None, f"Service {route.name} not found")
                    self._event(
                        "ServiceMissing", f"Service {route.name} not found; its selector cannot follow {active}", True
                    )
                    continue
                routing = await self.kube.service_routing(self.namespace, route.name) if e.status == 422 else None
                if routing is None or patches.owned_by(routing[1], self.name):
                    raise
                self._not_owned(spec, route, routing[0], active)  # the patch's ownership `test` failed
                continue
            self._routed(route.name, active, routed=True)
            moved.append(route.name)
        self._last_route_check = time.monotonic()
        if moved:
            took = time.monotonic() - started
            self._event("Routed", f"{', '.join(moved)} routed to {active}, in this order, in {took:.3f} s")

    async def ensure_routing(self, spec: rp.RegionPairSpec, active: str) -> None:
        self._last_route_check = time.monotonic()
        for route in spec.routes:
            routing = await self.kube.service_routing(self.namespace, route.name)
            if routing is None:
                self._routed(route.name, None, f"Service {route.name} not found")
                continue
            selector, annotations = routing
            if not patches.owned_by(annotations, self.name):
                self._not_owned(spec, route, selector, active)
                continue
            self._unowned.discard(route.name)
            now_at = patches.selector_region(spec, selector, route)
            if now_at == active:
                self._routed(route.name, active)
                continue
            log.info("%s: Service %s does not route to %s; patching", self.pair, route.name, active)
            try:
                await self.kube.patch_service(
                    self.namespace, route.name, patches.build_service_patch(spec, active, route, self.name)
                )
            except ApiError as e:
                routing = await self.kube.service_routing(self.namespace, route.name) if e.status == 422 else None
                if routing is None or patches.owned_by(routing[1], self.name):
                    raise
                self._not_owned(spec, route, routing[0], active)  # its annotation went away since the read
                continue
            self._routed(route.name, active, routed=True)
            self._event("Routed", f"Service {route.name} selector set to {active}")

    def _routed(self, name: str, region: str | None, message: str = "", routed: bool = False) -> None:
        """Record where one Service points (status.services keeps spec.services' order)."""
        before = {s.name: s for s in self.status.services}
        old = before.get(name)
        at = now() if routed else (old.routed_at if old is not None else None)
        before[name] = rp.ServiceStatus(name=name, region=region, routed_at=at, message=message)
        order = [r.name for r in self._routes] or list(before)
        self.status = self.status.model_copy(update={"services": tuple(before[n] for n in order if n in before)})

    def _not_owned(
        self, spec: rp.RegionPairSpec, route: rp.ServiceRoute, selector: dict[str, str], active: str
    ) -> None:
        """A Service of spec.services that is not annotated as this pair's: left as it is, recorded in
        status.services and reported once (an Event) until it changes."""
        why = f"not annotated {rp.SELECTOR_OWNER_ANNOTATION}: {self.name}; its selector is left as it is"
        self._routed(route.name, patches.selector_region(spec, selector, route), why)
        if route.name in self._unowned:
            return
        self._unowned.add(route.name)
        self._event("ServiceNotOwned", f"Service {route.name} is {why} (not moved to {active})", True)

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
            except (ApiError, *TransportErrors) as e:
                all_filled = False
                log.warning("%s: generated Secret %s: %s", self.pair, name, e)
        self._secrets_due = time.monotonic() + secrets.next_check(all_filled)

    async def _generate_secret(self, name: str) -> bool:
        """True when the Secret has every key it asks for (now or already)."""
        state = await self.kube.secret_state(self.namespace, name)
        if state is None:
            if name not in self._missing_generated:
                self._missing_generated.add(name)
                self._event("SecretMissing", f"Secret {name} (spec.generatedSecrets) not found", True)
            return False
        self._missing_generated.discard(name)
        keys = secrets.keys_to_generate(state.annotations, state.keys)
        if not keys:
            return True
        try:
            await self.kube.patch_secret(self.namespace, name, secrets.build_patch(keys, state.resource_version))
        except ApiError as e:
            if e.status != 409:
                raise
            return False  # changed meanwhile: read again at the next check
        log.info("%s: secret %s: generated %s", self.pair, name, ", ".join(keys))
        self._event("SecretGenerated", f"Secret {name}: generated {', '.join(keys)}")
        self._client_key = ()  # a Redis password may be among them: read it again
        return True

    # -- problems: reported, never raised ---------------------------------------------------------

    async def report_problem(self, problem: decide.Problem, generation: int, leader: bool) -> None:
        """Ready=False with the problem's reason, an Event and a log line, each once per distinct
        problem; the status and the Event come from the Lease holder only, like every status."""
        if problem != self._problem:
            self._problem = problem
            log.warning("%s: %s: %s", self.pair, problem.reason, problem.message)
        if not leader:
            return
        fresh = problem != self._announced
        if fresh:
            self._announced = problem
            # At once, even inside a transition: a transition that cannot go on never posts its own.
            self._event(problem.reason, problem.message, True, defer=False)
        self.status = decide.problem_status(self.status, problem, generation, now())
        material = patches.without_probe_times(self.status)
        if not fresh and material == self._last_written:
            return
        try:
            await self.kube.patch_status(self.namespace, self.name, patches.build_status_patch(self.status))
        except ApiError as e:
            if e.status != 404:
                raise
            return
        self._written = self.status
        self._last_written, self._last_write = material, time.monotonic()

    async def _report_failure(self, e: Exception, generation: int, leader: bool) -> None:
        problem = decide.Problem("RoundFailed", f"{type(e).__name__}: {e}"[:500])
        if problem != self._problem:
            log.error("%s: round failed", self.pair, exc_info=e)  # the traceback, once per distinct error
        try:
            await self.report_problem(problem, generation, leader)
        except (ApiError, *TransportErrors) as err:
            log.warning("%s: round failure not reported: %s", self.pair, err)

    # -- status: the one place it is written -----------------------------------------------------

    async def write_status(self, status: rp.RegionPairStatus, force: bool = False) -> None:
        """Make `status` the pair's; written when it changed, or its probe times are due a refresh."""
        self.status = status
        material = patches.without_probe_times(self.status)
        if (
            not force
            and material == self._last_written
            and time.monotonic() - self._last_write < STATUS_REFRESH_SECONDS
        ):
            return
        try:
            await self.kube.patch_status(self.namespace, self.name, patches.build_status_patch(self.status))
        except ApiError as e:
            if e.status == 404:
                return  # deleted meanwhile
            raise
        self._wrote(material)

    async def write_status_cas(self, old_epoch: int, status: rp.RegionPairStatus) -> bool:
        """Write `status` only if status.epoch is still `old_epoch` (the start of a transition)."""
        try:
            await self.kube.patch_status(self.namespace, self.name, patches.build_status_cas(old_epoch, status))
        except ApiError as e:
            if not e.conflict:
                raise
            log.warning("%s: epoch %d moved under us; reloading status", self.pair, old_epoch)
            await self._reload_status()
            return False
        self.status = status
        self._wrote(patches.without_probe_times(status))
        return True

    def _wrote(self, material: dict[str, Any]) -> None:
        self._post_events(decide.events(self._written, self.status))
        self._written = self.status
        self._last_written, self._last_write = material, time.monotonic()

    # -- events, metrics ------------------------------------------------------------------------

    def _event(self, reason: str, message: str, warning: bool = False, defer: bool = True) -> None:
        log.info("%s: event %s: %s", self.pair, reason, message)
        event = patches.build_event(self.namespace, self.name, self.uid, reason, message, now(), warning)
        if defer and self.status.transition is not None:
            # Inside a transition every request competes with the selector flip: post afterwards.
            self._deferred.append(event)
            return
        for e in [*self._deferred, event]:
            self._post(e)
        self._deferred.clear()

    def _post_events(self, events: Iterable[decide.Event]) -> None:
        for e in events:
            self._event(e.reason, e.message, e.warning)

    def _post(self, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._post_event(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post_event(self, event: dict[str, Any]) -> None:
        try:
            await self.kube.create_event(self.namespace, event)
        except (ApiError, *TransportErrors) as e:
            log.warning("%s: event not posted: %s", self.pair, e)

    def _observe(self, spec: rp.RegionPairSpec, probes: dict[str, Probe], leader: bool) -> None:
        threshold = spec.failover.failure_threshold
        for p in probes.values():
            metrics.observe_region(self.pair, p.region, p.healthy, p.role)
            r = self.status.region(p.region)
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
        for r in self.status.regions:
            metrics.observe_pipeline(self.pair, r.name, r.pipeline.state if r.pipeline else None)
        metrics.LAG_BYTES.labels(self.pair).set(self.status.lag_bytes)
        metrics.EPOCH.labels(self.pair).set(self.status.epoch)
        # Only the acting replica's view of these is current (the others do not write status).
        at_risk = leader and self.status.replication is not None and self.status.replication.at_risk
        metrics.WRITES_AT_RISK.labels(self.pair).set(1 if at_risk else 0)
        metrics.IN_TRANSITION.labels(self.pair).set(1 if leader and self.status.transition is not None else 0)

    def _load(self, raw: Any) -> None:
        self.status = rp.RegionPairStatus.model_validate(dict(raw or {}))
        self._written = self.status
        self._last_written = None

    async def _reload_status(self) -> None:
        body = await self.kube.get_pair(self.namespace, self.name)
        if body is not None:
            regions = self.status.regions  # keep this replica's own failure counts
            self._load(body.get("status"))
            self.status = self.status.model_copy(update={"regions": regions})

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
                        self._event("SecretMissing", f"{ref.name}/{ref.key} for {r.name}'s Redis not found", True)
            ca_pem = None
            if r.redis.tls is not None:
                ca = r.redis.tls.ca_secret_ref
                ca_pem = await self.kube.secret_value(self.namespace, ca.name, ca.key)
                if ca_pem is None:
                    complete = False
                    if (ca.name, ca.key) not in self._missing_secrets:
                        self._missing_secrets.add((ca.name, ca.key))
                        self._event(
                            "SecretMissing", f"{ca.name}/{ca.key} (TLS CA) for {r.name}'s Redis not found", True
                        )
            self.clients[r.name] = RegionRedis(r.name, r.redis, password, timeout, ca_pem)
        self._client_key = key if complete else ()
        self.regions = [r.name for r in spec.regions]

    def _failing(self) -> set[str]:
        """The regions whose last probe failed (their next probe is bounded by a recheck)."""
        return {r.name for r in self.status.regions if r.consecutive_failures > 0}

    async def probe_all(self, spec: rp.RegionPairSpec) -> dict[str, Probe]:
        """Every region's probe. A region that failed its last probe gets RECHECK_SECONDS: a vanished
        address would cost the client's whole timeout (0.8 s at a 1 s interval) on each of the
        threshold's probes, the last of which delays the failover itself, while a Redis that is
        back answers well within the bound. Except the active region while no witness agrees with
        its failed probes: only its timeout fails it then, so a slow link (500 ms of jitter) is
        not three failures in a row."""
        session = self._session()
        suspect = self._failing()
        if not self.detection.corroborated and self.status.transition is None:
            suspect.discard(self.status.active_region or "")
        probes = await asyncio.gather(
            *(
                self.clients[r.name].probe(r.health_url, session, bound=RECHECK_SECONDS if r.name in suspect else None)
                for r in spec.regions
            )
        )
        return {p.region: p for p in probes}

    def seen(self) -> dict[str, RegionSeen]:
        """Each region as Kubernetes shows it now (its Services' EndpointSlices)."""
        return self.witness.seen() if self.witness is not None else {}

    async def close(self) -> None:
        # Runs while kopf cancels the daemon at exit: release the HTTP session first.
        if self._http is not None:
            await asyncio.shield(self._http.close())
        if self.witness is not None:
            await self.witness.close()
        for c in self.clients.values():
            await c.close()
        for e in self._deferred:
            self._post(e)
        self._deferred.clear()
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


def _failpoint(failpoint: str | None, step: str) -> None:
    """Test hook (TIER0_OPERATOR_FAILPOINT=demote): die right after a step, like a SIGKILL would."""
    if failpoint and failpoint == step:
        log.error("failpoint %s: exiting", step)
        os._exit(17)
