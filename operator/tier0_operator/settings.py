"""Operator settings from the environment (TIER0_OPERATOR_*), read once at startup."""

import os
import socket
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIER0_OPERATOR_")

    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    # /livez answers 503 once kopf's event loop has not run for this long (a wedged loop: restart).
    liveness_max_age_seconds: float = 10.0
    lease_name: str = "tier0-operator"
    # Where the Lease lives; in a cluster the chart sets it to the operator's namespace.
    lease_namespace: str = os.environ.get("POD_NAMESPACE", "default")
    lease_duration_seconds: float = 4.0
    identity: str = f"{socket.gethostname()}-{os.getpid()}"
    kubeconfig: str | None = None
    # Test-only failpoint: exit the process right after this switchover step (e.g. "demote").
    failpoint: str | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()
