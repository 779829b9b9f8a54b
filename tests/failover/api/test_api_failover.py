"""Failover endpoints against the real kube-apiserver and the real RegionPair CRD: the bearer token,
status, simulate and restore through spec.activeRegion with the measured latency, acknowledging an
automatic failover, and every failure answer (409, 404, 502, 503, 504)."""

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tier0_dev.procs import free_port
from tier0_kube import client as kube
from tier0_testing.api import FakeOperator

pytestmark = pytest.mark.controlplane

ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]
TOKEN = "failover-test-token"  # the api_factory fixture's

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_mutations_need_the_bearer_token(
    api_factory: ApiFactory, regionpair: kube.PairRef, tmp_path: Path
) -> None:
    api = await api_factory(regionpair.namespace)
    for path in ("/api/failover/simulate", "/api/failover/restore"):
        missing = await api.post(path)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = await api.post(path, headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 403 and wrong.json() == {"detail": "the bearer token is not valid"}
    secret = tmp_path / "token"
    secret.write_text("from-a-secret\n")
    from_file = await api_factory(regionpair.namespace, api_token=None, api_token_file=secret)
    assert (await from_file.post("/api/failover/simulate", headers=AUTH)).status_code == 403
    closed = await api_factory(regionpair.namespace, api_token=None)
    resp = await closed.post("/api/failover/simulate", headers=AUTH)
    assert resp.status_code == 403 and "no API token is configured" in resp.json()["detail"]


async def test_status_reads_the_regionpair(api_factory: ApiFactory, regionpair: kube.PairRef) -> None:
    api = await api_factory(regionpair.namespace)
    body = (await api.get("/api/failover/status")).json()
    assert (body["name"], body["namespace"], body["active_region"], body["desired_region"]) == (
        "og-field",
        regionpair.namespace,
        "region1",
        "region1",
    )
    assert (body["phase"], body["epoch"], body["in_transition"], body["last_transition"]) == ("Healthy", 1, False, None)
    assert body["regions"] == ["region1", "region2"]


async def test_simulate_switches_over_and_measures_the_latency(
    api_factory: ApiFactory, operator: FakeOperator, kube_client: kube.Client
) -> None:
    api = await api_factory(operator.ref.namespace)
    started = time.monotonic()
    resp = await api.post("/api/failover/simulate", headers=AUTH)
    elapsed = time.monotonic() - started
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["status"], body["source_region"], body["target_region"]) == ("success", "region1", "region2")
    assert body["message"] == "Failover completed from region1 to region2"
    assert operator.delay <= body["failover_latency_seconds"] <= elapsed
    assert body["phase"] == "Healthy" and body["epoch"] == 2
    assert body["operator_duration_seconds"] is not None and body["lost_bytes"] == 0
    obj = await kube_client.read_pair(operator.ref.namespace, operator.ref.name)
    assert obj["spec"]["activeRegion"] == "region2" and obj["status"]["activeRegion"] == "region2"

    status = (await api.get("/api/failover/status")).json()
    assert status["active_region"] == "region2" and status["last_transition"]["to_region"] == "region2"
    assert status["last_transition"]["lost_bytes"] == 0 and status["last_transition"]["outcome"] == "Succeeded"

    back = (await api.post("/api/failover/simulate", headers=AUTH)).json()
    assert (back["source_region"], back["target_region"], back["epoch"]) == ("region2", "region1", 3)
    metrics = (await api.get("/metrics")).text
    assert 'tier0_api_failover_duration_seconds_count{outcome="success"} 2.0' in metrics


