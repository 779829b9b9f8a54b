"""A region is a failure domain: the active region killed, partitioned, drained off its node and
its API restarted, each while a client calls the global API Service every 10 ms, devices publish
through the MQTT Service and users through the AMQP Service (`regionrun`). Budgets are generous
bounds that catch a broken behaviour; the figures and the issue's targets come from
`make bench BENCH=region`.
"""

import kit
import pytest
import regionrun

pytestmark = pytest.mark.e2e

FLIP_BUDGET_S = 20.0
REJOIN_BUDGET_S = 120.0


def measured(tier0: kit.Cluster, name: str) -> regionrun.RegionRun:
    r = regionrun.run(tier0, regionrun.SCENARIOS[name])
    kit.REPORT.append(regionrun.describe(r))
    return r


def assert_survived(r: regionrun.RegionRun) -> None:
    """The system answers again, loses no acknowledged message once the region is back, and the
    region is part of the pair again."""
    assert r.answers_again, f"the global Service did not answer again: {regionrun.describe(r)}"
    assert r.device_acked and r.activity_acked, f"nothing was acknowledged to measure: {regionrun.describe(r)}"
    assert not r.device_lost, f"{len(r.device_lost)} acknowledged device messages lost, e.g. {r.device_lost[:5]}"
    assert not r.activity_lost, f"{len(r.activity_lost)} confirmed activity messages lost, e.g. {r.activity_lost[:5]}"
    assert r.rejoin_s is not None and r.rejoin_s < REJOIN_BUDGET_S, f"{r.old} did not rejoin: {regionrun.describe(r)}"


def assert_one_primary(r: regionrun.RegionRun) -> None:
    assert not r.dual_writes, f"the old primary accepted {r.dual_writes} writes after the failover began"
    # A promotion's own instant may be sampled (regionrun.SAME_EPOCH_BOUND_S); a split brain lasts.
    assert r.same_epoch_s < regionrun.SAME_EPOCH_BOUND_S, f"two Redis role:master at one epoch: {regionrun.describe(r)}"


def assert_moved(r: regionrun.RegionRun) -> None:
    assert r.flip_s is not None and r.flip_s < FLIP_BUDGET_S, f"the pair did not move: {regionrun.describe(r)}"
    assert r.active_after != r.old


def test_active_region_killed_and_kept_down(tier0: kit.Cluster) -> None:
    """Every pod of the active region force-deleted, its workloads at 0 until after the flip."""
    r = measured(tier0, "region kill")
    assert_moved(r)
    assert_survived(r)
    assert_one_primary(r)


def test_active_region_partitioned(tier0: kit.Cluster) -> None:
    """Every pod of the active region cut off by iptables (among themselves they still talk)."""
    r = measured(tier0, "region partition")
    assert_moved(r)
    assert_survived(r)
    assert_one_primary(r)


def test_active_region_drained_off_its_node(tier0: kit.Cluster) -> None:
    """`kubectl drain` semantics: cordon, evictions through the Eviction API (PDBs honoured)."""
    r = measured(tier0, "node drain")
    assert not any(n.startswith("not evicted") for n in r.fault.notes), f"the drain never finished: {r.fault.notes}"
    assert_survived(r)
    assert_one_primary(r)


def test_rolling_restart_of_the_active_api(tier0: kit.Cluster) -> None:
    """`kubectl rollout restart` of the active API: clients that retry once see no error."""
    r = measured(tier0, "rolling restart")
    assert_survived(r)
    assert r.outcome.errors == 0, f"clients that retry once saw errors: {regionrun.describe(r)}"
