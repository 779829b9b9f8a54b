"""Response and request models of the console's endpoints (`/api/console/*`)."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tier0_services.api.schemas import INTEGER_ONLY, Transition

RegionSource = Literal["self", "peer-api", "regionpair", "unknown"]


class RegionView(BaseModel):
    """One region as the answering region knows it. Fields it cannot know are null."""

    name: str
    source: RegionSource
    """`self` (the answering region, from its own Redis), `peer-api` (asked the other region's API,
    `TIER0_PEER_API_URL`), `regionpair` (the operator's RegionPair status), `unknown` (none of them)."""
    role: str | None
    """`primary` / `replica`."""
    status: str | None
    """`active` / `standby` (or what the operator recorded)."""
    healthy: bool | None
    version: str | None
    active_devices: int | None
    active_users: int | None
    lag_bytes: int | None
    """Replication lag of this region's Redis behind the primary (0 for the primary)."""
    error: str | None = None
    """Why the region could not be asked (peer API down, RegionPair unreadable)."""


class PairView(BaseModel):
    """The RegionPair's status as the operator wrote it (null fields: not reported yet)."""

    name: str
    active_region: str | None
    desired_region: str | None
    phase: str | None
    epoch: int | None
    in_transition: bool
    last_transition: Transition | None


class Telemetry(BaseModel):
    messages_total: int
    """Device messages the ingest workers handled (stored, stale or dead-lettered), cumulative:
    the console plots its rate."""
    devices_by_state: dict[str, int]
    """Devices whose newest message is OK / WARN / ALERT, summed over the sites."""
    known_devices: int


class Overview(BaseModel):
    answered_by: str
    """The region whose API answered this request (through the global Service: the active one)."""
    regions: list[RegionView]
    pair: PairView | None
    pair_error: str | None
    """Why the RegionPair could not be read (no Kubernetes configuration, apiserver down)."""
    telemetry: Telemetry
    timestamp: datetime


class TrafficRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: Annotated[int, Field(ge=1, le=5000), INTEGER_ONLY] = 1000
    """Requests to send (capped by `TIER0_TRAFFIC_MAX_REQUESTS`)."""
    concurrency: Annotated[int, Field(ge=1, le=32), INTEGER_ONLY] = 16
    """Requests in flight at once."""


class TrafficRun(BaseModel):
    state: Literal["idle", "running", "finished"]
    requests: int
    """Requests planned (after the server-side cap)."""
    concurrency: int
    max_seconds: float
    """The burst stops sending after this long (`TIER0_TRAFFIC_MAX_SECONDS`)."""
    sent: int
    by_status: dict[str, int]
    """Answers by HTTP status (`error` for requests that raised)."""
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float
    stopped_by: Literal["done", "time limit"] | None
    latency_ms: dict[str, float]
    """p50 / p95 / p99 / max of the burst's own requests."""
    targets: list[str]
    """Paths the burst requests, round robin."""
