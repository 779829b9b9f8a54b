"""Region API fixtures: the app over a real redis-server, driven through ASGI with its lifespan.

Not registered for every test (`api_factory` differs from tests/failover/api's): the conftest of
each folder that needs them imports the fixtures (tests/api, tests/access).
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis

from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture
async def api_factory() -> AsyncIterator[ApiFactory]:
    """`client = await api_factory(redis_port, region="region2", ...)`: a started app per call."""
    async with AsyncExitStack() as stack:

        async def start(redis_port: int, region: str = "region1", **settings: Any) -> httpx.AsyncClient:
            app = create_app(Settings(region=region, redis_url=f"redis://127.0.0.1:{redis_port}/0", **settings))
            manager = await stack.enter_async_context(LifespanManager(app, startup_timeout=60, shutdown_timeout=30))
            # raise_app_exceptions=False: a bug must reach the client as the app's JSON 500.
            transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
            return await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=f"http://{region}"))

        yield start


@pytest.fixture
async def client(api_factory: ApiFactory, redis_port: int) -> httpx.AsyncClient:
    return await api_factory(redis_port)


@pytest.fixture
async def redis(redis_port: int) -> AsyncIterator[Redis]:
    client = Redis(port=redis_port)
    yield client
    await client.aclose()
