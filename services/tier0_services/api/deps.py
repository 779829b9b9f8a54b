"""FastAPI dependencies: the clients the lifespan put on app.state, as typed aliases."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from tier0_services.api.settings import Settings, get_settings


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
