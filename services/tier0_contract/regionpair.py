"""The RegionPair resource: its API coordinates, its spec and its status — the one model of it.

The operator parses the spec with `RegionPairSpec` and writes exactly a `RegionPairStatus`; the
region API reads both through `RegionPair`; the tests build manifests from these models and a unit
test holds the CRD's schema (crds/regionpairs.tier0.dev.yaml) to the same field names. A newcomer
who asks "what does a RegionPair's status look like" reads `RegionPairStatus` below.

Field names are the camelCase names of the resource (`activeRegion`); in Python they are
snake_case (`active_region`). Models are frozen and ignore unknown fields, so an older reader does
not break on a newer operator's status. Times are UTC datetimes (RFC 3339 on the wire).
"""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from tier0_contract import pipeline

GROUP = "tier0.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "regionpairs"
KIND = "RegionPair"
FINALIZER = f"{GROUP}/operator"
SELECTOR_OWNER_ANNOTATION = f"{GROUP}/selector-owner"
"""On a Service: the name of the RegionPair (same namespace) whose operator may set its selector. A
Service named in spec.service / spec.additionalServices without it is reported, never patched."""
LAST_DRILL_ANNOTATION = f"{GROUP}/last-drill"
"""On a RegionPair: the JSON of its last `DrillReport` (`kubectl tier0 drill` writes it; an annotation,
not status, because status is the operator's alone)."""

Role = Literal["primary", "replica", "unknown"]
Phase = Literal["Pending", "Healthy", "Degraded", "SwitchingOver", "FailingOver", "Failed"]
TransitionType = Literal["Switchover", "Failover"]
Outcome = Literal["Succeeded", "RolledBack", "Failed"]
Trigger = Literal["Requested", "Disruption", "Failure", "PipelineStall"]
"""What started a transition: spec.activeRegion (Requested), the active region being taken down on
purpose (Disruption: a drain, an eviction, a deletion), failed probes (Failure), a stalled pipeline."""
Witness = Literal["Probes", "StandbyLink", "Kubernetes"]
"""Who saw the active region fail: the operator's own probes, the standby Redis (its replication
link to the primary lost, or silent past `failover.linkSilenceSeconds`), Kubernetes (the active
Redis pod not ready, out of its Service's endpoints, or gone). A failover on the fast path needs
the probes and at least one other."""
EndpointState = Literal["serving", "terminating", "notready", "absent", "unknown"]
ConditionStatus = Literal["True", "False", "Unknown"]
PipelineState = Literal["ok", "idle", "stalled", "dead", "absent", "unknown"]

TRANSITIONAL_PHASES: frozenset[Phase] = frozenset({"SwitchingOver", "FailingOver"})

# Condition types the operator writes (status.conditions[].type).
READY = "Ready"
PAUSED = "Paused"
REPLICATING = "Replicating"
ACTIVE_REGION_MATCHES_SPEC = "ActiveRegionMatchesSpec"
WRITES_AT_RISK = "WritesAtRisk"
PIPELINE_HEALTHY = "PipelineHealthy"
CONDITION_TYPES = (READY, PAUSED, REPLICATING, ACTIVE_REGION_MATCHES_SPEC, WRITES_AT_RISK, PIPELINE_HEALTHY)


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore", serialize_by_alias=True
    )

    def to_json(self) -> dict[str, Any]:
        """The resource's JSON form (camelCase, RFC 3339 times, None fields kept as null)."""
        out: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return out


# --- spec ------------------------------------------------------------------------------------------


class SecretRef(_Model):
    name: str
    key: str = "password"


class CASecretRef(_Model):
    name: str
    key: str = "ca.crt"


class RedisTLS(_Model):
    """Connect to this Redis with TLS, verifying its certificate (which must name `host`) against
    the CA bundle in this Secret."""

    ca_secret_ref: CASecretRef


class RedisEndpoint(_Model):
    host: str
    port: int = 6379
    username: str | None = None
    """Redis ACL user the operator authenticates as (the chart: tier0-operator); unset: the password
    alone (Redis's default user). With a user, both Redis carry their replication credentials in
    their own config (masteruser/masterauth), so REPLICAOF is sent without setting masterauth."""
    password_secret_ref: SecretRef | None = None
    tls: RedisTLS | None = None
    replication_host: str | None = None
    """Where the other region's Redis replicates from, when that is not where the operator reaches
    this one (a cross-region endpoint, or a fault injector on the replication link alone)."""
    replication_port: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def replication_endpoint(self) -> tuple[str, int]:
        """(host, port) a replica of this Redis connects to."""
        return self.replication_host or self.host, self.replication_port or self.port


