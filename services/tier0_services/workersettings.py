"""The settings every pipeline writer shares (the ingest worker and the activity consumer): which
Redis endpoints of the pair it writes to, how it follows the primary, the acknowledgement policy's
knobs (`ackpolicy`), the timestamp rule, heartbeats and its /metrics port. Each worker's settings
derive from `WorkerSettings` and add only what its broker needs, so a knob both have is spelled,
defaulted and documented once."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tier0_contract import liveness, timestamps
from tier0_services import connect


class WorkerSettings(BaseSettings, connect.RedisAccess):
    """`TIER0_<NAME>` variables or `--<name>` flags (flags win). A subclass sets `COMPONENT` and
    `cli_prog_name`."""

    model_config = SettingsConfigDict(
        env_prefix="TIER0_",
        frozen=True,
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    COMPONENT: ClassVar[str]
    """`ingest` or `activity`: the default worker id is tier0-<component>-<region>."""

    region: str = Field("region1", description="region this worker runs in (reported in its heartbeat)")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="this region's Redis")
    peer_redis_urls: list[str] = Field(
        default_factory=list,
        description="the other region(s)' Redis; the worker writes to whichever endpoint is the current primary",
    )
    client_id: str = Field(
        "", description="worker id in heartbeats, e.g. the pod name (default: tier0-<component>-<region>)"
    )
    resolve_interval: float = Field(
        0.5, gt=0, description="seconds between primary re-resolutions (at once after READONLY/NOREPLICAS/errors)"
    )
    replicated_ack: bool = Field(
        True, description="acknowledge only after WAIT reports the write on a replica (see services/README.md)"
    )
    replica_ack_timeout: float = Field(1.0, gt=0, description="seconds one WAIT may block before the policy decides")
    heartbeat_interval: float = Field(1.0, gt=0, description="seconds between pipeline heartbeats")
    timestamp_skew: float = Field(
        timestamps.FUTURE_SKEW_SECONDS,
        description="seconds a message may be dated ahead before it counts as future_clamped",
    )
    timestamp_max_age: float = Field(
        timestamps.MAX_AGE_SECONDS, description="older messages are dead-lettered as too_old"
    )
    metrics_port: int = Field(0, description="Prometheus /metrics, /healthz and /livez port (0: none)")
    liveness_max_age: float = Field(
        liveness.WORKER_MAX_AGE_SECONDS,
        gt=0,
        description="/livez answers 503 once the worker's loop has not run for this many seconds (a wedged loop)",
    )
    log_level: str = "INFO"

    @property
    def worker_id(self) -> str:
        """Stable across restarts: the heartbeat's id (and an ingest worker's MQTT client id)."""
        return self.client_id or f"tier0-{self.COMPONENT}-{self.region}"

    @property
    def redis_urls(self) -> list[str]:
        """Own region first, then the peers (the order only names endpoints in logs)."""
        return [self.redis_url, *(u for u in self.peer_redis_urls if u != self.redis_url)]
