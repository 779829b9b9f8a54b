"""Failover-endpoint fixtures: the region API in process with this control plane's kubeconfig, over
the RegionPair and operator stand-in of `tier0_fixtures.standin` (these tests check the API's
behaviour, not the operator's)."""

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tier0_dev.controlplane import ControlPlane
from tier0_fixtures.standin import kube_client, namespace, operator, regionpair  # noqa: F401
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

TOKEN = "failover-test-token"


ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@asynccontextmanager
async def traced_lifespan(app: Any) -> AsyncIterator[LifespanManager]:
    """The app's lifespan; when its shutdown times out (seen about once in 50 runs, cause not found
    yet), every task's stack is printed first, so the failing run shows what was still waiting."""
    manager = LifespanManager(app, startup_timeout=60, shutdown_timeout=15)
    await manager.__aenter__()
    try:
        yield manager
    finally:
        try:
            await manager.__aexit__(None, None, None)
        except TimeoutError:
            for task in asyncio.all_tasks():
                print(f"--- task {task.get_name()} (done: {task.done()}): {task.get_coro()!r}", file=sys.stderr)
                task.print_stack(file=sys.stderr)
            raise


@pytest.fixture
async def api_factory(control_plane: ControlPlane, redis_port: int) -> AsyncIterator[ApiFactory]:
    """`await api_factory(namespace, **settings)`: the region API with this control plane's kubeconfig."""
    async with AsyncExitStack() as stack:

        async def start(namespace: str, **overrides: Any) -> httpx.AsyncClient:
            settings: dict[str, Any] = {
                "redis_url": f"redis://127.0.0.1:{redis_port}/0",
                "kubeconfig": control_plane.kubeconfig,
                "regionpair_namespace": namespace,
                "api_token": TOKEN,
                "failover_timeout_seconds": 10,
                **overrides,
            }
            app = create_app(Settings(**settings))
            manager = await stack.enter_async_context(traced_lifespan(app))
            transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
            return await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://region1"))

        yield start
