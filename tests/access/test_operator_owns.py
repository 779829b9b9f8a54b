"""The operator acts only on what it owns (issue 17), against the real kube-apiserver and redis-servers.

What is tested:
- the operator chart's RBAC, rendered with default values and with the clusterWide opt-in and
  applied to the apiserver, never lets the operator list or watch a Secret (the apiserver's own
  `auth can-i`), grants nothing outside the watched namespace by default, and only get/patch there;
- a Service named in the spec but not annotated `tier0.dev/selector-owner: <pair>` is never patched,
  not at bootstrap, not by a switchover (an Event `ServiceNotOwned` says so), while the pair's own
  Service follows the switchover;
- the generated Secrets the pair names are filled by an operator that may only get/patch Secrets
  (operator/rbac/role.yaml), once: a key with a value is kept, and the values never reach its log;
- a status naming a region the spec does not have (what renaming the active region mid-flight
  leaves behind; the CRD now refuses the rename itself) is reported as Ready=False `RegionsChanged`
  with an Event, nothing is done to Redis, and the pair is Healthy again once the status agrees.
"""

import asyncio
import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tier0_contract import regionpair as rp
from tier0_dev.procs import Process
from tier0_kube import client as kube_client
from tier0_operator import secrets
from tier0_testing import charts
from tier0_testing import operator as testing
from tier0_testing.operator import apply, run_kubectl

pytestmark = pytest.mark.controlplane

RedisFactory = Callable[..., tuple[Process, int]]
OperatorFactory = Callable[..., tuple[Process, int]]


def render_rbac(release_ns: str, *flags: str) -> list[dict[str, Any]]:
    kinds = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    return [d for d in charts.render("tier0-operator", "tier0-operator", release_ns, *flags) if d["kind"] in kinds]


def can_i(kubectl: list[str], sa: str, verb: str, resource: str, namespace: str | None) -> bool:
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    res = subprocess.run(
        [*kubectl, "auth", "can-i", verb, resource, f"--as={sa}", *where], capture_output=True, text=True, timeout=30
    )
    return res.stdout.strip() == "yes"


