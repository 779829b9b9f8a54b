"""Settings of the activity consumer: `TIER0_<NAME>` variables or `--<name>` flags (flags win)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tier0_contract import credentials, liveness, timestamps
from tier0_services import connect


class Settings(BaseSettings, connect.RedisAccess):
    """RabbitMQ user-activity consumer: competing consumers on webapp_active_users from both regions,
    each writing to the pair's current primary Redis; acks each message only after its write reached
    the standby too (WAIT), or per the at-risk policy; invalid and too-old messages go to the
    dead-letter queue webapp_active_users.dead."""

    model_config = SettingsConfigDict(
        env_prefix="TIER0_",
        frozen=True,
        cli_prog_name="python -m tier0_services.activity",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    region: str = Field("region1", description="region this consumer runs in (reported in its heartbeat)")
    amqp_url: str = Field(
        "amqp://127.0.0.1:5672/tier0",
        description="RabbitMQ URL without credentials (amqps:// for TLS; the vhost is its path)",
    )
    amqp_username: str | None = Field(None, description="RabbitMQ user (the chart: tier0-app)")
    amqp_password_file: Path | None = Field(None, description="file holding that user's password (a mounted Secret)")
    amqp_tls_ca_file: Path | None = Field(None, description="CA bundle that signed RabbitMQ's certificate (amqps://)")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="this region's Redis")
    peer_redis_urls: list[str] = Field(
        default_factory=list, description="the other region(s)' Redis; writes go to the current primary"
    )
    client_id: str = Field(
        "", description="consumer id in heartbeats, e.g. the pod name (default: tier0-activity-<region>)"
    )
    prefetch: int = Field(50, gt=0, description="unacknowledged messages in flight")
    resolve_interval: float = Field(0.5, gt=0, description="seconds between primary re-resolutions")
    replicated_ack: bool = Field(True, description="ack only after WAIT reports the write on a replica")
    replica_ack_timeout: float = Field(1.0, gt=0, description="seconds one WAIT may block before the policy decides")
    heartbeat_interval: float = Field(1.0, gt=0, description="seconds between pipeline heartbeats")
    queue_check_interval: float = Field(5.0, gt=0, description="seconds between queue-depth reads")
    timestamp_skew: float = Field(
        timestamps.FUTURE_SKEW_SECONDS,
        description="seconds a message may be dated ahead before it counts as future_clamped",
    )
    timestamp_max_age: float = Field(
        timestamps.MAX_AGE_SECONDS, description="older messages are dead-lettered as too_old"
    )
    metrics_port: int = Field(9102, description="Prometheus /metrics, /healthz and /livez port (0: none)")
    liveness_max_age: float = Field(
        liveness.WORKER_MAX_AGE_SECONDS,
        gt=0,
        description="/livez answers 503 once the worker's loop has not run for this many seconds (a wedged loop)",
    )
    log_level: str = "INFO"

    @property
    def worker_id(self) -> str:
        return self.client_id or f"tier0-activity-{self.region}"

    def amqp_password(self) -> str | None:
        return credentials.read_optional(self.amqp_password_file)

    @property
    def redis_urls(self) -> list[str]:
        return [self.redis_url, *(u for u in self.peer_redis_urls if u != self.redis_url)]
