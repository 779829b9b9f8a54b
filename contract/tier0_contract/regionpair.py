"""The RegionPair resource: its API coordinates, its spec and its status — the one model of it.

The operator parses the spec with `RegionPairSpec` and writes exactly a `RegionPairStatus`; the
region API reads both through `RegionPair`; the tests build manifests from these models; and the
CRD (crds/regionpairs.tier0.dev.yaml) is generated from this module by `make crds`
(hack/tier0_dev/crd.py): the models' fields are its schema, their docstrings its descriptions, their
bounds, patterns, defaults and CEL rules its validation, so the model refuses what the apiserver
refuses. A newcomer who asks "what does a RegionPair's status look like" reads `RegionPairStatus`.

Field names are the camelCase names of the resource (`activeRegion`); in Python they are
snake_case (`active_region`). Models are frozen and ignore unknown fields, so an older reader does
not break on a newer operator's status. Times are UTC datetimes (RFC 3339 on the wire).
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict, JsonValue

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

# --- the CustomResourceDefinition around the schema ------------------------------------------------
# What the CRD says besides the schema of spec and status (which the models below are):
# hack/tier0_dev/crd.py (`make crds`) writes crds/regionpairs.tier0.dev.yaml from this module.

SCOPE = "Namespaced"
SINGULAR = "regionpair"
LIST_KIND = f"{KIND}List"
SHORT_NAMES = ("rp",)
CATEGORIES = ("tier0",)
DESCRIPTION = (
    "A service that runs in two regions; the operator keeps one region active (its Redis is the primary, the"
    " other replicates from it), moves traffic by patching Service selectors, switches over when"
    " spec.activeRegion changes and fails over when the active region stops answering."
)
PRINTER_COLUMNS: tuple[dict[str, Any], ...] = (
    {
        "name": "Active",
        "type": "string",
        "jsonPath": ".status.activeRegion",
        "description": "The region whose Redis is the primary and behind the Service selector.",
    },
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Lag",
        "type": "integer",
        "jsonPath": ".status.lagBytes",
        "description": "Replication lag of the standby behind the active region, in bytes.",
    },
    {"name": "Last transition", "type": "string", "jsonPath": ".status.lastTransition.summary"},
    {
        "name": "Pipeline",
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{PIPELINE_HEALTHY}")].reason',
        "description": "The active region's telemetry pipeline (PipelineOk, PipelineIdle, PipelineStalled,"
        " PipelineDead).",
    },
    {"name": "Epoch", "type": "integer", "jsonPath": ".status.epoch", "priority": 1},
    {
        "name": "At risk",
        "type": "boolean",
        "jsonPath": ".status.replication.atRisk",
        "description": "Writes are acknowledged by the primary alone (standby down, replication.whenStandbyDown"
        " Accept).",
        "priority": 1,
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{READY}")].message',
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        serialize_by_alias=True,
        use_attribute_docstrings=True,  # a field's docstring is its description in the CRD
    )

    def to_json(self) -> dict[str, Any]:
        """The resource's JSON form (camelCase, RFC 3339 times, None fields kept as null)."""
        out: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        return out


