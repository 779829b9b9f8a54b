"""tier0 on a real cluster: both charts Ready, `helm test`, the seed endpoints through the global
Service, and switchover, failover and faults seen by a client that calls the Service every 10 ms
from inside the cluster (through its DNS and kube-proxy). Budgets here are generous bounds that
catch a broken transition; the figures themselves come from `make bench BENCH=cluster`.
"""

import json
import time

import kit
import pytest

from tier0_dev.node import deploy

pytestmark = pytest.mark.e2e

SWITCHOVER_BUDGET_S = 20.0  # CloudNativePG's e2e budget on kind for a switchover
FAILOVER_BUDGET_S = 20.0


def record(what: str, o: kit.Outcome, ledger: kit.Ledger | None = None, lost: list[str] | None = None) -> None:
    first = "never" if o.first_new_s is None else f"{o.first_new_s:.2f} s"
    acked = "" if ledger is None else f"; {len(ledger.acked)} device messages acknowledged, {len(lost or [])} lost"
    kit.REPORT.append(
        f"{what}: {o.requests} requests, {o.first_try_errors} failed first try, {o.errors} failed after a retry, "
        f"first answer from the new region after {first}, longest gap {o.outage_s:.2f} s, "
        f"{o.old_after_new} answers from the old region after the first new one{acked}"
    )


def assert_none_lost(tier0: kit.Cluster, ledger: kit.Ledger) -> list[str]:
    """Every device message the broker acknowledged during the transition is in the active Redis."""
    assert ledger.acked, f"the broker acknowledged no device message ({ledger.summary})"
    lost = tier0.missing(ledger)
    assert not lost, f"{len(lost)} of {len(ledger.acked)} acknowledged device messages lost, e.g. {lost[:5]}"
    return lost


def test_charts_ready_and_helm_test(installed: tuple[kit.Cluster, float]) -> None:
    c, took = installed
    kit.REPORT.append(f"helm install of tier0-operator and tier0 (--wait): {took:.0f} s")
    c.healthy()
    pods = c.json("-n", c.ns, "get", "pods")["items"]
    assert isinstance(pods, list)
    not_ready = []
    for pod in pods:
        if pod["status"]["phase"] == "Succeeded" or pod["metadata"]["labels"].get("app.kubernetes.io/component") in {
            "e2e-client",
            "test",
        }:
            continue
        conds = {cond["type"]: cond["status"] for cond in pod["status"].get("conditions", [])}
        if conds.get("Ready") != "True":
            not_ready.append(pod["metadata"]["name"])
    assert not not_ready, f"pods not Ready: {not_ready}"
    out = deploy.helm(c.rel, "test", c.rel.name, "-n", c.ns, "--timeout", "180s")
    assert "Succeeded" in out, out


def test_each_redis_pod_exports_its_metrics(tier0: kit.Cluster) -> None:
    """The exporter beside each Redis (redis_exporter, or its Debian build on the node) reads it."""
    for region in ("region1", "region2"):
        pod = f"{tier0.rel.name}-redis-{region}-0"
        metrics = tier0.kubectl("get", "--raw", f"/api/v1/namespaces/{tier0.ns}/pods/{pod}:9121/proxy/metrics")
        assert "\nredis_up 1" in metrics, f"{pod}: redis_exporter does not reach its Redis"
        assert "redis_connected_slaves" in metrics or "redis_connected_replicas" in metrics


def test_seed_endpoints_through_the_global_service(tier0: kit.Cluster) -> None:
    active = tier0.active()
    paths = [
        "/health",
        "/ready",
        "/api/status",
        f"/fastapi/{active}/getappversion",
        "/api/devices/active",
        "/api/devices/alerts",
        "/api/devices/metrics/site/1",
        "/api/users/active",
        "/api/users/activity",
        "/api/users/connections",
        "/api/images/list",
        "/api/images/site/1",
        "/api/diagnostics/logs/stats",
        "/api/diagnostics/logs/summary",
        "/api/diagnostics/logs/errors/500",
        "/api/failover/status",
        "/",
    ]
    statuses = tier0.get_all(paths)
    # A site the pipeline has not seen yet is a 404 with a reason; anything 5xx or unanswered fails.
    bad = {p: s for p, s in statuses.items() if not (s.isdigit() and int(s) < 500)}
    assert not bad, f"endpoints failing through the global Service: {bad} (all: {statuses})"
    assert set(statuses) == set(paths)


