"""Re-running the local stack's bring-up (`tier0_dev up`, `up --only operator`) after a switchover
leaves the live RegionPair alone: the real example manifest is created when absent, and a second
pass changes neither `spec.activeRegion` nor the Service selector (the real operator and
kube-apiserver, real redis-servers)."""

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tier0_dev import programs, stack
from tier0_dev.procs import ROOT, Process

pytestmark = pytest.mark.controlplane

RedisFactory = Callable[..., tuple[Process, int]]
OperatorFactory = Callable[..., tuple[Process, int]]


def _get(kubectl: list[str], ns: str, kind: str, name: str) -> dict[str, Any]:
    out = subprocess.run([*kubectl, "-n", ns, "get", kind, name, "-o", "json"], check=True, capture_output=True)
    body: dict[str, Any] = json.loads(out.stdout)
    return body


def _wait_healthy_on(kubectl: list[str], ns: str, region: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    pair: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pair = _get(kubectl, ns, "regionpair", "og-field")
        st = pair.get("status") or {}
        if st.get("phase") == "Healthy" and st.get("activeRegion") == region:
            return pair
        time.sleep(0.1)
    raise AssertionError(f"og-field not Healthy on {region} after {timeout} s: {pair.get('status')}")


def _local_example(tmp_path: Path, ns: str, ports: dict[str, int]) -> Path:
    """operator/examples/regionpair-local.yaml in the test namespace, on the test's Redis ports
    (no region APIs run here, so no health URLs)."""
    text = (ROOT / "operator" / "examples" / "regionpair-local.yaml").read_text()
    text = text.replace("namespace: default", f"namespace: {ns}")
    text = text.replace("port: 6379,", f"port: {ports['region1']},").replace(
        "port: 6380,", f"port: {ports['region2']},"
    )
    text = "\n".join(line for line in text.splitlines() if "healthURL" not in line)
    path = tmp_path / "regionpair-local.yaml"
    path.write_text(text + "\n")
    return path


def test_second_bringup_after_a_switchover_changes_nothing(
    kubectl: list[str],
    namespace: str,
    redis_factory: RedisFactory,
    operator: OperatorFactory,
    local_secrets: programs.Secrets,
    tmp_path: Path,
) -> None:
    """With the stack's credentials: Redis with the ACL users, the operator's password in a Secret."""
    (_, p1), (_, p2) = redis_factory(secrets=local_secrets), redis_factory(secrets=local_secrets)
    stack.create_redis_secret(kubectl, namespace, local_secrets)
    manifest = _local_example(tmp_path, namespace, {"region1": p1, "region2": p2})
    created = stack.create_if_absent(kubectl, manifest)
    assert created == ["regionpair.tier0.dev/og-field"]  # the namespace fixture made the Service
    # ... annotated as pair `pair`'s; the example's pair is og-field (as the example's Service says).
    subprocess.run(
        [*kubectl, "-n", namespace, "annotate", "service", "region-api", "--overwrite"]
        + ["tier0.dev/selector-owner=og-field"],
        check=True,
        capture_output=True,
    )
    operator()
    _wait_healthy_on(kubectl, namespace, "region1")

    subprocess.run(
        [
            *kubectl,
            "-n",
            namespace,
            "patch",
            "regionpair",
            "og-field",
            "--type=merge",
            "-p",
            '{"spec": {"activeRegion": "region2"}}',
        ],
        check=True,
        capture_output=True,
    )
    before = _wait_healthy_on(kubectl, namespace, "region2")
    assert _get(kubectl, namespace, "service", "region-api")["spec"]["selector"]["tier0.dev/region"] == "region2"

    assert stack.create_if_absent(kubectl, manifest) == []  # what `up` / `up --only operator` runs again
    time.sleep(1.0)  # long enough for the operator to act on a changed spec, had there been one
    after = _get(kubectl, namespace, "regionpair", "og-field")
    assert after["spec"]["activeRegion"] == "region2"
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert (after.get("status") or {}).get("activeRegion") == "region2"
    assert _get(kubectl, namespace, "service", "region-api")["spec"]["selector"]["tier0.dev/region"] == "region2"
