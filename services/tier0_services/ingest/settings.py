"""Settings of the ingest worker: `TIER0_<NAME>` variables or `--<name>` flags (flags win)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tier0_contract import credentials, keys, liveness, timestamps, topics
from tier0_services import connect


class Settings(BaseSettings, connect.RedisAccess):
    """MQTT ingest worker: subscribes $share/<group>/og/field/# (QoS 1) on the one broker, validates
    each device message, writes batches to the pair's current primary Redis (the role:master
    endpoint with the highest pair:epoch among --redis-url and --peer-redis-urls), and acknowledges
    each message only after its batch reached the standby too (WAIT), or per the at-risk policy."""

    model_config = SettingsConfigDict(
        env_prefix="TIER0_",
        frozen=True,
        cli_prog_name="python -m tier0_services.ingest",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    region: str = Field("region1", description="region this worker runs in (reported in its heartbeat)")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="this region's Redis")
    peer_redis_urls: list[str] = Field(
        default_factory=list,
        description="the other region(s)' Redis; the worker writes to whichever endpoint is the current primary",
    )
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = Field(None, description="MQTT user (the chart: tier0-ingest); unset: anonymous")
    mqtt_password_file: Path | None = Field(None, description="file holding that user's password (a mounted Secret)")
    mqtt_tls_ca_file: Path | None = Field(
        None, description="CA bundle that signed the broker's certificate: connect with TLS (MQTTS)"
    )
    client_id: str = Field(
        "", description="MQTT client id, stable across restarts, e.g. the pod name (default: tier0-ingest-<region>)"
    )
    share_group: str = Field(
        "",
        description="shared-subscription group (default: ingest, the same for every worker of both regions; "
        "ingest-<region> for a worker given no peer-redis-urls, which can only write while its own Redis is primary)",
    )
    batch_size: int = Field(500, gt=0, description="messages per Redis write (a partial batch waits at most max-delay)")
    max_delay: float = Field(0.005, gt=0, description="seconds a partial batch waits for more messages")
    receive_maximum: int = Field(
        2000, gt=0, description="unacknowledged messages the broker may send ahead (MQTT 5 Receive Maximum)"
    )
    session_expiry: int = Field(3600, description="seconds the broker keeps this worker's session while it is away")
    resolve_interval: float = Field(
        0.5, gt=0, description="seconds between primary re-resolutions (at once after READONLY/NOREPLICAS/errors)"
    )
    replicated_ack: bool = Field(
        True, description="acknowledge only after WAIT reports the write on a replica (see services/README.md)"
    )
    replica_ack_timeout: float = Field(1.0, gt=0, description="seconds one WAIT may block before the policy decides")
    heartbeat_interval: float = Field(1.0, gt=0, description="seconds between pipeline heartbeats")
    active_window: float = Field(
        keys.ACTIVE_WINDOW_SECONDS,
        description=f"a device is active if seen within this many seconds ({keys.ACTIVE_DEVICES})",
    )
    active_interval: float = 1.0
    timestamp_skew: float = Field(
        timestamps.FUTURE_SKEW_SECONDS,
        description="seconds a payload may be dated ahead before it counts as future_clamped",
    )
    timestamp_max_age: float = Field(
        timestamps.MAX_AGE_SECONDS, description="older payloads are dead-lettered as too_old"
    )
    metrics_port: int = Field(9101, description="Prometheus /metrics, /healthz and /livez port (0: none)")
    liveness_max_age: float = Field(
        liveness.WORKER_MAX_AGE_SECONDS,
        gt=0,
        description="/livez answers 503 once the worker's loop has not run for this many seconds (a wedged loop)",
    )
    log_level: str = "INFO"

    @property
    def group(self) -> str:
        if self.share_group:
            return self.share_group
        return topics.INGEST_GROUP if self.peer_redis_urls else f"{topics.INGEST_GROUP}-{self.region}"

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"tier0-ingest-{self.region}"

    def mqtt_password(self) -> str | None:
        return credentials.read_optional(self.mqtt_password_file)

    @property
    def redis_urls(self) -> list[str]:
        """Own region first, then the peers (the order only names endpoints in logs)."""
        return [self.redis_url, *(u for u in self.peer_redis_urls if u != self.redis_url)]