class Region(_Model):
    name: str
    selector: dict[str, str]
    """Pod labels of this region; the Service selectors are set to these while it is active."""
    redis: RedisEndpoint
    health_url: str | None = Field(default=None, alias="healthURL")


class FailoverPolicy(_Model):
    mode: Literal["Automatic", "Manual"] = "Automatic"
    probe_interval_seconds: float = 1.0
    failure_threshold: int = 3
    switchover_timeout_seconds: float = 5.0
    on_disruption: Literal["Switchover", "Ignore"] = "Switchover"
    """When Kubernetes takes the active region down on purpose (its Redis pod, or its last serving API
    pod, is terminating: a drain, an eviction, a deletion), switch over to the standby first, without
    loss, instead of failing over once it is gone."""
    fast_confirm_seconds: float = 0.5
    """The fast path: once the active region's probes fail and an independent witness agrees (the
    standby lost its link, Kubernetes sees the active Redis pod not ready or gone), fail over when
    the probes have kept failing, with a witness still agreeing, for this long. Only the operator's
    own probes failing keeps `failureThreshold` x `probeIntervalSeconds`."""
    fast_probe_interval_seconds: float = 0.1
    """Probe interval while the fast path confirms."""
    link_silence_seconds: int = 3
    """The standby's link counts as lost also when it is up but the primary has sent nothing for this
    long (`master_last_io_seconds_ago`; the operator has the primary ping its replica every second):
    a frozen or silently partitioned primary."""


class ReplicationPolicy(_Model):
    """How writes are protected by the standby (issue 9: acknowledged means replicated).

    While the standby replicates, the primary runs with `min-replicas-to-write 1` and
    `min-replicas-max-lag minReplicasMaxLagSeconds`: a primary cut from its replica (an isolated old
    primary too) refuses writes after that lag. When the standby has been down for
    `failover.failureThreshold` probes, `Accept` lowers the primary to `min-replicas-to-write 0`
    (writes go on, acknowledged by the primary alone: at risk, reported in status) and `Hold` never
    does (writes stop until the standby is back)."""

    when_standby_down: Literal["Accept", "Hold"] = "Accept"
    min_replicas_max_lag_seconds: int = 2


class PipelinePolicy(_Model):
    """How the pipeline heartbeats (`tier0_contract.pipeline`) are judged and what a stall does."""

    stall_after_seconds: float = 10.0
    on_stall: Literal["Report", "Failover"] = "Report"


class ServiceRoute(_Model):
    """A Service whose selector follows the active region (`spec.services[]`)."""

    name: str
    selector: dict[str, str] = Field(default_factory=dict)
    """Labels the Service selects besides the active region's `selector`, winning over it on a shared
    key: `{app.kubernetes.io/component: emqx}` makes the global MQTT Service select the active
    region's broker pods where the region's selector names its API pods."""
    feeds: pipeline.Component | None = None
    """The pipeline component that takes what clients send through this Service. The Service moves
    to a region only while a worker of that component there reports itself connected (and, for
    ingest, subscribed) to its broker: an MQTT broker acknowledges a message nobody subscribes to and
    drops it (a restarted broker keeps no shared subscription until its workers return), so devices
    wait on the region they were on rather than publish into nothing. None: moves at once."""


