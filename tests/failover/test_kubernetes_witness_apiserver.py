"""The Kubernetes witness against a real apiserver: it lists and then watches the EndpointSlices of
the Services a pair's regions name, reads a drained pod (terminating) and a deleted one (absent),
and wakes the pair's loop on every change."""

import asyncio
import json

import pytest

from tier0_contract import regionpair as rp
from tier0_kube import client as kube_client
from tier0_operator import endpoints
from tier0_operator.model import RegionSeen
from tier0_testing import operator as testing
from tier0_testing.operator import run_kubectl

pytestmark = pytest.mark.controlplane


def endpoint_slice(service: str, ready: bool = True, terminating: bool = False) -> dict[str, object]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-abc", "labels": {endpoints.SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.9"], "conditions": {"ready": ready, "serving": True, "terminating": terminating}}
        ],
        "ports": [{"name": "redis", "port": 6379, "protocol": "TCP"}],
    }


async def test_the_witness_follows_the_slices_of_each_regions_services(
    kubectl: list[str], namespace: str, kube: kube_client.Client
) -> None:
    def apply(body: dict[str, object]) -> None:
        run_kubectl(kubectl, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(body))

    apply(endpoint_slice("redis-region1"))
    spec = rp.RegionPairSpec.model_validate(
        {
            "service": "region-api",
            "regions": [
                {"name": "region1", "selector": {"r": "1"}, "redis": {"host": f"redis-region1.{namespace}.svc"}},
                {"name": "region2", "selector": {"r": "2"}, "redis": {"host": "redis-region2"}},
            ],
        }
    )
    wake = asyncio.Event()
    witness = endpoints.Witness(kube, namespace, wake)
    witness.track(spec)

    async def seen(region: str, want: RegionSeen) -> None:
        async def check() -> bool:
            return witness.seen().get(region) == want

        await testing.wait_for(f"{region} seen as {want}", check, timeout=10, every=0.01)

    try:
        await seen("region1", RegionSeen(redis="serving"))
        await seen("region2", RegionSeen(redis="absent"))  # no slice: its pods are gone
        wake.clear()
        apply(endpoint_slice("redis-region1", ready=False, terminating=True))  # a drain
        await seen("region1", RegionSeen(redis="terminating"))
        assert wake.is_set(), "a change must wake the pair's loop"
        assert witness.seen()["region1"].disruption is not None
        run_kubectl(kubectl, "-n", namespace, "delete", "endpointslice", "redis-region1-abc")
        await seen("region1", RegionSeen(redis="absent", redis_vanished=True))  # gone after serving
        apply(endpoint_slice("redis-region1", ready=False))  # its replacement starting
        await seen("region1", RegionSeen(redis="notready"))
        apply(endpoint_slice("redis-region2"))
        await seen("region2", RegionSeen(redis="serving"))
        # A forced deletion: the endpoint leaves the slice with no terminating stage.
        wake.clear()
        apply({**endpoint_slice("redis-region2"), "endpoints": []})
        await seen("region2", RegionSeen(redis="absent", redis_vanished=True))
        assert wake.is_set() and witness.seen()["region2"].disruption is not None
    finally:
        await witness.close()
