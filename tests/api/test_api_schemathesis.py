"""Schemathesis (`--checks all`) against both regions' OpenAPI: each region API is a uvicorn process
on a free port over a real redis-server (region2's a REPLICAOF replica of region1's), with the real
kube-apiserver holding the RegionPair and the operator stand-in answering switchovers.

Short and seeded here (`make test`); `make schemathesis` runs it longer (SCHEMATHESIS_EXAMPLES,
SCHEMATHESIS_SEED). The one expectation configured: on the standby region the endpoints that
write answer 503 (documented: "this region is the standby"), which Schemathesis would otherwise
count as a server error. Everything else must pass every check; the stateful phase infers links
from the schema only (COMMON_CONFIG says why).
"""

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import ROOT, Process, free_port
from tier0_testing import api as testing

pytestmark = pytest.mark.controlplane

TOKEN = "failover-test-token"  # the api_factory fixture's
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261201"))
STANDBY_WRITES = r"^/api/(images/ingest|diagnostics/(documents|logs/import))$"

COMMON_CONFIG = """
# The access log names the API's own requests by route template (`/api/console/images/{image_id}`
# in /api/diagnostics/logs/summary), which Schemathesis's location inference reads as a same-origin
# URL: it then sends `{image_id}` as the parameter and counts the API's (right) 422 as a valid
# request rejected. Links come from the schema's dependency analysis instead.
[phases.stateful.inference]
algorithms = ["dependency-analysis"]
"""

STANDBY_CONFIG = f"""{COMMON_CONFIG}
[[operations]]
include-method = "POST"
include-path-regex = "{STANDBY_WRITES}"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""


def start_api(
    region: str, redis_port: int, control_plane: ControlPlane, namespace: str, logs: Path
) -> tuple[Process, int]:
    port = free_port()
    env = {
        "TIER0_REGION": region,
        "TIER0_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "TIER0_API_TOKEN": TOKEN,
        "TIER0_KUBECONFIG": str(control_plane.kubeconfig),
        "TIER0_REGIONPAIR_NAMESPACE": namespace,
        "TIER0_FAILOVER_TIMEOUT_SECONDS": "10",
        "TIER0_TRAFFIC_MAX_REQUESTS": "40",
        "TIER0_TRAFFIC_MAX_SECONDS": "2",
        "TIER0_VERSION": f"v1.0.0_{region}",
        "TIER0_AI_PROVIDER": "local",
        "HF_HUB_OFFLINE": "1",
        # Schemathesis sends as fast as it can from one address; admission's 429s are documented on
        # every operation, but a refused valid request would fail its acceptance checks.
        "TIER0_RATE_LIMIT": "",
        "TIER0_AI_RATE_LIMIT": "",
    }
    proc = Process(
        f"api-{region}",
        [sys.executable, "-m", "tier0_services.api", "--port", str(port)],
        logs / f"api-{region}.log",
        env=env,
    )
    proc.start()

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    proc.wait_ready(healthy, timeout=60)
    return proc, port


async def run_schemathesis(port: int, workdir: Path, config: str) -> tuple[int, str]:
    if not SCHEMATHESIS.exists():
        pytest.fail(f"schemathesis is not installed in {SCHEMATHESIS.parent}: run `make venv` (dev extra)")
    config_file = workdir / "schemathesis.toml"
    config_file.write_text(config)
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(config_file),
        "--no-color",
        "run",
        f"http://127.0.0.1:{port}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--generation-database",
        "none",
        "--request-timeout",
        "15",
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def test_schemathesis_finds_nothing_in_either_region(
    redis_factory: Any,
    control_plane: ControlPlane,
    namespace: str,
    operator: testing.FakeOperator,
    tmp_path: Path,
) -> None:
    _, primary = redis_factory()
    _, replica = redis_factory("--replicaof", "127.0.0.1", str(primary))
    redis = Redis(port=primary)
    await testing.write_devices(redis, testing.fleet(200), time.time())
    await testing.write_activity(redis, testing.activity_message(12, time.time()))
    await redis.set("region2:version", "v1.0.0_region2")
    await redis.aclose()
    started = []
    try:
        for region, redis_port in (("region1", primary), ("region2", replica)):
            started.append(start_api(region, redis_port, control_plane, namespace, tmp_path))
        results = {}
        for (region, config), (_, port) in zip(
            (("region1", COMMON_CONFIG), ("region2", STANDBY_CONFIG)), started, strict=True
        ):
            workdir = tmp_path / region
            workdir.mkdir()
            results[region] = await run_schemathesis(port, workdir, config)
    finally:
        for proc, _ in started:
            proc.stop()
    report = ROOT / ".run" / "schemathesis"
    report.mkdir(parents=True, exist_ok=True)
    for region, (_, out) in results.items():
        (report / f"{region}.txt").write_text(out)
        summary = out[out.rfind("SUMMARY") :] if "SUMMARY" in out else out[-3000:]
        print(f"--- schemathesis {region} (seed {SEED}, {EXAMPLES} examples) ---\n{summary}")
    for region, (code, out) in results.items():
        assert code == 0, (
            f"schemathesis found failures in {region} (full output: .run/schemathesis/{region}.txt):\n{out[-6000:]}"
        )
