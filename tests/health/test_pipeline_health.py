"""Pipeline health end to end: real worker processes write heartbeats into a real redis-server; the
region API judges them in `/api/status` and its metric; a worker killed with SIGKILL turns the
region's pipeline `dead`. Also the worker's own `/healthz`."""

import asyncio
import json
import os
import random
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.pipeline.test_ingest import messages, publish, wait_for
from tier0_dev import programs
from tier0_dev.procs import free_port
from tier0_services.access import mqtt as mqtt_access
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(redis_port: int) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(region="region1", redis_url=f"redis://127.0.0.1:{redis_port}/0", pipeline_stall_seconds=2)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://region1") as client:
            yield client


def spawn(module: str, args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )


async def pipeline_state(api: httpx.AsyncClient, component: str) -> str:
    body = (await api.get("/api/status")).json()
    return str(body["pipeline"][component]["state"])


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_a_killed_ingest_worker_shows_as_dead_in_api_status(
    tmp_path: Path, mosquitto_port: int, redis_port: int, api: httpx.AsyncClient, local_secrets: programs.Secrets
) -> None:
    assert await pipeline_state(api, "ingest") == "absent"
    tag, metrics_port = uuid.uuid4().hex[:8], free_port()
    args = [
        "--mqtt-port",
        str(mosquitto_port),
        "--redis-url",
        f"redis://127.0.0.1:{redis_port}/0",
        "--client-id",
        f"health-{tag}",
        "--share-group",
        f"health-{tag}",
        "--metrics-port",
        str(metrics_port),
        "--heartbeat-interval",
        "0.5",
        *local_secrets.mqtt_args(mqtt_access.INGEST),
    ]
    worker = spawn("tier0_services.ingest", args, tmp_path / "ingest.log")
    try:
        await wait_for(lambda: _state_in(api, "ingest", {"idle", "ok"}), timeout=30)
        await wait_for(lambda: _log_has(tmp_path / "ingest.log", "subscription acknowledged"), timeout=30)
        await publish(mosquitto_port, messages(range(50), 1, random.Random(1), {}), local_secrets)
        await wait_for(lambda: _state_in(api, "ingest", {"ok"}), timeout=10)
        status, body = await asyncio.to_thread(healthz, metrics_port)
        assert status == 200 and body["state"] == "ok"
        metrics = (await api.get("/metrics")).text
        assert 'tier0_api_pipeline_healthy{component="ingest"} 1.0' in metrics

        worker.kill()  # SIGKILL: no goodbye, the heartbeat just stops
        worker.wait()
        await wait_for(lambda: _state_in(api, "ingest", {"dead"}), timeout=10)
        body = (await api.get("/api/status")).json()
        assert f"health-{tag}" in body["pipeline"]["ingest"]["reason"]
        assert 'tier0_api_pipeline_healthy{component="ingest"} 0.0' in (await api.get("/metrics")).text
    finally:
        if worker.poll() is None:
            worker.kill()


async def test_activity_consumer_heartbeats_and_dies_visibly(
    tmp_path: Path, rabbitmq_port: int, redis_port: int, api: httpx.AsyncClient, local_secrets: programs.Secrets
) -> None:
    env = {
        **local_secrets.amqp_env(rabbitmq_port),
        "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TIER0_METRICS_PORT": "0",
        "TIER0_HEARTBEAT_INTERVAL": "0.5",
        "TIER0_CLIENT_ID": "activity-health",
    }
    consumer = spawn("tier0_services.activity", [], tmp_path / "activity.log", **env)
    try:
        await wait_for(lambda: _state_in(api, "activity", {"idle", "ok"}), timeout=30)
        consumer.kill()
        consumer.wait()
        await wait_for(lambda: _state_in(api, "activity", {"dead"}), timeout=10)
    finally:
        if consumer.poll() is None:
            consumer.kill()


async def _state_in(api: httpx.AsyncClient, component: str, states: set[str]) -> bool:
    return await pipeline_state(api, component) in states


async def _log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")
