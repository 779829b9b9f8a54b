"""FastAPI dependencies: the settings and clients of the app (on app.state), as typed aliases.

All of them are `async def` on purpose: FastAPI runs a plain `def` dependency in its threadpool,
and that hop costs more than a whole Redis round trip on the hot path. Settings come from
`app.state.settings` (what `create_app` was given) rather than from overriding `get_settings`,
because an override makes FastAPI rebuild the dependency graph on every request.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from tier0_kube import client as kube
from tier0_services.api import auth, errors
from tier0_services.api.metrics import ApiMetrics
from tier0_services.api.settings import Settings


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def get_kube(request: Request) -> kube.Client:
    client: kube.Client | None = request.app.state.kube
    if client is None:
        raise errors.UnavailableError(f"kubernetes API not configured: {request.app.state.kube_error}")
    return client


async def get_regionpair(request: Request, client: Annotated[kube.Client, Depends(get_kube)]) -> kube.PairRef:
    settings: Settings = request.app.state.settings
    return kube.PairRef(settings.regionpair_namespace or client.namespace, settings.regionpair_name)


_bearer = HTTPBearer(auto_error=False, description="The region API token (TIER0_API_TOKEN or its Secret)")


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    auth.check_bearer(credentials, auth.accepted_tokens(request.app.state.settings))


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
KubeDep = Annotated[kube.Client, Depends(get_kube)]
RegionPairDep = Annotated[kube.PairRef, Depends(get_regionpair)]
Authorized = Depends(require_token)
"""`dependencies=[Authorized]` on a route: it needs the bearer token."""
