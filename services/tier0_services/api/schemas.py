"""Response and request models of the region API: the seeds' shapes, documented in OpenAPI.

They are separate from the telemetry contract (`tier0_contract.models`): the contract is strict
about what enters Redis, these are what leaves the API, lenient about extra stored fields so that
a newer writer never breaks an older reader.
"""

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

SITE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Site and device ids (the contract's `Ident`): a path segment that does not match is a 422."""

REGION_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""Region names: Kubernetes label values (lowercase, digits, inner dashes)."""

NOT_BLANK_PATTERN = r"[^\t\n\v\f\r \x1c-\x1f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
"""Text holding at least one character that is not whitespace. Spelled out rather than as the
not-whitespace class, whose meaning differs between Python, pydantic's Rust regex and JSON Schema
(ECMA) engines; the set is a superset of what `str.strip()` removes."""


def _integer_only(value: Any) -> Any:
    if isinstance(value, bool | str | bytes):
        raise ValueError("must be a JSON integer (not a boolean or a string)")
    return value


INTEGER_ONLY = BeforeValidator(_integer_only)
"""`Annotated[int, Field(ge=.., le=..), INTEGER_ONLY]`: an integer as JSON Schema means it, `3` or
`3.0`, never `true`, `"3"` or `3.5` (422). After the `Field`, so the bounds stay in the schema."""


def not_blank(max_length: int) -> Any:
    """`Annotated[str, not_blank(n)]`: 1..n characters, not whitespace only (422 otherwise)."""
    return Field(min_length=1, max_length=max_length, pattern=NOT_BLANK_PATTERN)


_LENIENT = ConfigDict(extra="ignore")


# --- core --------------------------------------------------------------------------------------------


class Root(BaseModel):
    service: str
    region: str
    version: str
    docs: str
    console: str
    """The web console (a browser asking `/` for HTML is redirected there)."""
    status: str
    timestamp: datetime


class Health(BaseModel):
    status: str
    region: str


class PipelineHealth(BaseModel):
    state: Literal["ok", "idle", "stalled", "dead", "absent"]
    """`ok`/`idle` are healthy; `stalled` (messages held, nothing stored), `dead` (no heartbeat),
    `absent` (no worker of this region has reported) are not."""
    reason: str
    workers: int
    """Workers of this region with a recent heartbeat."""


class Status(BaseModel):
    region: str
    status: str
    """`active` / `standby` (or what the operator recorded in `{region}:status`)."""
    role: Literal["primary", "replica"]
    """Role of this region's Redis (INFO replication)."""
    version: str
    startup_time: datetime
    active_devices: int
    active_users: int
    timestamp: datetime
    pipeline: dict[str, PipelineHealth] = {}
    """Per component (`ingest`, `activity`): the verdict of `tier0_contract.pipeline.assess` over the
    heartbeats of this region's workers."""


class AppVersion(BaseModel):
    region: str
    version: str
    """Version recorded in Redis for that region; this API's own version for its own region when
    none is recorded (another region that recorded none is a 404)."""
    timestamp: datetime


# --- devices -----------------------------------------------------------------------------------------


class ActiveDevices(BaseModel):
    region: str
    active_devices: int
    """Devices whose newest message is at most `window_seconds` old (counted at request time)."""
    known_devices: int
    """Devices that ever sent a valid message."""
    sites: int
    window_seconds: float
    timestamp: datetime


class DeviceStatusOut(BaseModel):
    model_config = _LENIENT
    state: str
    code: str
    message: str


class LocationOut(BaseModel):
    model_config = _LENIENT
    lat: float
    lon: float


class DeviceAlert(BaseModel):
    """A device whose newest message is in ALERT: that message, as the device sent it."""

    model_config = _LENIENT
    device_id: str
    device_type: str
    site_id: str
    timestamp_utc: datetime
    firmware: str
    status: DeviceStatusOut
    metrics: dict[str, float]
    location: LocationOut | None = None
    tags: dict[str, str] = {}


class DeviceAlerts(BaseModel):
    region: str
    site_id: str | None
    total_alerts: int
    """Devices in ALERT (at `site_id` when filtered)."""
    count: int
    """Devices in this answer (at most `limit`), newest first."""
    devices: list[DeviceAlert]
    timestamp: datetime


class SiteMetrics(BaseModel):
    site_id: str
    device_count: int
    ok_count: int
    warn_count: int
    alert_count: int
    devices_by_type: dict[str, int]
    last_seen: datetime | None
    """Time of the newest message from the site."""
    timestamp: datetime


# --- users -------------------------------------------------------------------------------------------


class UserOut(BaseModel):
    model_config = _LENIENT
    user_id: str
    session_id: str
    login_time_utc: datetime
    last_activity_utc: datetime
    ip_address: str
    client: str
    location: str
    connections: int


class ActiveUsers(BaseModel):
    active_users: int
    """`metrics.active_users` of the newest activity message."""
    as_of: datetime | None
    """When that message was produced (null before the first one)."""
    count: int
    users: list[UserOut]
    """Signed-in users, most recently active first (at most `limit`)."""
    timestamp: datetime


class ActivityMetricsOut(BaseModel):
    model_config = _LENIENT
    active_users: int
    active_connections: int
    server_cpu_pct: float
    server_memory_gb: float
    average_latency_ms: float


class ActivitySample(BaseModel):
    model_config = _LENIENT
    message_id: str
    timestamp_utc: datetime
    site_id: str
    metrics: ActivityMetricsOut


class UserActivity(BaseModel):
    latest: ActivitySample | None
    history: list[ActivitySample]
    """Earlier messages, newest first (at most `limit`)."""
    timestamp: datetime


class UserConnections(BaseModel):
    active_connections: int
    """`metrics.active_connections` of the newest activity message."""
    users_with_connections: int
    count: int
    users: list[UserOut]
    """Users with at least one open connection, most connections first (at most `limit`)."""
    timestamp: datetime


# --- failover ----------------------------------------------------------------------------------------


class Transition(BaseModel):
    """`status.lastTransition` of the RegionPair, as the operator wrote it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    type: str | None = None
    from_region: str | None = Field(None, validation_alias=AliasChoices("from", "from_region"))
    to_region: str | None = Field(None, validation_alias=AliasChoices("to", "to_region"))
    reason: str | None = None
    outcome: str | None = None
    epoch: int | None = None
    started_at: datetime | None = Field(None, validation_alias=AliasChoices("startedAt", "started_at"))
    completed_at: datetime | None = Field(None, validation_alias=AliasChoices("completedAt", "completed_at"))
    duration_seconds: float | None = Field(None, validation_alias=AliasChoices("durationSeconds", "duration_seconds"))
    lost_bytes: int | None = Field(None, validation_alias=AliasChoices("lostBytes", "lost_bytes"))


class FailoverStatus(BaseModel):
    name: str
    namespace: str
    active_region: str | None
    """`status.activeRegion`: the region active now, as the operator reports it."""
    desired_region: str | None
    """`spec.activeRegion`: the region asked for."""
    regions: list[str]
    phase: str | None
    epoch: int | None
    lag_bytes: int | None
    in_transition: bool
    paused: bool
    last_transition: Transition | None
    region_status: list[dict[str, Any]]
    """`status.regions` as the operator reports them (role, health, replication offsets)."""
    timestamp: datetime


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: Annotated[str | None, Field(min_length=1, max_length=63, pattern=REGION_PATTERN)] = None
    """Region to make active; default: the RegionPair's first region (its home region)."""


class FailoverResult(BaseModel):
    status: Literal["success", "unchanged"]
    source_region: str
    target_region: str
    failover_latency_seconds: float
    """Measured by the API: from patching `spec.activeRegion` until the operator reported the
    target active and Healthy (0 when nothing had to move)."""
    message: str
    timestamp: datetime
    phase: str | None
    epoch: int | None
    operator_duration_seconds: float | None = None
    """`status.lastTransition.durationSeconds` of this transition, when the operator reports it."""
    lost_bytes: int | None = None
    """`status.lastTransition.lostBytes` of this transition, when the operator reports it."""


# --- images and diagnostics: their models live in `tier0_services.api.ai_models` ---------------------


# --- decoding stored values ------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def decode_stored(model: type[M], raw: Iterable[bytes | None]) -> list[M]:
    """Each stored JSON value as `model`: missing ones skipped, unreadable ones logged and skipped
    (one bad entry must not turn a list into a 500)."""
    out = []
    for value in raw:
        if value is None:
            continue
        try:
            out.append(model.model_validate_json(value))
        except ValidationError as exc:
            log.warning("skipping a stored value that is not a %s: %s", model.__name__, exc.errors()[:1])
    return out