async def test_restore_goes_home_or_to_a_named_region(api_factory: ApiFactory, operator: FakeOperator) -> None:
    api = await api_factory(operator.ref.namespace)
    same = await api.post("/api/failover/restore", headers=AUTH)
    assert same.status_code == 200 and same.json()["status"] == "unchanged"
    assert same.json()["failover_latency_seconds"] == 0 and operator.switchovers == 0
    named = await api.post("/api/failover/restore", headers=AUTH, json={"region": "region2"})
    assert named.json()["target_region"] == "region2" and named.json()["status"] == "success"
    home = await api.post("/api/failover/restore", headers=AUTH)
    assert (home.json()["source_region"], home.json()["target_region"]) == ("region2", "region1")
    unknown = await api.post("/api/failover/restore", headers=AUTH, json={"region": "region9"})
    assert unknown.status_code == 404 and "region9" in unknown.json()["detail"]
    bad = await api.post("/api/failover/restore", headers=AUTH, json={"region": ""})
    assert bad.status_code == 422


async def test_restore_after_an_automatic_failover_acknowledges_it_first(
    api_factory: ApiFactory, operator: FakeOperator, kube_client: kube.Client
) -> None:
    # The operator failed over on its own: region2 active, spec still says region1.
    operator.react = False
    failed_over = {"activeRegion": "region2", "phase": "Healthy", "epoch": 2}
    await kube_client.patch_status(operator.ref.namespace, operator.ref.name, {"status": failed_over})
    operator.react = True
    api = await api_factory(operator.ref.namespace)
    resp = await api.post("/api/failover/restore", headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["source_region"], resp.json()["target_region"]) == ("region2", "region1")
    obj = await kube_client.read_pair(operator.ref.namespace, operator.ref.name)
    assert obj["status"]["activeRegion"] == "region1" and obj["metadata"]["generation"] == 3  # ack + switch


async def test_a_transition_in_progress_is_a_409(
    api_factory: ApiFactory, regionpair: kube.PairRef, kube_client: kube.Client
) -> None:
    await kube_client.patch_status(regionpair.namespace, regionpair.name, {"status": {"phase": "SwitchingOver"}})
    api = await api_factory(regionpair.namespace)
    resp = await api.post("/api/failover/simulate", headers=AUTH)
    assert resp.status_code == 409 and "already in a transition" in resp.json()["detail"]


async def test_rolled_back_switchover_is_a_502(api_factory: ApiFactory, operator: FakeOperator) -> None:
    operator.outcome = "RolledBack"
    api = await api_factory(operator.ref.namespace)
    resp = await api.post("/api/failover/simulate", headers=AUTH)
    assert resp.status_code == 502 and "RolledBack" in resp.json()["detail"]


async def test_no_operator_answer_is_a_bounded_504(api_factory: ApiFactory, regionpair: kube.PairRef) -> None:
    api = await api_factory(regionpair.namespace, failover_timeout_seconds=1.0)
    started = time.monotonic()
    resp = await api.post("/api/failover/simulate", headers=AUTH)
    assert resp.status_code == 504 and "within 1 s" in resp.json()["detail"]
    assert "last seen: phase Healthy, active region1" in resp.json()["detail"]
    assert time.monotonic() - started < 3


async def test_missing_regionpair_is_a_503(api_factory: ApiFactory, namespace: str) -> None:
    api = await api_factory(namespace)
    for resp in (await api.get("/api/failover/status"), await api.post("/api/failover/simulate", headers=AUTH)):
        assert resp.status_code == 503 and "og-field not found" in resp.json()["detail"]


async def test_unreachable_apiserver_is_a_503(api_factory: ApiFactory, namespace: str, tmp_path: Path) -> None:
    dead = tmp_path / "dead.kubeconfig"
    cluster = {"server": f"https://127.0.0.1:{free_port()}", "insecure-skip-tls-verify": True}
    dead.write_text(
        json.dumps(
            {
                "current-context": "x",
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    api = await api_factory(namespace, kubeconfig=dead)
    resp = await api.get("/api/failover/status")
    assert resp.status_code == 503 and "unreachable" in resp.json()["detail"]
    unconfigured = await api_factory(namespace, kubeconfig=tmp_path / "absent")
    resp = await unconfigured.post("/api/failover/simulate", headers=AUTH)
    assert resp.status_code == 503 and "not configured" in resp.json()["detail"]