# --- spec ------------------------------------------------------------------------------------------
# Every field's docstring is its description in the CRD (`kubectl explain`); bounds, patterns and
# CEL rules written here are the CRD's too (hack/tier0_dev/crd.py generates crds/ from this module).

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNSLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
ServiceName = Annotated[str, Field(max_length=63, pattern=DNS_LABEL)]  # list items: the pattern implies length 1
SecretName = Annotated[str, Field(max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]  # a DNS subdomain


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` rule: the apiserver refuses a resource it fails, with `message`."""
    out: JsonDict = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def at_least(field: str, floor: float, message: str) -> JsonDict:
    # `minimum: 0.1` alone lets an integer 0 through (kube-openapi compares integers against the
    # truncated minimum), so a float's floor is also a CEL rule.
    return cel(f"!has(self.{field}) || self.{field} >= {floor}", message, f".{field}")


class SecretRef(_Model):
    """Secret (in this namespace) holding the Redis password."""

    name: str = Field(min_length=1)
    """Secret name."""
    key: str = "password"
    """Key in the Secret."""


class CASecretRef(_Model):
    """Secret (in this namespace) holding the CA bundle (PEM)."""

    name: str = Field(min_length=1)
    """Secret name."""
    key: str = "ca.crt"
    """Key in the Secret."""


class RedisTLS(_Model):
    """Connect with TLS, verifying the server's certificate (it must name host) against a CA bundle."""

    ca_secret_ref: CASecretRef


class RedisEndpoint(_Model):
    """This region's Redis server."""

    host: str = Field(min_length=1, max_length=253)
    """Host name or IP of the Redis server, as the operator (and, without replicationHost, the other
    region's Redis) reaches it."""
    port: int = Field(default=6379, ge=1, le=65535)
    """Redis port."""
    username: Annotated[str, Field(min_length=1)] | None = None
    """Redis ACL user the operator authenticates as (with the password of passwordSecretRef; the
    chart: tier0-operator); unset means the password alone (the default user). With a user, the
    servers hold their replication credentials themselves (masteruser/masterauth), so REPLICAOF is
    sent without setting masterauth."""
    password_secret_ref: SecretRef | None = None
    tls: RedisTLS | None = None
    replication_host: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """Host the other region's Redis replicates from when it differs from host (a cross-region
    endpoint, or a fault injector on the replication link alone); default host."""
    replication_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """Port for replicationHost; default port."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def replication_endpoint(self) -> tuple[str, int]:
        """(host, port) a replica of this Redis connects to."""
        return self.replication_host or self.host, self.replication_port or self.port


class Region(_Model):
    name: DNSLabel
    """Region name, e.g. region1 (a DNS label)."""
    selector: dict[str, str] = Field(min_length=1, max_length=16)
    """Pod labels of this region; the Service selector is set to these when it is active."""
    redis: RedisEndpoint
    health_url: Annotated[str, Field(pattern=r"^https?://")] | None = Field(default=None, alias="healthURL")
    """HTTP URL of the region API's health endpoint; a non-2xx answer counts as a failed probe."""


class FailoverPolicy(_Model):
    """How regions are probed and when the operator fails over on its own."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                at_least("probeIntervalSeconds", 0.1, "failover.probeIntervalSeconds must be at least 0.1 seconds"),
                at_least(
                    "switchoverTimeoutSeconds", 0.1, "failover.switchoverTimeoutSeconds must be at least 0.1 seconds"
                ),
                at_least("fastConfirmSeconds", 0.1, "failover.fastConfirmSeconds must be at least 0.1 seconds"),
                at_least(
                    "fastProbeIntervalSeconds", 0.05, "failover.fastProbeIntervalSeconds must be at least 0.05 seconds"
                ),
            ]
        }
    )

    mode: Literal["Automatic", "Manual"] = "Automatic"
    """Automatic fails over after failureThreshold failed probes; Manual only reports."""
    probe_interval_seconds: float = Field(default=1.0, ge=0.1, le=60)
    """Seconds between two probes of each region."""
    failure_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive failed probes of the active region before a failover."""
    switchover_timeout_seconds: float = Field(default=5.0, ge=0.1, le=60)
    """How long a switchover may wait for the standby to catch up while writes are paused; on timeout
    it is rolled back (writes resume on the old primary)."""
    on_disruption: Literal["Switchover", "Ignore"] = "Switchover"
    """When Kubernetes takes the active region down on purpose (its Redis pod, or its last serving API
    pod, is terminating: a drain, an eviction, a deletion; or its serving Redis pod was force-deleted,
    which the kubelet still stops with a grace of about 2 s), switch over to the standby first, without
    loss, instead of failing over once it is gone. The pods' EndpointSlices tell."""
    fast_confirm_seconds: float = Field(default=0.25, ge=0.1, le=60)
    """The fast path: once the active region's probes fail and an independent witness agrees (the
    standby's replication link lost or silent, or Kubernetes showing the active Redis pod not ready or
    gone), fail over when the probes have kept failing, with a witness still agreeing, for this long.
    Probes failing alone keep failureThreshold x probeIntervalSeconds."""
    fast_probe_interval_seconds: float = Field(default=0.1, ge=0.05, le=60)
    """Seconds between two probes while the fast path confirms."""
    link_silence_seconds: int = Field(default=3, ge=2, le=60)
    """The standby's link also counts as lost when the primary has sent it nothing for this long
    (master_last_io_seconds_ago; the primary pings its replica every second): a frozen or silently
    partitioned primary. Whole seconds, as Redis counts."""


class ReplicationPolicy(_Model):
    """How acknowledged writes are protected by the standby. While the standby replicates, the primary
    runs with min-replicas-to-write 1 and min-replicas-max-lag minReplicasMaxLagSeconds, so a primary
    cut from its replica (an isolated old primary too) stops accepting writes after that lag."""

    # Issue 9: acknowledged means replicated.
    when_standby_down: Literal["Accept", "Hold"] = "Accept"
    """Accept: once the standby has been out of sync for failureThreshold probe intervals, the primary
    goes on accepting writes alone (min-replicas-to-write 0; status.replication.atRisk) until the
    standby is back in sync. Hold: never; writes stop until the standby is back."""
    min_replicas_max_lag_seconds: int = Field(default=2, ge=1, le=60)
    """Redis min-replicas-max-lag of the primary, in seconds."""


class PipelinePolicy(_Model):
    """How the telemetry pipeline's heartbeats are judged and what a stalled pipeline does."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                at_least("stallAfterSeconds", 1.0, "pipeline.stallAfterSeconds must be at least 1 second")
            ]
        }
    )

    stall_after_seconds: float = Field(default=10.0, ge=1, le=3600)
    """A worker that holds messages and stored nothing for this long (or sent no heartbeat) is stalled
    / dead."""
    on_stall: Literal["Report", "Failover"] = "Report"
    """Report (the phase becomes Degraded, with the reason) or Failover to a healthy standby."""


class ServiceRoute(_Model):
    name: DNSLabel
    """The Service's name."""
    selector: dict[str, str] = Field(default_factory=dict, max_length=16)
    """Labels this Service selects besides the active region's selector, winning over it on a shared
    key (for example app.kubernetes.io/component: emqx, so that the global MQTT Service selects the
    active region's broker pods where the region's selector names its API pods)."""
    feeds: pipeline.Component | None = None
    """The pipeline component that takes what clients send through this Service (ingest for the MQTT
    Service). It moves to a region only while a worker of that component there reports itself
    connected to its broker (ingest: and subscribed), because an MQTT broker acknowledges a message
    nobody subscribes to and drops it (a restarted broker keeps no shared subscription until its
    workers return); until then clients stay on the region they were on. Unset: it moves at once."""


def _spec_schema(schema: JsonDict) -> None:
    # activeRegion may be left out (a GitOps-managed pair's manifest must not own it): the model's
    # validator then reads the first region, so the apiserver requires only the regions.
    schema["required"] = ["regions"]
    schema["x-kubernetes-validations"] = [
        cel(
            "has(self.service) || (has(self.services) && size(self.services) > 0)",
            "spec.services must name at least one Service (or the deprecated spec.service)",
            ".services",
            "FieldValueRequired",
        ),
        cel(
            "!has(self.service) || !has(self.services) || size(self.services) == 0",
            "spec.service is deprecated: list every Service in spec.services instead of both",
            ".service",
        ),
        cel(
            "!has(self.activeRegion) || self.regions.exists(r, r.name == self.activeRegion)",
            "spec.activeRegion must be the name of one of spec.regions",
            ".activeRegion",
            "FieldValueInvalid",
        ),
        cel(
            "size(self.regions) != 2 || self.regions[0].name != self.regions[1].name",
            "spec.regions must have two distinct names",
            ".regions",
        ),
        cel(
            "size(self.regions) != 2 || self.regions[0].redis.host != self.regions[1].redis.host"
            " || self.regions[0].redis.port != self.regions[1].redis.port",
            "the two regions must use different Redis servers (host:port)",
            ".regions",
        ),
    ]


# Transition rules (oldSelf) on spec.regions: compared by region name, so reordering is allowed.
_SEE_README = '(see operator/README.md, "Changing a pair\'s regions")'
_REGIONS_IMMUTABLE: list[JsonValue] = [
    cel(
        "self.all(r, oldSelf.exists(o, o.name == r.name))",
        f"region names are immutable: spec.regions[].name may not change {_SEE_README}",
    ),
    cel(
        "self.all(r, !oldSelf.exists(o, o.name == r.name) || oldSelf.exists(o, o.name == r.name"
        " && o.redis.host == r.redis.host && o.redis.port == r.redis.port"
        " && (has(o.redis.replicationHost) ? o.redis.replicationHost : '')"
        " == (has(r.redis.replicationHost) ? r.redis.replicationHost : '')"
        " && (has(o.redis.replicationPort) ? o.redis.replicationPort : 0)"
        " == (has(r.redis.replicationPort) ? r.redis.replicationPort : 0)))",
        "Redis endpoints are immutable: spec.regions[].redis host, port, replicationHost and"
        f" replicationPort may not change {_SEE_README}",
    ),
    cel(
        "self.all(r, !oldSelf.exists(o, o.name == r.name) || oldSelf.exists(o, o.name == r.name"
        " && o.selector == r.selector))",
        f"selectors are immutable: spec.regions[].selector may not change {_SEE_README}",
    ),
]


class RegionPairSpec(_Model):
    """What the user asks of a RegionPair (the operator reads it validated and defaulted by the
    apiserver)."""

    model_config = ConfigDict(json_schema_extra=_spec_schema)

    services: tuple[ServiceRoute, ...] = Field(
        default=(),
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """The Services (in this namespace) whose selector follows the active region, flipped one after the
    other in this order in a switchover or failover (the API first, say, then the brokers). Each
    selects the active region's selector plus its own labels."""
    service: DNSLabel | None = None
    """Deprecated: use services. Name of one Service (in this namespace) whose selector follows the
    active region: the operator sets it to the active region's selector."""
    additional_services: tuple[ServiceName, ...] = Field(
        default=(), max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Deprecated with service (use services). More Services like service, flipped after it."""
    active_region: str = Field(min_length=1)
    """The region the user wants active (default: the first of regions). Changing it is a planned
    switchover. After an automatic failover the operator leaves it alone (status.activeRegion tells the
    truth); set it to status.activeRegion to acknowledge the failover. A GitOps-managed pair leaves it
    out of its manifest, so that a sync never owns (and never resets) it."""
    regions: tuple[Region, Region] = Field(json_schema_extra={"x-kubernetes-validations": _REGIONS_IMMUTABLE})
    """Exactly two regions. Their names, Redis endpoints and selectors are fixed once the pair exists
    (the operator promotes, demotes and routes by them); to change one, follow operator/README.md,
    "Changing a pair's regions"."""
    failover: FailoverPolicy = FailoverPolicy()
    replication: ReplicationPolicy = ReplicationPolicy()
    pipeline: PipelinePolicy = PipelinePolicy()
    paused: bool = False
    """Maintenance switch; while true the operator probes and reports but changes nothing."""
    generated_secrets: tuple[SecretName, ...] = Field(
        default=(), max_length=32, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Secrets (in this namespace) the operator fills once, GitOps-safe: each key listed in a Secret's
    tier0.dev/generate annotation that it lacks gets a random value; a key with a value is never
    replaced. The operator reads them by name (it may not list Secrets)."""

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
    """The region's telemetry pipeline, judged from the workers' heartbeats in the active primary: the
    worse of ingest and activity (ok and idle are healthy; unknown: its Redis could not be read)."""

    state: PipelineState
    reason: str = ""


class RegionStatus(_Model):
    """One region as the last probe saw it."""

    name: str
    role: Role = "unknown"
    """primary, replica or unknown (unreachable)"""
    healthy: bool = False
    """Redis answered and the health URL (if any) answered 2xx."""
    replication_offset: int = 0
    lag_bytes: int = 0
    """For the standby: bytes behind the active primary (0 for the active region)."""
    link_up: bool = False
    """For a replica, whether its link to the primary is up."""
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    """When the first of the current consecutive failures was probed (absent: the last probe
    answered)."""
    last_probe_time: datetime | None = None
    message: str = ""
    pipeline: PipelineStatus | None = None
    redis_endpoints: EndpointState = "unknown"
    """The region's Redis Service as its EndpointSlices show it (the Kubernetes witness)."""
    api_endpoints: EndpointState = "unknown"
    """The same for the Service of its healthURL."""


class ServiceStatus(_Model):
    """Where one of spec.services points, as the operator last set or verified it."""

    name: str
    region: str | None = None
    """The region it routes to (absent: neither, e.g. not bootstrapped, or the Service is missing)."""
    routed_at: datetime | None = None
    """When the operator last moved it (absent: found as wanted)."""
    message: str = ""


WITNESSES_DESCRIPTION = "For a failover: who saw the active region fail (Probes, StandbyLink, Kubernetes)."
DETECTION_DESCRIPTION = "For a failover: from the first failed probe of the streak to the decision."


class TransitionStatus(_Model):
    """The switchover or failover in progress (absent when none), written before its first step so
    that a restarted operator resumes it."""

    type: TransitionType
    from_region: str = Field(validation_alias="from", serialization_alias="from")
    to_region: str = Field(validation_alias="to", serialization_alias="to")
    reason: str = ""
    epoch: int
    started_at: datetime
    lost_bytes: int = 0
    """Last known replication lag when it started: what a failover may have lost."""
    attempt: int = Field(default=1, ge=1)
    """1 for a new request; n for the (n-1)th retry of a rolled-back switchover."""
    trigger: Trigger = "Requested"
    """What started it: spec.activeRegion (Requested), a drain or deletion of the active region
    (Disruption), failed probes (Failure), a stalled pipeline (PipelineStall)."""
    witnesses: tuple[Witness, ...] = Field(default=(), description=WITNESSES_DESCRIPTION)
    detection_seconds: float | None = Field(default=None, description=DETECTION_DESCRIPTION)


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
    attempt: int = Field(default=1, ge=1)
    trigger: Trigger = "Requested"
    witnesses: tuple[Witness, ...] = Field(default=(), description=WITNESSES_DESCRIPTION)
    detection_seconds: float | None = Field(default=None, description=DETECTION_DESCRIPTION)
    summary: str = ""
    """One line for kubectl get, e.g. Switchover region1->region2 (0.06s)."""


class ReplicationStatus(_Model):
    """What protects acknowledged writes right now (spec.replication)."""

    min_replicas_to_write: int | None = None
    """The active primary's min-replicas-to-write, as the operator last set it (absent: not yet)."""
    at_risk: bool = False
    """Writes are acknowledged by the primary alone (standby down, whenStandbyDown Accept)."""
    at_risk_since: datetime | None = None
    standby_out_of_sync_since: datetime | None = None
    """When the standby last stopped replicating (absent: it replicates); whenStandbyDown Accept
    lowers min-replicas-to-write once this is failureThreshold probe intervals old."""


class Condition(_Model):
    type: str
    status: ConditionStatus
    reason: str = ""
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class RegionPairStatus(_Model):
    """What the operator observed and did; written by the operator only."""

    active_region: str | None = None
    """The region that is active now (the truth; spec.activeRegion is the wish)."""
    requested_region: str | None = None
    """The spec.activeRegion the operator last acted on."""
    phase: Phase = "Pending"
    epoch: int = 0
    """Grows by one with every promotion; a transition is started with a compare-and-set on it. Also
    written into the primary's Redis: among Redis that all claim to be primary, clients pick the
    highest epoch."""
    lag_bytes: int = 0
    """Replication lag of the standby in bytes (0 when in sync)."""
    observed_generation: int | None = None
    regions: tuple[RegionStatus, ...] = ()
    transition: TransitionStatus | None = None
    last_transition: LastTransition | None = None
    replication: ReplicationStatus | None = None
    services: tuple[ServiceStatus, ...] = ()
    """Each of spec.services in flip order, and the region its selector selects."""
    conditions: tuple[Condition, ...] = Field(
        default=(), json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
    )

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
