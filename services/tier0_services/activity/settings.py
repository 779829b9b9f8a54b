"""Settings of the activity consumer: `TIER0_<NAME>` variables or `--<name>` flags (flags win)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tier0_contract import credentials
from tier0_services import workersettings


class Settings(workersettings.WorkerSettings):
    """RabbitMQ user-activity consumer: competing consumers on webapp_active_users from both regions,
    each writing to the pair's current primary Redis; acks each message only after its write reached
    the standby too (WAIT), or per the at-risk policy; invalid and too-old messages go to the
    dead-letter queue webapp_active_users.dead."""

    model_config = SettingsConfigDict(cli_prog_name="python -m tier0_services.activity")
    COMPONENT = "activity"

    amqp_url: str = Field(
        "amqp://127.0.0.1:5672/tier0",
        description="RabbitMQ URL without credentials (amqps:// for TLS; the vhost is its path)",
    )
    amqp_username: str | None = Field(None, description="RabbitMQ user (the chart: tier0-app)")
    amqp_password_file: Path | None = Field(None, description="file holding that user's password (a mounted Secret)")
    amqp_tls_ca_file: Path | None = Field(None, description="CA bundle that signed RabbitMQ's certificate (amqps://)")
    client_id: str = Field(
        "", description="consumer id in heartbeats, e.g. the pod name (default: tier0-activity-<region>)"
    )
    prefetch: int = Field(50, gt=0, description="unacknowledged messages in flight")
    queue_check_interval: float = Field(5.0, gt=0, description="seconds between queue-depth reads")
    metrics_port: int = Field(9102, description="Prometheus /metrics, /healthz and /livez port (0: none)")

    def amqp_password(self) -> str | None:
        return credentials.read_optional(self.amqp_password_file)
