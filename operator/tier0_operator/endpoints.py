"""The Kubernetes witness: what the EndpointSlices of each region's Redis and API Services say.

Kubernetes knows what the probes cannot: that a pod is being deleted (drained, evicted, rolled out)
while it still answers, or that it has left its Service. The operator watches the EndpointSlices of
the Services that each region's `redis.host` and `healthURL` name (when they are Services of the
pair's namespace) and wakes the pair's loop on every change; `decide` reads the result beside the
probes. The reading of the slices (`state_of`) and of the names (`service_of`) is pure.
"""

import asyncio
import dataclasses
import ipaddress
import logging
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from tier0_contract import regionpair as rp
from tier0_kube import client
from tier0_operator.model import RegionSeen

log = logging.getLogger("tier0_operator.endpoints")

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
RETRY_SECONDS = 1.0
WATCH_SECONDS = 270  # bounded watches, like kopf's (a silent watch is the usual failure)


def service_of(host: str, namespace: str) -> str | None:
    """The Service of `namespace` that `host` names (`svc`, `svc.ns`, `svc.ns.svc`,
    `svc.ns.svc.cluster.local`), or None (an address, another namespace, a name outside the cluster)."""
    host = host.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) == 1:
        return parts[0] or None
    if parts[1] != namespace:
        return None
    rest = parts[2:]
    if rest in ([], ["svc"]) or (len(rest) >= 2 and rest[0] == "svc"):
        return parts[0]
    return None


def services_of(spec: rp.RegionPairSpec, namespace: str) -> dict[str, tuple[str | None, str | None]]:
    """region -> (its Redis Service, its API Service) in `namespace` (None where not a Service)."""
    out = {}
    for r in spec.regions:
        api_host = urllib.parse.urlsplit(r.health_url).hostname if r.health_url else None
        out[r.name] = (service_of(r.redis.host, namespace), service_of(api_host, namespace) if api_host else None)
    return out


def state_of(slices: Iterable[Mapping[str, Any]]) -> rp.EndpointState:
    """One Service's state from its EndpointSlices (`discovery.k8s.io/v1`, as JSON). `terminating`
    means a pod that was serving is being deleted (still serving: there is time to move away from
    it); a terminating pod that no longer serves, or never did (a replacement deleted while it
    starts), is just `notready`: the probes judge that."""
    endpoints = [e for s in slices for e in (s.get("endpoints") or [])]
    if not endpoints:
        return "absent"
    conditions = [e.get("conditions") or {} for e in endpoints]
    # `ready` is nil-means-true in the API; a terminating endpoint is never ready.
    if any(c.get("ready", True) is not False and not c.get("terminating") for c in conditions):
        return "serving"
    if any(c.get("terminating") and c.get("serving") is True for c in conditions):
        return "terminating"
    return "notready"


def seen_of(
    services: Mapping[str, tuple[str | None, str | None]], slices: Mapping[str, list[Mapping[str, Any]]], synced: bool
) -> dict[str, RegionSeen]:
    """Each region's `RegionSeen` from the slices of each Service (by Service name)."""

    def state(service: str | None) -> rp.EndpointState:
        if service is None or not synced:
            return "unknown"
        return state_of(slices.get(service, []))

    return {region: RegionSeen(state(redis), state(api)) for region, (redis, api) in services.items()}


def followed(previous: Mapping[str, RegionSeen], current: Mapping[str, RegionSeen]) -> dict[str, RegionSeen]:
    """`current`, with `redis_vanished` carried from `previous`: set where a region's Redis went from
    serving (or terminating) straight to absent, kept while it stays absent. A Redis that was never
    seen serving (a Service that has no slices at all, like an ExternalName) never vanishes."""
    out = {}
    for region, now in current.items():
        before = previous.get(region)
        vanished = (
            now.redis == "absent"
            and before is not None
            and (before.redis in ("serving", "terminating") or before.redis_vanished)
        )
        out[region] = dataclasses.replace(now, redis_vanished=vanished)
    return out


class Witness:
    """Watches the EndpointSlices of a pair's Services; `seen()` is the latest reading, and `wake`
    is set whenever it changes. Runs until cancelled; a broken watch is listed again after a second."""

    def __init__(self, kube: client.Client, namespace: str, wake: asyncio.Event) -> None:
        self.kube, self.namespace, self.wake = kube, namespace, wake
        self._services: dict[str, tuple[str | None, str | None]] = {}
        self._slices: dict[str, dict[str, Mapping[str, Any]]] = {}  # service -> slice name -> slice
        self._synced = False
        self._seen: dict[str, RegionSeen] = {}
        self._task: asyncio.Task[None] | None = None
        self.changed_at = time.monotonic()

    def track(self, spec: rp.RegionPairSpec) -> None:
        """Follow the Services `spec` names (restarting the watch when they change)."""
        services = services_of(spec, self.namespace)
        if services == self._services and self._task is not None:
            return
        self._services = services
        names = sorted({n for pair in services.values() for n in pair if n is not None})
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._slices, self._synced = {}, False
        self._update()
        if names:
            self._task = asyncio.create_task(self._run(names), name=f"endpoints-{self.namespace}")

    def seen(self) -> dict[str, RegionSeen]:
        return dict(self._seen)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing: nothing to report
                pass
            self._task = None

    async def _run(self, names: list[str]) -> None:
        selector = f"{SERVICE_NAME_LABEL} in ({','.join(names)})"
        while True:
            try:
                version = await self._list(selector)
                async for kind, obj in self.kube.watch_endpoint_slices(
                    self.namespace, selector, version, WATCH_SECONDS
                ):
                    self._apply(kind, obj)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a broken watch must not stop the pair's loop
                log.warning("%s: EndpointSlice watch failed, listing again: %s", self.namespace, e)
                self._synced = False
                self._update()
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self, selector: str) -> str:
        items, version = await self.kube.list_endpoint_slices(self.namespace, selector)
        self._slices = {}
        for obj in items:
            self._apply("ADDED", obj, update=False)
        self._synced = True
        self._update()
        return str(version)

    def _apply(self, kind: str, obj: Mapping[str, Any], update: bool = True) -> None:
        meta = obj.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        name = meta.get("name")
        if not service or not name:
            return
        slices = self._slices.setdefault(service, {})
        if kind == "DELETED":
            slices.pop(name, None)
        else:
            slices[name] = obj
        if update:
            self._update()

    def _update(self) -> None:
        seen = followed(
            self._seen, seen_of(self._services, {s: list(v.values()) for s, v in self._slices.items()}, self._synced)
        )
        if seen != self._seen:
            if self._seen:
                log.info("%s: Kubernetes sees %s", self.namespace, _describe(seen))
            self._seen = seen
            self.changed_at = time.monotonic()
            self.wake.set()


def _describe(seen: Mapping[str, RegionSeen]) -> str:
    return "; ".join(
        f"{region}: redis {s.redis}{' (force-deleted)' if s.redis_vanished else ''}, api {s.api}"
        for region, s in sorted(seen.items())
    )
