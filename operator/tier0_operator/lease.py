"""Leader election on a coordination.k8s.io Lease: exactly one operator replica acts.

kopf's peering only freezes peers of equal priority, it does not elect a leader, so every
replica watches and probes but only the Lease holder changes Redis, Services or status. The
holder renews every `duration / 4`; it stops acting on its own when it has not renewed for
`duration * 0.75` (before anyone else may take over), and a peer takes over once the Lease is
`duration` old. Updates carry the resourceVersion, so two candidates cannot both win a round.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from tier0_operator import metrics
from tier0_operator.kube import ApiError, Kube
from tier0_operator.model import iso, now, parse_time

log = logging.getLogger("tier0_operator.lease")


@dataclass(frozen=True)
class LeaseRecord:
    holder: str | None
    renewed: datetime | None
    duration: float
    transitions: int = 0


def lease_decision(record: LeaseRecord | None, me: str, at: datetime) -> Literal["renew", "acquire", "wait"]:
    if record is None or record.holder is None:
        return "acquire"
    if record.holder == me:
        return "renew"
    if record.renewed is None or at - record.renewed > timedelta(seconds=record.duration):
        return "acquire"
    return "wait"


def parse_lease(body: dict[str, Any]) -> LeaseRecord:
    spec = body.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or None,
        renewed=parse_time(spec.get("renewTime")),
        duration=float(spec.get("leaseDurationSeconds") or 15),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def build_lease(name: str, namespace: str, me: str, duration: float, record: LeaseRecord | None) -> dict[str, Any]:
    at = iso(now())
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


class Elector:
    def __init__(self, kube: Kube, name: str, namespace: str, identity: str, duration: float) -> None:
        self.kube, self.name, self.namespace, self.identity, self.duration = kube, name, namespace, identity, duration
        self._valid_until = 0.0  # monotonic
        self.changed = asyncio.Event()

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    async def run(self) -> None:
        was = False
        while True:
            try:
                await self.try_once()
            except (TimeoutError, ApiError, OSError) as e:
                log.warning("lease %s/%s: %s", self.namespace, self.name, e)
            now_leader = self.is_leader()
            if now_leader != was:
                log.info("lease %s/%s: %s", self.namespace, self.name, "acquired" if now_leader else "lost")
                metrics.LEADER.set(1 if now_leader else 0)
                self.changed.set()
                was = now_leader
            await asyncio.sleep(self.duration / 4)

    async def try_once(self) -> None:
        started = time.monotonic()
        body = await self.kube.get(f"{self.path}/{self.name}")
        record = parse_lease(body) if body else None
        decision = lease_decision(record, self.identity, now())
        if decision == "wait":
            self._valid_until = 0.0
            return
        lease = build_lease(self.name, self.namespace, self.identity, self.duration, record)
        try:
            if body is None:
                await self.kube.request("POST", self.path, lease)
            else:
                lease["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
                await self.kube.request("PUT", f"{self.path}/{self.name}", lease)
        except ApiError as e:
            if e.status in (409, 422):
                self._valid_until = 0.0  # somebody else won this round
                return
            raise
        self._valid_until = started + self.duration * 0.75

    async def release(self) -> None:
        """Hand the Lease over at shutdown so a peer takes over at once, not after `duration`."""
        if not self.is_leader():
            return
        self._valid_until = 0.0
        body = await self.kube.get(f"{self.path}/{self.name}")
        if body and (body.get("spec") or {}).get("holderIdentity") == self.identity:
            body["spec"]["holderIdentity"] = None
            await self.kube.request("PUT", f"{self.path}/{self.name}", body)
