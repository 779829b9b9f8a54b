"""Bearer-token check for the mutating endpoints (failover simulate/restore).

The token comes from `TIER0_API_TOKEN` and/or a file (`TIER0_API_TOKEN_FILE`, a mounted Secret,
read on each check so a rotated Secret takes effect without a restart; mutating calls are rare).
No token configured means the mutating endpoints are closed (403), never open.
"""

import hmac
from pathlib import Path

from fastapi.security import HTTPAuthorizationCredentials

from tier0_services.api import errors
from tier0_services.api.settings import Settings


def accepted_tokens(settings: Settings) -> list[str]:
    tokens = []
    if settings.api_token is not None and settings.api_token.get_secret_value():
        tokens.append(settings.api_token.get_secret_value())
    if settings.api_token_file is not None:
        try:
            token = Path(settings.api_token_file).read_text().strip()
        except OSError as exc:
            raise errors.ForbiddenError(
                f"API token file {settings.api_token_file} is unreadable: {exc.strerror}"
            ) from exc
        if token:
            tokens.append(token)
    return tokens


def check_bearer(credentials: HTTPAuthorizationCredentials | None, tokens: list[str]) -> None:
    """Raise unless `credentials` is a bearer token equal to one of `tokens` (constant time)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise errors.UnauthorizedError("this endpoint needs 'Authorization: Bearer <token>'")
    if not tokens:
        raise errors.ForbiddenError("mutating endpoints are disabled: no API token is configured")
    presented = credentials.credentials.encode()
    # Check every token (no early exit) so timing says nothing about which one nearly matched.
    matches = [hmac.compare_digest(presented, token.encode()) for token in tokens]
    if not any(matches):
        raise errors.ForbiddenError("the bearer token is not valid")