@pytest.mark.parametrize("cluster_wide", [False, True], ids=["default", "clusterWide"])
def test_the_charts_rbac_never_lets_the_operator_list_or_watch_secrets(
    kubectl: list[str], regionpair_crd: Path, cluster_wide: bool
) -> None:
    """The reproduction of "the default ClusterRole lists, watches and patches Secrets cluster-wide,
    and patches any Service": the rendered chart applied, the apiserver asked what it allows."""
    release_ns = f"op-rbac-{'cw' if cluster_wide else 'ns'}"
    watched, other = f"{release_ns}-watched", f"{release_ns}-other"
    for name in (release_ns, watched, other):
        run_kubectl(kubectl, "create", "namespace", name, check=False)
    flags = ["--set", "clusterWide=true"] if cluster_wide else ["--set-json", f'watchNamespaces=["{watched}"]']
    docs = render_rbac(release_ns, *flags)
    assert ("ClusterRole" in {d["kind"] for d in docs}) == cluster_wide
    run_kubectl(kubectl, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    sa = f"system:serviceaccount:{release_ns}:tier0-operator"

    where: tuple[str | None, ...] = (watched, other, None)
    for ns in where:
        for verb in ("list", "watch"):
            assert not can_i(kubectl, sa, verb, "secrets", ns), f"may {verb} secrets in {ns or 'every namespace'}"
    assert can_i(kubectl, sa, "get", "secrets", watched) and can_i(kubectl, sa, "patch", "secrets", watched)
    assert can_i(kubectl, sa, "patch", "services", watched)
    assert can_i(kubectl, sa, "watch", "regionpairs.tier0.dev", watched)
    assert not can_i(kubectl, sa, "delete", "services", watched)
    assert not can_i(kubectl, sa, "create", "secrets", watched)
    # Outside what it manages: nothing, unless cluster-wide was opted into.
    for verb, resource in (("get", "secrets"), ("patch", "services"), ("watch", "regionpairs.tier0.dev")):
        assert can_i(kubectl, sa, verb, resource, other) == cluster_wide, f"{verb} {resource} in {other}"


async def test_a_service_not_annotated_as_the_pairs_is_reported_and_never_patched(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    """The reproduction of "any Service in the namespace can be named and patched"."""
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    # Someone else's Service, pointing elsewhere, and one annotated for another pair.
    victim = testing.service_manifest("someone-elses", owner=None)
    victim["spec"]["selector"] = {"app": "billing"}
    apply(kubectl, namespace, victim)
    apply(kubectl, namespace, testing.service_manifest("other-pairs", region="region2", owner="another-pair"))
    manifest = testing.pair_manifest("pair", {"region1": p1, "region2": p2})
    manifest["spec"]["additionalServices"] = ["someone-elses", "other-pairs"]
    operator()
    apply(kubectl, namespace, manifest)

    async def healthy() -> bool:
        st = await testing.get_status(kube, namespace, "pair")
        return st.phase == "Healthy"

    await testing.wait_for("pair Healthy", healthy, timeout=20)
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region2"})

    async def switched() -> bool:
        st = await testing.get_status(kube, namespace, "pair")
        return st.active_region == "region2" and st.phase == "Healthy"

    await testing.wait_for("switchover to region2", switched, timeout=20)
    assert await testing.service_region(kube, namespace, "region-api") == "region2"  # the pair's own
    assert await kube.service_selector(namespace, "someone-elses") == {"app": "billing"}
    # Routed to region2 by its owner's wish, not ours: a switchover back must not move it either.
    await testing.patch_pair(kube, namespace, "pair", {"activeRegion": "region1"})

    async def back() -> bool:
        st = await testing.get_status(kube, namespace, "pair")
        return st.active_region == "region1" and st.phase == "Healthy"

    await testing.wait_for("switchover back to region1", back, timeout=20)
    assert await testing.service_region(kube, namespace, "other-pairs") == "region2"
    assert await kube.service_selector(namespace, "someone-elses") == {"app": "billing"}
    reported = {e["message"].split(" ")[1] for e in await testing.list_events(kube, namespace, "ServiceNotOwned")}
    assert reported == {"someone-elses", "other-pairs"}


async def test_generated_secrets_are_filled_by_name_with_get_and_patch_only(
    kubectl: list[str],
    namespace: str,
    kube: kube_client.Client,
    redis_factory: RedisFactory,
    operator: OperatorFactory,
    tmp_path: Path,
) -> None:
    """GitOps-safe passwords keep working now that the operator may not list or watch Secrets."""

    def secret(name: str, keys: str, data: dict[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "annotations": {secrets.GENERATE_ANNOTATION: keys}},
        }
        if data:
            body["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return body

    apply(kubectl, namespace, secret("gen-a", "password"))
    apply(kubectl, namespace, secret("gen-b", "password,token", {"password": "given-by-a-person"}))
    apply(kubectl, namespace, secret("not-named", "password"))  # not in the pair: left alone
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    manifest = testing.pair_manifest("pair", {"region1": p1, "region2": p2})
    manifest["spec"]["generatedSecrets"] = ["gen-a", "gen-b", "gen-missing"]
    proc, _ = operator()
    apply(kubectl, namespace, manifest)

    def data(name: str) -> dict[str, str]:
        body = json.loads(run_kubectl(kubectl, "-n", namespace, "get", "secret", name, "-o", "json"))
        return {k: base64.b64decode(v).decode() for k, v in (body.get("data") or {}).items()}

    async def filled() -> bool:
        return set(data("gen-a")) == {"password"} and set(data("gen-b")) == {"password", "token"}

    await testing.wait_for("the named Secrets filled", filled, timeout=20, every=0.2)
    a, b = data("gen-a"), data("gen-b")
    assert len(a["password"]) == 32 and len(b["token"]) == 32
    assert b["password"] == "given-by-a-person"
    assert data("not-named") == {}
    missing = await testing.list_events(kube, namespace, "SecretMissing")
    assert [e["message"] for e in missing] == ["Secret gen-missing (spec.generatedSecrets) not found"]
    log = proc.log_path.read_text()
    for value in (a["password"], b["token"]):
        assert value not in log


async def test_a_status_naming_a_region_the_spec_lacks_is_reported_not_a_crash_loop(
    kubectl: list[str], namespace: str, kube: kube_client.Client, redis_factory: RedisFactory, operator: OperatorFactory
) -> None:
    """The reproduction of "renaming the active region mid-flight makes decide() raise a KeyError every
    round": the state a rename leaves (status.activeRegion names a region spec.regions lacks)."""
    (_, p1), (_, p2) = redis_factory(), redis_factory()
    apply(kubectl, namespace, testing.pair_manifest("pair", {"region1": p1, "region2": p2}))
    # What an operator running before the rename recorded, under the region's old name.
    status = {"activeRegion": "east", "requestedRegion": "east", "epoch": 1, "phase": "Healthy"}
    await kube.patch_status(namespace, "pair", {"status": status})
    proc, _ = operator()

    async def reported() -> rp.Condition | None:
        cond = (await testing.get_status(kube, namespace, "pair")).condition(rp.READY)
        return cond if cond is not None and cond.reason == "RegionsChanged" else None

    cond = await testing.wait_for("Ready=False RegionsChanged", reported, timeout=20)
    assert cond.status == "False"
    assert "status.activeRegion 'east' not in spec.regions (region1, region2)" in cond.message

    async def announced() -> int:
        return len(await testing.list_events(kube, namespace, "RegionsChanged"))

    await testing.wait_for("the RegionsChanged Event", announced, timeout=10)  # posted in the background
    await asyncio.sleep(2.0)  # several more rounds with the same problem
    assert await announced() == 1
    assert proc.alive(), "the operator exited"
    # Nothing was done to Redis meanwhile: both are still the primaries they started as.
    import redis.asyncio as aioredis

    for port in (p1, p2):
        client = aioredis.Redis(port=port, decode_responses=True)
        try:
            assert (await client.info("replication"))["role"] == "master"
        finally:
            await client.aclose()
    assert "Traceback" not in proc.log_path.read_text()
    # Put right by hand (or by recreating the pair): the operator reads the status afresh and goes on.
    await kube.patch_status(namespace, "pair", {"status": {"activeRegion": "region1", "requestedRegion": "region1"}})

    async def healthy() -> bool:
        st = await testing.get_status(kube, namespace, "pair")
        ready = st.condition(rp.READY)
        return st.phase == "Healthy" and ready is not None and ready.status == "True"

    await testing.wait_for("pair Healthy again", healthy, timeout=20)