def test_ai_and_console_answer_out_of_the_box(tier0: kit.Cluster) -> None:
    """The chart's sample data on the node's Redis with the query engine: image search runs KNN on
    RediSearch over images of the simulators' sites, a document question is answered with
    citations, an out-of-scope one abstains, and the console sees the peer region through its API."""
    sites = {"WY-ALPHA", "TX-BRAVO", "ND-CHARLIE", "OK-DELTA"}
    deadline = time.monotonic() + 120  # the API loads the samples once its Redis takes writes
    while (listed := tier0.via_service("/api/images/list"))["count"] < 16 and time.monotonic() < deadline:
        time.sleep(2)
    assert listed["count"] >= 16, listed
    while (stats := tier0.via_service("/api/diagnostics/logs/stats"))["total_entries"] < 12_000:
        assert time.monotonic() < deadline, f"the 12,000-line sample log was not loaded: {stats}"
        time.sleep(2)
    assert {i["site_id"] for i in listed["images"]} <= sites, listed
    found = tier0.via_service("/api/images/search", {"query": "wind turbine with a hard hat", "top_k": 3})
    assert found["backend"] == "redisearch", found
    assert found["count"] == 3 and found["results"][0]["site_id"] in sites, found
    narrowed = tier0.via_service("/api/images/search", {"query": "turbine", "top_k": 5, "site_id": "TX-BRAVO"})
    assert narrowed["results"] and {r["site_id"] for r in narrowed["results"]} == {"TX-BRAVO"}, narrowed
    cited = tier0.via_service("/api/diagnostics/query", {"question": "When must hard hats be replaced?"})
    assert cited["mode"] == "retrieval" and cited["citations"] and "five years" in cited["answer"], cited
    logs = tier0.via_service("/api/diagnostics/query", {"question": "How many requests are in the logs?"})
    assert logs["mode"] == "aggregation" and logs["data"]["count"] >= 12000, logs
    unknown = tier0.via_service("/api/diagnostics/query", {"question": "What is BP's stock price?"})
    assert unknown["mode"] == "abstain", unknown
    overview = tier0.via_service("/api/console/overview")
    views = {r["name"]: r for r in overview["regions"]}
    assert views[overview["answered_by"]]["source"] == "self", overview
    peer = views[tier0.other(overview["answered_by"])]
    assert peer["source"] == "peer-api" and peer["role"] == "replica", overview
    console = tier0.get_all(["/console"])
    assert console == {"/console": "200"}, console


def test_switchover_through_the_service(tier0: kit.Cluster) -> None:
    old = tier0.active()
    new = tier0.other(old)
    with tier0.ledger(duration=20) as ledger, tier0.client(duration=20) as samples:
        t0 = time.time()
        tier0.patch_active(new)
        tier0.wait_active(new, timeout=SWITCHOVER_BUDGET_S)
    o = kit.summarize(samples, t0, new)
    record(f"switchover {old}->{new}", o, ledger, assert_none_lost(tier0, ledger))
    assert tier0.healthy() == new
    assert tier0.selector_region() == new
    assert o.first_new_s is not None and o.first_new_s < SWITCHOVER_BUDGET_S, o
    assert o.errors == 0, f"clients that retry once saw errors during a switchover: {o}"
    last = tier0.status()["lastTransition"]
    assert isinstance(last, dict) and last["type"] == "Switchover"


def test_failover_when_the_active_redis_is_lost(tier0: kit.Cluster) -> None:
    """The active region's Redis lost and kept down (its StatefulSet orphaned): on the built-in node
    its process is SIGKILLed (a crash) and its pod then force-deleted; on another cluster (kind), whose
    containers this host cannot signal, the pod is force-deleted."""
    old = tier0.active()
    new = tier0.other(old)
    crash = tier0.on_node
    with tier0.ledger(duration=30) as ledger, tier0.client(duration=30) as samples:
        restore, t0 = tier0.crash_redis(old) if crash else tier0.lose_redis(old)
        tier0.wait_active(new, timeout=FAILOVER_BUDGET_S + 10)
    try:
        o = kit.summarize(samples, t0, new)
        how = "crashed" if crash else "force-deleted"
        record(f"failover {old}->{new} (active Redis {how} and kept down)", o, ledger, assert_none_lost(tier0, ledger))
        assert o.first_new_s is not None and o.first_new_s < FAILOVER_BUDGET_S, o
        last = tier0.status()["lastTransition"]
        assert isinstance(last, dict), last
        if crash:
            assert last["type"] == "Failover", last
        else:
            # A force-deleted pod is gone from the API at once, but its kubelet still stops it with a
            # grace of about 2 s: while that Redis still answers, the operator rightly switches over
            # (trigger Disruption). Either way the pair moved as a loss demands.
            assert last["type"] == "Failover" or (last["type"] == "Switchover" and last["trigger"] == "Disruption"), (
                last
            )
    finally:  # whatever was asserted, the next tests get both regions back
        # The old primary comes back from its volume, is fenced and rejoins as the replica.
        restore()
    assert tier0.healthy() == new
    assert tier0.selector_region() == new


