"""The short variant of the transitions checker (`make bench BENCH=transitions` is the long one):
on real programs (kube-apiserver + etcd, the operator, two redis-servers, Mosquitto, RabbitMQ,
the ingest workers, the activity consumer, the region APIs, toxiproxy), a switchover, a kill -9
of the active Redis and a cut of the replication link alone under a steady writer. Every
PUBACKed device message and every confirmed activity message must be in the active Redis
afterwards, none applied twice, never two writable primaries that both stored, and the first
message published after each transition readable through the active region's API within a
generous bound."""

import asyncio
from pathlib import Path

import pytest

from tier0_checker import checker, report, world
from tier0_dev import programs
from tier0_dev.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

FRESHNESS_BOUND = 5.0  # seconds; the benchmark's target is 1 s, this only catches a pipeline that does not follow


@pytest.mark.timeout(180)
def test_switchover_and_failover_lose_nothing_and_stay_fresh(
    control_plane: ControlPlane, rabbitmq_port: int, local_secrets: programs.Secrets, tmp_path: Path
) -> None:
    w = world.start(
        tmp_path, interval=0.5, threshold=3, cp=control_plane, amqp_port=rabbitmq_port, secrets=local_secrets
    )
    try:
        c = checker.Checker(w, rate=50, devices=3000, activity_rate=10, settle=10)
        result = asyncio.run(c.run(["switchover", "kill-redis", "partition-replication"], soak_seconds=3))
    finally:
        w.stop()
    for row in result.rows:
        print(row)
    assert report.problems(result, freshness_target=FRESHNESS_BOUND) == []
    assert {r.scenario for r in result.rows} >= {"switchover", "kill-redis", "partition-replication"}
    assert all(r.acked > 0 for r in result.rows)