class RegionPairSpec(_Model):
    """spec of a RegionPair (the apiserver has validated and defaulted it already)."""

    services: tuple[ServiceRoute, ...] = ()
    """The Services that follow the active region, flipped one after the other in this order."""
    service: str | None = None
    """Deprecated (use `services`): one Service that selects exactly the region's `selector`."""
    additional_services: tuple[str, ...] = ()
    """Deprecated with `service`: more Services like it, flipped after it."""
    active_region: str
    """The region the user wants active; when the resource leaves it out (a GitOps-managed pair, whose
    manifest must not own it), the `home_region`."""
    regions: tuple[Region, Region]
    failover: FailoverPolicy = FailoverPolicy()
    replication: ReplicationPolicy = ReplicationPolicy()
    pipeline: PipelinePolicy = PipelinePolicy()
    paused: bool = False
    generated_secrets: tuple[str, ...] = ()
    """Secrets (this namespace) the operator fills once: each key listed in a Secret's
    `tier0.dev/generate` annotation that it lacks gets a random value. Read by name, never listed."""

    @model_validator(mode="before")
    @classmethod
    def _home_region_by_default(cls, raw: Any) -> Any:
        # The home region (the first) is active unless the resource says otherwise: see `home_region`.
        if isinstance(raw, dict) and not raw.get("activeRegion") and not raw.get("active_region"):
            regions = raw.get("regions") or []
            if regions and isinstance(regions[0], dict) and regions[0].get("name"):
                return {**raw, "activeRegion": regions[0]["name"]}
        return raw

    @model_validator(mode="after")
    def _some_service(self) -> "RegionPairSpec":
        if not self.routes:
            raise ValueError("spec.services must name at least one Service (or the deprecated spec.service)")
        return self

    @property
    def routes(self) -> tuple[ServiceRoute, ...]:
        """The Services to flip, in order: `services`, or the deprecated `service` and
        `additionalServices` (which select exactly the region's `selector`)."""
        if self.services:
            return self.services
        legacy = (self.service, *self.additional_services) if self.service else self.additional_services
        return tuple(ServiceRoute(name=name) for name in legacy)

    @property
    def home_region(self) -> str:
        """The first region: active when spec.activeRegion is unset, and where the API's `restore`
        returns to unless told otherwise. The one place that says "the first region is the default"."""
        return self.regions[0].name

    @property
    def region_names(self) -> tuple[str, str]:
        return (self.regions[0].name, self.regions[1].name)

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


# --- status ----------------------------------------------------------------------------------------


class PipelineStatus(_Model):
    """The region's telemetry pipeline as `pipeline.assess()` judges its heartbeats: the worse of
    ingest and activity (`ok`/`idle` are healthy; `unknown`: its Redis could not be read)."""

    state: PipelineState
    reason: str = ""


class RegionStatus(_Model):
    """One region as the last probe saw it."""

    name: str
    role: Role = "unknown"
    """primary, replica, or unknown (unreachable)."""
    healthy: bool = False
    """Redis answered and the health URL (if any) answered 2xx."""
    replication_offset: int = 0
    lag_bytes: int = 0
    """For the standby: bytes behind the active primary (0 for the active region)."""
    link_up: bool = False
    """For a replica: its link to the primary is up."""
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    """When the first of the current `consecutiveFailures` was probed (None: the last probe answered)."""
    last_probe_time: datetime | None = None
    message: str = ""
    pipeline: PipelineStatus | None = None
    redis_endpoints: EndpointState = "unknown"
    """The region's Redis Service as its EndpointSlices show it (the Kubernetes witness)."""
    api_endpoints: EndpointState = "unknown"
    """The same for the Service of its healthURL."""


class ServiceStatus(_Model):
    """Where one of `spec.services` points, as the operator last set or verified it."""

    name: str
    region: str | None = None
    """The region its selector selects (None: neither, e.g. not bootstrapped, or the Service is missing)."""
    routed_at: datetime | None = None
    """When the operator last moved it (None: found as wanted)."""
    message: str = ""


class TransitionStatus(_Model):
    """A switchover or failover in progress, written before its first step so it can be resumed."""

    type: TransitionType
    from_region: str = Field(validation_alias="from", serialization_alias="from")
    to_region: str = Field(validation_alias="to", serialization_alias="to")
    reason: str = ""
    epoch: int
    started_at: datetime
    lost_bytes: int = 0
    """Last known replication lag when it started: what a failover may have lost."""
    attempt: int = 1
    """1 for a new request; n for the (n-1)th retry of a switchover that was rolled back."""
    trigger: Trigger = "Requested"
    witnesses: tuple[Witness, ...] = ()
    """For a failover: who saw the active region fail when it was decided (`Witness`)."""
    detection_seconds: float | None = None
    """For a failover: from the first failed probe of the streak to the decision."""


class LastTransition(_Model):
    """The most recent finished transition."""

    type: TransitionType
    from_region: str = Field(validation_alias="from", serialization_alias="from")
    to_region: str = Field(validation_alias="to", serialization_alias="to")
    reason: str = ""
    outcome: Outcome
    epoch: int
    started_at: datetime
    completed_at: datetime
    duration_seconds: float
    lost_bytes: int = 0
    attempt: int = 1
    trigger: Trigger = "Requested"
    witnesses: tuple[Witness, ...] = ()
    detection_seconds: float | None = None
    summary: str = ""
    """One line for `kubectl get rp`, e.g. `Switchover region1->region2 (0.06s)`."""


