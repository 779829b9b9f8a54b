"""Failover-endpoint fixtures: the real CRD on the real apiserver, a RegionPair per test, and a
stand-in that plays the operator's part by writing the status subresource the way the operator
reports it (these tests check the API's behaviour, not the operator's)."""

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tier0_dev.controlplane import ControlPlane
from tier0_kube import client as kube
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings
from tier0_testing import api as testing
from tier0_testing.operator import run_kubectl

TOKEN = "failover-test-token"


@pytest.fixture
def namespace(kubectl: list[str], regionpair_crd: Path) -> Iterator[str]:
    ns = f"api-{uuid.uuid4().hex[:8]}"
    run_kubectl(kubectl, "create", "namespace", ns)
    yield ns
    subprocess.run([*kubectl, "delete", "namespace", ns, "--wait=false"], capture_output=True, timeout=60)


@pytest.fixture
async def kube_client(control_plane: ControlPlane) -> AsyncIterator[kube.Client]:
    client = await kube.connect(control_plane.kubeconfig, timeout=5.0)
    yield client
    await client.close()


@pytest.fixture
async def regionpair(kubectl: list[str], namespace: str, kube_client: kube.Client) -> kube.PairRef:
    """A RegionPair with region1 active and Healthy, as the operator reports a settled pair."""
    run_kubectl(kubectl, "-n", namespace, "create", "-f", "-", stdin=json.dumps(testing.regionpair_manifest()))
    ref = kube.PairRef(namespace, "og-field")
    status = {"activeRegion": "region1", "requestedRegion": "region1", "phase": "Healthy", "epoch": 1}
    await kube_client.patch_status(namespace, ref.name, {"status": {**status, "observedGeneration": 1}})
    return ref


@pytest.fixture
async def operator(kube_client: kube.Client, regionpair: kube.PairRef) -> AsyncIterator[testing.FakeOperator]:
    fake = testing.FakeOperator(kube_client, regionpair)
    task = asyncio.create_task(fake.run())
    yield fake
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
