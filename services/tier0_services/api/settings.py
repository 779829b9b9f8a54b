"""Region API settings, read from the environment (`TIER0_` prefix) once per process."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tier0_contract import keys, pipeline
from tier0_services import connect
from tier0_services.api import admission

AI_PREFIXES = ("/api/images", "/api/diagnostics")
"""Paths of the AI endpoints (embeddings, retrieval): the tighter admission limits apply."""


class Settings(BaseSettings, connect.RedisAccess):
    model_config = SettingsConfigDict(env_prefix="TIER0_")

    region: str = "region1"
    """The region this API serves; it reads that region's Redis (a replica region reads its replica)."""
    regions: list[str] = Field(default_factory=lambda: ["region1", "region2"])
    """Every region name of the pair (`/fastapi/{region}/getappversion` answers 404 for others);
    JSON in the environment: `TIER0_REGIONS='["region1","region2"]'`."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """This region's Redis, without credentials (`TIER0_REDIS_USERNAME`, `TIER0_REDIS_PASSWORD_FILE`)."""
    version: str = "v0.1.0"
    log_level: str = "INFO"
    """Level of tier0's own log lines (start-up loading, the recorder, peer and watch errors);
    uvicorn's access log stays off (the metrics and the recorded access log cover requests)."""
    # Redis calls fail fast so that a dead Redis answers 503 quickly instead of hanging a worker.
    redis_timeout_seconds: float = 0.5
    shutdown_timeout_seconds: int = Field(default=10, ge=1)
    """After SIGTERM uvicorn stops accepting and waits this long at most for the requests in flight
    (then cancels them): the chart sizes the pod's terminationGracePeriodSeconds from it."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins other than the API's own allowed to call it, JSON list; none by default (the
    console is served by the API itself, same origin, and needs none)."""
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest request body accepted (413 beyond), except on the upload endpoints."""
    max_upload_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest body of the upload endpoints (image ingest, log import, documents)."""
    peer_api_url: str | None = None
    """Base URL of the other region's API (e.g. `http://region-api-region2:8000`): the console's
    overview asks it for that region's status. Unset: the peer is described from the RegionPair
    status and the replicated Redis keys only."""
    peer_timeout_seconds: float = Field(default=0.5, gt=0)
    traffic_max_requests: int = Field(default=5000, gt=0)
    """Upper bound of one "Simulate High Traffic" burst (requests)."""
    traffic_max_seconds: float = Field(default=10.0, gt=0)
    """Upper bound of one burst's duration: it stops sending when this is reached."""
    active_window_seconds: float = Field(default=keys.ACTIVE_WINDOW_SECONDS, gt=0)
    """A device counts as active when its newest message is at most this old."""
    read_max_age_seconds: float = Field(default=0.25, ge=0)
    """`/api/status` and `/api/devices/active` answer from one shared read of Redis at most this
    old (`tier0_services.api.snapshot`; their `timestamp` says when it was read); 0: every request
    reads (concurrent ones still share one read)."""
    pipeline_stall_seconds: float = Field(default=pipeline.DEFAULT_STALL_AFTER_SECONDS, gt=0)
    """`/api/status` `pipeline`: a worker holding messages that stored nothing for this long, or
    whose heartbeat is this old, is stalled / dead (`tier0_contract.pipeline.assess`)."""

    # --- admission at the edge (`tier0_services.api.admission`): 429 + Retry-After beyond these ---
    rate_limit: str = "200/second"
    """Requests per client address (all paths but `admission_exempt_paths`, unknown ones included),
    in `limits` notation, several with `;` (`200/second;6000/minute`); empty: no rate limit. Per
    API process: N replicas admit N times this."""
    ai_rate_limit: str = "10/second"
    """Image search and diagnostics requests per client address, on top of `rate_limit`."""
    max_concurrent_requests: int = Field(default=128, gt=0)
    """Requests (not exempt) served at once by this process; one more is answered 429 at once."""
    max_concurrent_ai_requests: int = Field(default=4, gt=0)
    """Image search and diagnostics requests served at once (embeddings and retrieval share the
    process's CPU and thread pool)."""
    admission_exempt_paths: list[str] = Field(default_factory=lambda: ["/health", "/ready", "/metrics"])
    """Never limited or counted: the liveness/readiness probes, the operator's healthURL (`/health`)
    and Prometheus; JSON list in the environment."""

    @field_validator("rate_limit", "ai_rate_limit")
    @classmethod
    def _rates(cls, value: str) -> str:
        admission.parse_rates(value)  # a ValueError names the part it cannot read
        return value

    def admission_policy(self) -> admission.Policy:
        return admission.Policy(
            rates=admission.parse_rates(self.rate_limit),
            ai_rates=admission.parse_rates(self.ai_rate_limit),
            max_in_flight=self.max_concurrent_requests,
            max_ai_in_flight=self.max_concurrent_ai_requests,
            exempt_paths=frozenset(self.admission_exempt_paths),
            ai_prefixes=AI_PREFIXES,
        )

    # --- failover endpoints (they act through the RegionPair custom resource) ---
    api_token: SecretStr | None = None
    """Bearer token the mutating endpoints require (`TIER0_API_TOKEN`)."""
    api_token_file: Path | None = None
    """File holding the token, e.g. a mounted Secret; re-read on each request, so rotation works
    without a restart. When both are set, either token is accepted."""
    kubeconfig: Path | None = None
    """kubeconfig for the Kubernetes API; unset means the in-cluster service account."""
    regionpair_name: str = "og-field"
    regionpair_namespace: str | None = None
    """Namespace of the RegionPair; unset means the pod's own namespace (or the kubeconfig's)."""
    kube_timeout_seconds: float = Field(default=5.0, gt=0)
    """Per-request timeout towards the Kubernetes API."""
    failover_timeout_seconds: float = Field(default=60.0, gt=0)
    """How long a failover request waits for the operator to report the new region active and
    Healthy before answering 504."""


@lru_cache
def get_settings() -> Settings:
    return Settings()