def test_active_redis_pod_force_deleted(tier0: kit.Cluster) -> None:
    """`kubectl delete pod --grace-period=0 --force` of the active Redis: the StatefulSet restarts it
    from its volume, often within the detection budget (then no failover is needed)."""
    active = tier0.active()
    with tier0.client(duration=20) as samples:
        t0 = time.time()
        tier0.kubectl(
            "-n", tier0.ns, "delete", "pod", f"{tier0.rel.name}-redis-{active}-0", "--grace-period=0", "--force"
        )
        time.sleep(15)
    now_active = tier0.healthy()
    o = kit.summarize(samples, t0, now_active)
    record(f"active Redis pod of {active} force-deleted (active afterwards: {now_active})", o)
    assert samples and samples[-1].region is not None, "the global Service did not answer again"
    assert tier0.selector_region() == now_active


def test_ingest_worker_pods_force_deleted_lose_nothing(tier0: kit.Cluster) -> None:
    """Both regions' ingest worker pods force-deleted while devices publish: each StatefulSet pod
    comes back under its own name, which is its MQTT client id, and resumes its broker session, so
    the messages it had received but not acknowledged are redelivered and stored (a Deployment's
    replacement, with a new name, would leave them in an orphaned session)."""
    pods = [f"{tier0.rel.name}-ingest-{region}-0" for region in ("region1", "region2")]
    with tier0.ledger(duration=15) as ledger:
        time.sleep(4)
        tier0.kubectl("-n", tier0.ns, "delete", "pod", *pods, "--grace-period=0", "--force")
    lost = assert_none_lost(tier0, ledger)
    kit.REPORT.append(
        f"ingest worker pods force-deleted: {len(ledger.acked)} device messages acknowledged, {len(lost)} lost"
    )
    tier0.kubectl("-n", tier0.ns, "wait", *[f"pod/{p}" for p in pods], "--for=condition=Ready", "--timeout=120s")


def test_active_region_api_pods_deleted(tier0: kit.Cluster) -> None:
    active = tier0.active()
    with tier0.client(duration=30) as samples:
        t0 = time.time()
        tier0.kubectl(
            "-n",
            tier0.ns,
            "delete",
            "pod",
            "-l",
            f"app.kubernetes.io/component=region-api,tier0.dev/region={active}",
            "--wait=false",
        )
        time.sleep(25)
    after = [s for s in samples if s.t > t0]
    o = kit.summarize(samples, t0, tier0.other(active))
    record(f"region API pods of {active} deleted", o)
    assert after and after[-1].region is not None, "the global Service did not answer again within 25 s"
    tier0.healthy()


def test_operator_killed_mid_switchover(tier0: kit.Cluster) -> None:
    old = tier0.active()
    new = tier0.other(old)
    rel = tier0.rel
    tier0.patch_active(new)
    time.sleep(0.3)
    tier0.kubectl(
        "-n",
        rel.operator_namespace,
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/name=tier0-operator",
        "--grace-period=0",
        "--force",
    )
    tier0.wait_active(new, timeout=120)
    assert tier0.healthy() == new
    assert tier0.selector_region() == new


def test_helm_upgrade_after_a_failover_does_not_switch_back(tier0: kit.Cluster) -> None:
    values_active = "region1"
    if tier0.active() == values_active:
        tier0.patch_active("region2")
        tier0.wait_active("region2")
        tier0.healthy()
    before = tier0.active()
    deploy.install(tier0.rel)
    time.sleep(5)
    assert tier0.desired() == before
    assert tier0.active() == before
    assert tier0.selector_region() == before
    assert tier0.healthy() == before


def test_helm_uninstall_of_the_operator_keeps_crd_and_regionpairs(tier0: kit.Cluster) -> None:
    rel = tier0.rel
    deploy.helm(rel, "uninstall", rel.operator_name, "-n", rel.operator_namespace, "--wait")
    crd = tier0.json("get", "crd", "regionpairs.tier0.dev")
    assert crd["metadata"]["name"] == "regionpairs.tier0.dev"  # type: ignore[index]
    pair = tier0.pair()
    assert pair["metadata"]["name"] == rel.pair  # type: ignore[index]
    deploy.install(rel)
    assert tier0.healthy() in {"region1", "region2"}
    json.dumps(pair)