class ReplicationStatus(_Model):
    """What protects acknowledged writes right now (spec.replication)."""

    min_replicas_to_write: int | None = None
    """The active primary's `min-replicas-to-write` as the operator last set it (None: not yet)."""
    at_risk: bool = False
    """True while writes are acknowledged by the primary alone (standby down, policy Accept)."""
    at_risk_since: datetime | None = None
    standby_out_of_sync_since: datetime | None = None
    """When the standby last stopped replicating (None: it replicates); `whenStandbyDown: Accept`
    lowers `min-replicas-to-write` once this is `failureThreshold` probe intervals old."""


class Condition(_Model):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class RegionPairStatus(_Model):
    """status of a RegionPair: written by the operator only, in one place (its `write_status`)."""

    active_region: str | None = None
    """The region that is active now: the truth (spec.activeRegion is the wish)."""
    requested_region: str | None = None
    """The spec.activeRegion the operator last acted on."""
    phase: Phase = "Pending"
    epoch: int = 0
    """Grows by one with every promotion; also written into the primary's Redis (`keys.PAIR_EPOCH`)."""
    lag_bytes: int = 0
    observed_generation: int | None = None
    regions: tuple[RegionStatus, ...] = ()
    transition: TransitionStatus | None = None
    last_transition: LastTransition | None = None
    replication: ReplicationStatus | None = None
    services: tuple[ServiceStatus, ...] = ()
    """Each of spec.services in flip order, and the region it routes to."""
    conditions: tuple[Condition, ...] = ()

    def region(self, name: str) -> RegionStatus | None:
        return next((r for r in self.regions if r.name == name), None)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def in_transition(self) -> bool:
        return self.transition is not None or self.phase in TRANSITIONAL_PHASES


class ObjectMeta(_Model):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    annotations: dict[str, str] = Field(default_factory=dict)


class RegionPair(_Model):
    """A whole RegionPair object as the apiserver returns it."""

    api_version: str = API_VERSION
    kind: str = KIND
    metadata: ObjectMeta = ObjectMeta()
    spec: RegionPairSpec
    status: RegionPairStatus = RegionPairStatus()

    @classmethod
    def from_object(cls, obj: Any) -> "RegionPair":
        """Parse an apiserver object (a missing or null status reads as the empty status)."""
        raw = dict(obj)
        if raw.get("status") is None:
            raw.pop("status", None)
        return cls.model_validate(raw)


# --- drills ----------------------------------------------------------------------------------------

DrillKind = Literal["Planned", "Unplanned"]


class DrillReport(_Model):
    """What one failover drill (`kubectl tier0 drill`) measured, from the operator's view: the times
    are the operator's status timestamps, except `fault_at` / `requested_at`, the drill's own clock
    when it acted (so `detection_seconds` and `outage_seconds` include any skew between the two)."""

    kind: DrillKind
    passed: bool
    from_region: str = Field(validation_alias="from", serialization_alias="from")
    to_region: str | None = Field(default=None, validation_alias="to", serialization_alias="to")
    """Where the pair went (None: it did not move)."""
    started_at: datetime
    finished_at: datetime
    requested_at: datetime | None = None
    """Planned: when spec.activeRegion was set."""
    fault_at: datetime | None = None
    """Unplanned: when the active region's Redis was taken down."""
    transition_type: TransitionType | None = None
    outcome: Outcome | None = None
    epoch: int | None = None
    detection_seconds: float | None = None
    """From the request (planned) or the fault (unplanned) to the operator starting the transition."""
    transition_seconds: float | None = None
    """The transition itself (`lastTransition.durationSeconds`)."""
    outage_seconds: float | None = None
    """Writes not accepted, as the operator sees it: the transition (planned, writes paused from
    pause to unpause) or from the fault to the transition's end (unplanned)."""
    bytes_at_risk: int = 0
    """The standby's replication lag when the drill started: what an unplanned loss could lose."""
    lost_bytes: int = 0
    """The transition's `lostBytes`: the last lag the operator knew when it started."""
    restored: bool | None = None
    """Unplanned: the Redis taken down was brought back (and rejoined as a replica)."""
    message: str = ""


def manifest(name: str, spec: RegionPairSpec, namespace: str | None = None) -> dict[str, Any]:
    """A RegionPair to create (no status: the operator writes it)."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    body = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": body}


def now() -> datetime:
    return datetime.now(UTC)
