"""Leader election on a coordination.k8s.io Lease: exactly one operator replica acts.

kopf's peering only freezes peers of equal priority, it does not elect a leader, so every replica
watches and probes but only the Lease holder changes Redis, Services or status.

No replica trusts another machine's clock. As client-go's leaderelection does, a candidate never
compares the holder's `renewTime` with its own wall clock: it remembers when *it* last saw the
record change (`observed_at`, on its own monotonic clock) and takes over only once the record has
stayed unchanged for `leaseDurationSeconds` of its own time. `renewTime` is written for people
(kubectl) and only its change matters. The holder renews every `duration / 4` and stops acting on
its own `duration * 0.75` after its last successful renewal began (before any peer may take over);
updates carry the resourceVersion, so two candidates cannot both win a round.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from tier0_kube import client, errors
from tier0_operator import metrics

log = logging.getLogger("tier0_operator.lease")


@dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    renew_time: str | None  # as written by the holder; compared for change only, never as a time
    duration: float
    transitions: int = 0


Decision = Literal["renew", "acquire", "wait"]


def lease_decision(record: LeaseRecord | None, me: str, observed_at: float, mono_now: float) -> Decision:
    """What to do with the Lease; `observed_at` is when this replica saw `record` change (monotonic)."""
    if record is None or record.holder is None:
        return "acquire"
    if record.holder == me:
        return "renew"
    if mono_now - observed_at > record.duration:
        return "acquire"  # unchanged for a whole lease duration of our own time: the holder is gone
    return "wait"


def observe(last: LeaseRecord | None, last_observed_at: float, record: LeaseRecord | None, mono_now: float) -> float:
    """When the record was last seen to change: now if it differs from the one seen before."""
    return last_observed_at if record == last else mono_now


def parse_lease(body: dict[str, Any]) -> LeaseRecord:
    spec = body.get("spec") or {}
    renew = spec.get("renewTime")
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        renew_time=str(renew) if renew else None,
        duration=float(spec.get("leaseDurationSeconds") or 15),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def build_lease(
    name: str, namespace: str, me: str, duration: float, record: LeaseRecord | None, wall: datetime
) -> dict[str, Any]:
    at = wall.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    renewing = record is not None and record.holder == me
    spec: dict[str, Any] = {
        "holderIdentity": me,
        "leaseDurationSeconds": max(1, round(duration)),
        "renewTime": at,
        "leaseTransitions": (record.transitions if record else 0) + (0 if renewing else 1),
    }
    if not renewing:
        spec["acquireTime"] = at
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _wall() -> datetime:
    return datetime.now(UTC)


class Elector:
    def __init__(
        self,
        kube: client.Client,
        name: str,
        namespace: str,
        identity: str,
        duration: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _wall,
    ) -> None:
        self.kube, self.name, self.namespace, self.identity, self.duration = kube, name, namespace, identity, duration
        self._mono, self._wall = monotonic, wall  # injectable: tests skew the wall clock
        self._valid_until = 0.0  # monotonic
        self._observed: LeaseRecord | None = None
        self._observed_at = monotonic()
        self.changed = asyncio.Event()

    def is_leader(self) -> bool:
        return self._mono() < self._valid_until

    async def wait_leader(self, timeout: float) -> bool:
        """True once this replica leads (at most `timeout` seconds of waiting)."""
        deadline = self._mono() + timeout
        while not self.is_leader():
            if self._mono() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def run(self) -> None:
        was = False
        while True:
            try:
                await self.try_once()
            except errors.KubeError as e:
                log.warning("lease %s/%s: %s", self.namespace, self.name, e)
            now_leader = self.is_leader()
            if now_leader != was:
                log.info("lease %s/%s: %s", self.namespace, self.name, "acquired" if now_leader else "lost")
                metrics.LEADER.set(1 if now_leader else 0)
                self.changed.set()
                was = now_leader
            await asyncio.sleep(self.duration / 4)

    async def try_once(self) -> None:
        started = self._mono()
        body = await self.kube.get_lease(self.namespace, self.name)
        record = parse_lease(body) if body else None
        self._observed_at = observe(self._observed, self._observed_at, record, started)
        self._observed = record
        decision = lease_decision(record, self.identity, self._observed_at, started)
        if decision == "wait":
            self._valid_until = 0.0
            return
        lease = build_lease(self.name, self.namespace, self.identity, self.duration, record, self._wall())
        try:
            if body is None:
                await self.kube.put_lease(self.namespace, self.name, lease, create=True)
            else:
                lease["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
                await self.kube.put_lease(self.namespace, self.name, lease, create=False)
        except errors.KubeError as e:
            if e.status in (409, 422):
                self._valid_until = 0.0  # somebody else won this round
                return
            raise
        self._observed, self._observed_at = parse_lease(lease), started
        self._valid_until = started + self.duration * 0.75

    async def release(self) -> None:
        """Hand the Lease over at shutdown so a peer takes over at once, not after `duration`."""
        if not self.is_leader():
            return
        self._valid_until = 0.0
        body = await self.kube.get_lease(self.namespace, self.name)
        if body and (body.get("spec") or {}).get("holderIdentity") == self.identity:
            body["spec"]["holderIdentity"] = None
            await self.kube.put_lease(self.namespace, self.name, body, create=False)
