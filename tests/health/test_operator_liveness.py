"""The operator's liveness sees kopf's event loop (issue 17, "liveness sees threads, not the work"):
the real operator against the real kube-apiserver and redis-servers, its loop wedged for real (a
blocking sleep on the main thread, tier0_testing.wedge), asked on the path the operator chart's
liveness probe asks.

What is tested:
- while the loop is blocked, the probed path answers 503 within the maximum age (1 s here) plus a
  poll, though the same HTTP thread goes on serving /metrics (what the chart probed before);
- once the loop runs again the path answers 200, and the pair it manages is still Healthy.
"""

from collections.abc import Callable

import pytest

from tier0_dev.procs import Process, http_ok
from tier0_kube import client as kube_client
from tier0_testing import operator as testing
from tier0_testing import wedge
from tier0_testing.operator import apply

pytestmark = pytest.mark.controlplane

RedisFactory = Callable[..., tuple[Process, int]]
OperatorFactory = Callable[..., tuple[Process, int]]
MAX_AGE = 1.0
WEDGE_SECONDS = 4.0


async def test_a_wedged_operator_loop_fails_its_liveness_probe_then_recovers(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    path = wedge.liveness_path("tier0-operator", "Deployment", "operator")
    env = {"TIER0_OPERATOR_LIVENESS_MAX_AGE_SECONDS": str(MAX_AGE), wedge.WEDGE_SECONDS_ENV: str(WEDGE_SECONDS)}
    proc, port = operator(env=env, wedgeable=True)
    base = f"http://127.0.0.1:{port}"
    proc.wait_ready(http_ok(base + "/metrics"), timeout=30)
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}))

    async def healthy() -> bool:
        return (await testing.get_status(kube, namespace, "pair")).phase == "Healthy"

    await testing.wait_for("pair Healthy", healthy, timeout=20)
    wedge.assert_liveness_sees_the_loop(proc, base, path, MAX_AGE, WEDGE_SECONDS)
    await testing.wait_for("pair still Healthy", healthy, timeout=20)
