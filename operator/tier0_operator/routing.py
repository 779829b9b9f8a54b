"""The Services that follow a pair's active region: moved in a transition, checked in between.

Split from the loop (reconciler.py): the Services are the one Kubernetes object the operator
changes besides the pair's status, and only those annotated as the pair's (`patches.owned_by`);
where each points is recorded in status.services, and Events say what moved or was left alone.
"""

import logging
import time
from collections.abc import Mapping

from tier0_contract import regionpair as rp
from tier0_kube import client, errors
from tier0_operator import patches, reporting
from tier0_operator.model import now

log = logging.getLogger("tier0_operator.reconciler")  # the loop's: one stream per pair


class Router:
    def __init__(self, namespace: str, name: str, kube: client.Client, reporter: reporting.Reporter) -> None:
        self.namespace, self.name = namespace, name
        self.pair = f"{namespace}/{name}"
        self.kube, self.reporter = kube, reporter
        self.last_check = 0.0  # time.monotonic() of the last check of every Service
        self._unowned: set[str] = set()  # Services reported as not the pair's (once until they change)
        self.held: dict[str, str] = {}
        """Services kept off the active region for now (`decide.held_routes`), with why: the loop
        checks them every round until they have moved."""

    async def route(self, spec: rp.RegionPairSpec, active: str, held: Mapping[str, str] | None = None) -> None:
        """Point every Service of spec.services at `active`, one after the other in the spec's order
        (a transition's defined order: the API first, say, then the brokers), and record each. Each
        flip is one JSON patch whose `test` op leaves a Service that is not annotated as this pair's
        untouched (reported instead). Those in `held` stay where they are (`_hold`)."""
        started = time.monotonic()
        moved = []
        self._held_now(held)
        for route in spec.routes:
            if route.name in self.held:
                self._hold(spec, route.name, active)
                continue
            try:
                await self.kube.patch_service(
                    self.namespace, route.name, patches.build_service_patch(spec, active, route, self.name)
                )
            except errors.KubeError as e:
                if e.status == 404:
                    self._routed(spec, route.name, None, f"Service {route.name} not found")
                    self.reporter.event(
                        "ServiceMissing", f"Service {route.name} not found; its selector cannot follow {active}", True
                    )
                    continue
                routing = await self.kube.service_routing(self.namespace, route.name) if e.status == 422 else None
                if routing is None or patches.owned_by(routing[1], self.name):
                    raise
                self._not_owned(spec, route, routing[0], active)  # the patch's ownership `test` failed
                continue
            self._routed(spec, route.name, active, routed=True)
            moved.append(route.name)
        self.last_check = time.monotonic()
        if moved:
            took = time.monotonic() - started
            self.reporter.event("Routed", f"{', '.join(moved)} routed to {active}, in this order, in {took:.3f} s")

    async def ensure_routing(self, spec: rp.RegionPairSpec, active: str, held: Mapping[str, str] | None = None) -> None:
        """Check every Service of spec.services points at `active` (read by name), and move those
        that do not (an edit by hand, a Service re-created, one held until now) unless `held`."""
        self.last_check = time.monotonic()
        self._held_now(held)
        for route in spec.routes:
            routing = await self.kube.service_routing(self.namespace, route.name)
            if routing is None:
                self._routed(spec, route.name, None, f"Service {route.name} not found")
                continue
            selector, annotations = routing
            if not patches.owned_by(annotations, self.name):
                self._not_owned(spec, route, selector, active)
                continue
            self._unowned.discard(route.name)
            now_at = patches.selector_region(spec, selector, route)
            if now_at == active:
                self._routed(spec, route.name, active)
                continue
            if route.name in self.held:
                self._hold(spec, route.name, active, now_at)
                continue
            log.info("%s: Service %s does not route to %s; patching", self.pair, route.name, active)
            try:
                await self.kube.patch_service(
                    self.namespace, route.name, patches.build_service_patch(spec, active, route, self.name)
                )
            except errors.KubeError as e:
                routing = await self.kube.service_routing(self.namespace, route.name) if e.status == 422 else None
                if routing is None or patches.owned_by(routing[1], self.name):
                    raise
                self._not_owned(spec, route, routing[0], active)  # its annotation went away since the read
                continue
            self._routed(spec, route.name, active, routed=True)
            self.reporter.event("Routed", f"Service {route.name} selector set to {active}")

    def _held_now(self, held: Mapping[str, str] | None) -> None:
        """Take this round's holds; a Service that is held no more is reported once as released."""
        held = dict(held or {})
        for name in self.held.keys() - held.keys():
            log.info("%s: Service %s is no longer held", self.pair, name)
        self.held = held

    def _hold(self, spec: rp.RegionPairSpec, name: str, active: str, now_at: str | None = None) -> None:
        """Leave Service `name` where it points (`now_at`, else as last recorded) and say why it is
        not moved to `active` yet: status.services, a log line and a warning Event, once per reason."""
        before = next((s for s in self.reporter.status.services if s.name == name), None)
        region = now_at if now_at is not None else (before.region if before is not None else None)
        message = f"held off {active}: {self.held[name]}"
        if before is None or before.message != message:
            log.warning("%s: Service %s %s", self.pair, name, message)
            self.reporter.event("RouteHeld", f"Service {name} {message}", True)
        self._routed(spec, name, region, message)

    def _routed(
        self, spec: rp.RegionPairSpec, name: str, region: str | None, message: str = "", routed: bool = False
    ) -> None:
        """Record where one Service points (status.services keeps spec.services' order)."""
        before = {s.name: s for s in self.reporter.status.services}
        old = before.get(name)
        at = now() if routed else (old.routed_at if old is not None else None)
        before[name] = rp.ServiceStatus(name=name, region=region, routed_at=at, message=message)
        order = [r.name for r in spec.routes] or list(before)
        self.reporter.status = self.reporter.status.model_copy(
            update={"services": tuple(before[n] for n in order if n in before)}
        )

    def _not_owned(
        self, spec: rp.RegionPairSpec, route: rp.ServiceRoute, selector: dict[str, str], active: str
    ) -> None:
        """A Service of spec.services that is not annotated as this pair's: left as it is, recorded in
        status.services and reported once (an Event) until it changes."""
        why = f"not annotated {rp.SELECTOR_OWNER_ANNOTATION}: {self.name}; its selector is left as it is"
        self._routed(spec, route.name, patches.selector_region(spec, selector, route), why)
        if route.name in self._unowned:
            return
        self._unowned.add(route.name)
        self.reporter.event("ServiceNotOwned", f"Service {route.name} is {why} (not moved to {active})", True)
