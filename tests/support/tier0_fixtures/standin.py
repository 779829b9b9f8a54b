"""A RegionPair the region API reads and an operator stand-in: the real CRD on the real apiserver,
a settled pair per test (its own namespace), and `FakeOperator` writing the status subresource the
way the operator reports it (these tests check the API's behaviour, not the operator's).

Not registered for every test: its `namespace` and `operator` differ from `tier0_fixtures.operator`'s
of the same names. The conftest of each folder that needs it imports the fixtures (tests/api,
tests/failover/api).
"""

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tier0_dev.controlplane import ControlPlane
from tier0_kube import client as kube
from tier0_testing import api as testing
from tier0_testing.operator import run_kubectl


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
