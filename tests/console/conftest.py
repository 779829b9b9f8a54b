"""The console in a real browser: Debian's chromium driven by Playwright (browsers cannot be
downloaded here, so `executable_path`), against the region API running as a uvicorn process on a
free port over a real redis-server. Screenshots of the main views go to `.run/screenshots/`
(ignored by git) for a reviewer to look at.
"""

import asyncio
import contextlib
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from redis.asyncio import Redis

from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import ROOT, Process, free_port
from tier0_kube import client as kube
from tier0_services.ai.logs import sample as sample_logs
from tier0_testing import api as testing
from tier0_testing.operator import run_kubectl

TOKEN = "console-test-token"
SCREENSHOTS = ROOT / ".run" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REGIONPAIR_CRD = ROOT / "crds" / "regionpairs.tier0.dev.yaml"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (or `hack/install-tools.sh --debian`)")
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1100})
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    await context.close()
    assert errors == [], f"JavaScript errors in the console: {errors}"


@pytest.fixture
def shot() -> Callable[[Page, str], Any]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def take(p: Page, name: str, full_page: bool = True) -> None:
        await p.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

    return take


ApiServer = Callable[..., tuple[Process, str]]


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[ApiServer]:
    """`proc, url = api_server(redis_port, region=..., **env)`: the region API as its own process."""
    started: list[Process] = []

    def start(redis_port: int, region: str = "region1", **env: str) -> tuple[Process, str]:
        environment = {
            "TIER0_API_TOKEN": TOKEN,
            "TIER0_VERSION": f"v1.0.0057_{region}",
            "TIER0_AI_PROVIDER": "local",
            "TIER0_AI_LOAD_SAMPLES": "true",
            "TIER0_TRAFFIC_MAX_REQUESTS": "3000",
            "TIER0_TRAFFIC_MAX_SECONDS": "4",
            "HF_HUB_OFFLINE": "1",
            **env,
        }
        proc, url = testing.start_api(redis_port, tmp_path, region, environment)
        started.append(proc)
        return proc, url

    yield start
    for proc in started:
        proc.stop()


async def wait_ai_ready(url: str, timeout: float = 60) -> None:
    """The samples (images, corpus) are loaded in the background at start-up."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url) as client:
        while time.monotonic() < deadline:
            images = (await client.get("/api/images/list")).json()
            docs = (await client.get("/api/diagnostics/documents")).json()
            if images["count"] >= 16 and docs["count"] >= 7:
                return
            await asyncio.sleep(0.3)
    raise AssertionError(f"the API at {url} did not load its samples in {timeout} s")


async def import_sample_log(url: str) -> None:
    lines = sample_logs.generate(n=2000, seed=7).combined_lines()
    async with httpx.AsyncClient(base_url=url) as client:
        resp = await client.post(
            "/api/diagnostics/logs/import",
            content="\n".join(lines),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"},
        )
        assert resp.status_code == 200, resp.text


@pytest.fixture
async def feeder(redis_port: int) -> AsyncIterator[None]:
    """Telemetry arriving the way the ingest worker stores it (its own store), every 0.5 s, and one
    user-activity message: the console's counters and charts move."""
    redis = Redis(port=redis_port)
    devices = testing.fleet(400)
    await testing.write_activity(redis, testing.activity_message(25, time.time()))

    async def run() -> None:
        seed = 0
        while True:
            seed += 1
            with contextlib.suppress(Exception):  # Redis killed by a test: stop feeding quietly
                await testing.write_devices(redis, devices, time.time(), seed=seed)
            await asyncio.sleep(0.5)

    task = asyncio.create_task(run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        await redis.aclose()


# --- control plane: the RegionPair and the operator stand-in ------------------------------------------


@pytest.fixture
def namespace(kubectl: list[str]) -> Iterator[str]:
    run_kubectl(kubectl, "apply", "-f", str(REGIONPAIR_CRD))
    run_kubectl(kubectl, "wait", "--for=condition=Established", "crd/regionpairs.tier0.dev", "--timeout=30s")
    ns = f"console-{uuid.uuid4().hex[:8]}"
    run_kubectl(kubectl, "create", "namespace", ns)
    yield ns
    run_kubectl(kubectl, "delete", "namespace", ns, "--wait=false")


@pytest.fixture
async def operator(
    control_plane: ControlPlane, kubectl: list[str], namespace: str
) -> AsyncIterator[testing.FakeOperator]:
    """A settled RegionPair (region1 active, Healthy) and the stand-in reacting to spec changes the
    way the operator reports them (SwitchingOver for 1.5 s, then the new region)."""
    run_kubectl(kubectl, "-n", namespace, "create", "-f", "-", stdin=json.dumps(testing.regionpair_manifest()))
    client = await kube.connect(control_plane.kubeconfig, timeout=5.0)
    ref = kube.PairRef(namespace, "og-field")
    regions = [
        {"name": "region1", "role": "primary", "healthy": True, "lagBytes": 0},
        {"name": "region2", "role": "replica", "healthy": True, "lagBytes": 0},
    ]
    status = {"activeRegion": "region1", "requestedRegion": "region1", "phase": "Healthy", "epoch": 1}
    await client.patch_status(namespace, ref.name, {"status": {**status, "observedGeneration": 1, "regions": regions}})
    fake = testing.FakeOperator(client, ref, delay=1.5)
    task = asyncio.create_task(fake.run())
    yield fake
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.close()


# --- the global Service: a stand-in that follows the RegionPair ---------------------------------------


class ServiceProxy:
    """A TCP stand-in for the global Service `region-api`: new connections go to the API of the
    region the RegionPair reports active (`status.activeRegion`), as kube-proxy does once the
    operator flips the selector. On a flip, idle connections to the old region are closed (its pods
    leave the endpoints); a request still waiting for its answer keeps its connection."""

    def __init__(self, backends: dict[str, int], active: str) -> None:
        self.backends = backends
        self.active = active
        self.port = free_port()
        # Per client connection: its region and [waiting for an answer, stale (region left)].
        self._conns: dict[asyncio.StreamWriter, tuple[str, list[bool]]] = {}
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def follow(self, client: kube.Client, ref: kube.PairRef) -> None:
        while True:
            active = (await client.get_pair(ref.namespace, ref.name)).status.active_region
            if active in self.backends and active != self.active:
                self.active = active
                for writer, (region, flags) in list(self._conns.items()):
                    if region != active:
                        if flags[0]:
                            flags[1] = True  # its answer still comes; its next request is refused
                        else:
                            writer.close()
            await asyncio.sleep(0.1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        region = self.active
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backends[region])
        except OSError:
            writer.close()
            return
        flags = [False, False]
        self._conns[writer] = (region, flags)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, from_client: bool) -> None:
            try:
                while data := await src.read(65536):
                    if from_client and flags[1]:
                        # A new request on a connection to the region that left: close it unsent,
                        # and the browser resends it on a new connection (to the active region).
                        writer.close()
                        break
                    flags[0] = from_client
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
        self._conns.pop(writer, None)

    async def stop(self) -> None:
        for writer in list(self._conns):
            writer.close()
        if self._server is not None:
            self._server.close()
