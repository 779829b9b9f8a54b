"""Redis connections with credentials, the same for every app (region API, ingest worker, activity
consumer, the AI command line): an ACL user name and a password read from a mounted file at start,
TLS when the URL says `rediss://`. The URL itself carries no password, so nothing that logs an
endpoint can leak one (and `credentials.redact_url` covers a URL given by hand)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tier0_contract import credentials


class RedisAccess(BaseModel):
    """Settings fields shared by every app that talks to Redis (mixed into their settings)."""

    redis_username: str | None = Field(
        default=None, description="Redis ACL user (the chart: tier0-app); unset: Redis's default user"
    )
    redis_password_file: Path | None = Field(
        default=None, description="file holding that user's password (a mounted Secret key); unset: no AUTH"
    )
    redis_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the Redis servers' certificates (rediss:// URLs)"
    )

    def redis_auth(self) -> "RedisAuth":
        return RedisAuth(
            self.redis_username,
            credentials.read_optional(self.redis_password_file),
            str(self.redis_tls_ca_file) if self.redis_tls_ca_file else None,
        )


@dataclass(frozen=True)
class RedisAuth:
    """Who a client is towards Redis. The password is read once (at start) and never printed."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca_file: str | None = None

    def kwargs(self, url: str) -> dict[str, Any]:
        """Keyword arguments for `redis.Redis.from_url(url, ...)` (sync or asyncio)."""
        kw: dict[str, Any] = {}
        if self.username:
            kw["username"] = self.username
        if self.password is not None:
            kw["password"] = self.password
        if url.startswith("rediss://") and self.tls_ca_file:
            kw["ssl_ca_certs"] = self.tls_ca_file
        return kw
