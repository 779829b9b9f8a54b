"""The RegionPair resource as typed data: the spec parsed at the edge, probes, status records.

Everything else in the operator works on these frozen values, so the decision logic
(`decide.py`, `transition.py`, `patches.py`) is pure and unit-tested without a cluster.
"""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "tier0.dev"
VERSION = "v1alpha1"
PLURAL = "regionpairs"
KIND = "RegionPair"

Role = Literal["primary", "replica", "unknown"]
Phase = Literal["Pending", "Healthy", "Degraded", "SwitchingOver", "FailingOver", "Failed"]
TransitionType = Literal["Switchover", "Failover"]
Outcome = Literal["Succeeded", "RolledBack", "Failed"]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class SecretRef(_Camel):
    name: str
    key: str = "password"


class RedisEndpoint(_Camel):
    host: str
    port: int = 6379
    password_secret_ref: SecretRef | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class Region(_Camel):
    name: str
    selector: dict[str, str]
    redis: RedisEndpoint
    health_url: str | None = Field(default=None, alias="healthURL")


class FailoverPolicy(_Camel):
    mode: Literal["Automatic", "Manual"] = "Automatic"
    probe_interval_seconds: float = 1.0
    failure_threshold: int = 3
    switchover_timeout_seconds: float = 5.0


class PairSpec(_Camel):
    """spec of a RegionPair (the apiserver has validated and defaulted it already)."""

    service: str
    additional_services: tuple[str, ...] = ()
    active_region: str
    regions: tuple[Region, Region]
    failover: FailoverPolicy = FailoverPolicy()
    paused: bool = False

    @property
    def services(self) -> tuple[str, ...]:
        return (self.service, *self.additional_services)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    def other(self, name: str) -> Region:
        for r in self.regions:
            if r.name != name:
                return r
        raise KeyError(name)


def parse_spec(raw: Any) -> PairSpec:
    return PairSpec.model_validate(dict(raw))


@dataclass(frozen=True)
class Probe:
    """One measurement of one region: its Redis (PING + INFO replication) and its health URL."""

    region: str
    at: datetime
    reachable: bool = False
    http_ok: bool | None = None  # None: no healthURL configured
    role: Role = "unknown"
    offset: int = 0  # master_repl_offset of a primary, slave_repl_offset of a replica
    master_host: str | None = None
    master_port: int | None = None
    link_up: bool = False
    error: str = ""

    @property
    def healthy(self) -> bool:
        return self.reachable and self.http_ok is not False

    def replicates_from(self, endpoint: RedisEndpoint) -> bool:
        return self.role == "replica" and self.master_host == endpoint.host and self.master_port == endpoint.port


@dataclass(frozen=True)
class Transition:
    """A switchover or failover in progress, persisted in status.transition so it can be resumed."""

    type: TransitionType
    from_region: str
    to_region: str
    reason: str
    epoch: int
    started_at: datetime
    lost_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "from": self.from_region,
            "to": self.to_region,
            "reason": self.reason,
            "epoch": self.epoch,
            "startedAt": iso(self.started_at),
            "lostBytes": self.lost_bytes,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> "Transition | None":
        if not raw or not raw.get("type"):
            return None
        return cls(
            type=raw["type"],
            from_region=raw["from"],
            to_region=raw["to"],
            reason=raw.get("reason", ""),
            epoch=int(raw.get("epoch", 0)),
            started_at=parse_time(raw.get("startedAt")) or now(),
            lost_bytes=int(raw.get("lostBytes", 0)),
        )


@dataclass(frozen=True)
class Condition:
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""


@dataclass(frozen=True)
class PairStatus:
    """The operator's view of a pair; status.* on the resource is this, serialised."""

    active_region: str | None = None
    requested_region: str | None = None
    epoch: int = 0
    phase: Phase = "Pending"
    transition: Transition | None = None
    last_transition: dict[str, Any] | None = None
    failures: dict[str, int] = field(default_factory=dict)
    lag_bytes: int = 0

    def with_(self, **changes: Any) -> "PairStatus":
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, raw: Any) -> "PairStatus":
        raw = dict(raw or {})
        failures = {r["name"]: int(r.get("consecutiveFailures", 0)) for r in raw.get("regions") or [] if "name" in r}
        return cls(
            active_region=raw.get("activeRegion"),
            requested_region=raw.get("requestedRegion"),
            epoch=int(raw.get("epoch") or 0),
            phase=raw.get("phase") or "Pending",
            transition=Transition.from_dict(raw.get("transition")),
            last_transition=dict(raw["lastTransition"]) if raw.get("lastTransition") else None,
            failures=failures,
            lag_bytes=int(raw.get("lagBytes") or 0),
        )


def now() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    """RFC 3339 with microseconds (date-time format); durations are computed from these."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(raw: Any) -> datetime | None:
    if not raw:
        return None
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
