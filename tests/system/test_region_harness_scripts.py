"""The scripts the region-loss harness runs inside the cluster's pods (tests/system: kit's Redis reads,
regionrun's role loop, its stop and the old primary's read, the activity ledger), run here on the
real redis-server with the chart's ACL users and the real rabbitmq-server with the chart's users and
vhost, with the environment the chart gives the region API and the user simulator. A script that
breaks fails here rather than in a node run.
"""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests.conftest import RedisFactory
from tests.pipeline.test_activity_pipeline import connect
from tier0_contract import credentials, keys, topics
from tier0_dev import programs
from tier0_services.access import redis as redis_access

E2E = Path(__file__).parents[1] / "system"
sys.path.insert(0, str(E2E))

import kit  # noqa: E402
import regionrun  # noqa: E402

pytestmark = pytest.mark.integration


def in_pod(env: dict[str, str], script: str, *args: str, timeout: float = 60) -> str:
    """`script` after kit.REDIS_APP, as `kubectl exec` runs it in a region API pod."""
    argv = [sys.executable, "-c", kit.REDIS_APP + script, *args]
    out = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_redis_reads_run_as_the_applications_user(
    redis_factory: RedisFactory, local_secrets: programs.Secrets
) -> None:
    _, port = redis_factory(secrets=local_secrets)
    env = local_secrets.redis_env()
    r = redis.Redis(
        port=port, username=redis_access.APP, password=credentials.read_secret(env["TIER0_REDIS_PASSWORD_FILE"])
    )
    r.zadd(keys.DEVICES_LAST_SEEN, {"E2E-a": 100.0, "E2E-b": 1767225615.0})
    r.set(keys.activity_seen("e2e-x-0"), 1)
    r.set(keys.PAIR_EPOCH, 7)
    stamps = ["2026-01-01T00:00:12+00:00", "2026-01-01T00:00:08+00:00"]
    r.rpush(keys.USERS_ACTIVITY_HISTORY, *(json.dumps({"timestamp_utc": t}) for t in stamps))
    host = f"127.0.0.1:{port}"

    scores = in_pod(env, kit.ZMSCORE, host, keys.DEVICES_LAST_SEEN, "E2E-a", "E2E-gone", "E2E-b").split()
    assert scores == ["100.0", "-", "1767225615.0"]
    found = in_pod(env, kit.EXISTS, host, keys.activity_seen("e2e-x-0"), keys.activity_seen("e2e-x-1")).split()
    assert found == ["1", "0"]

    since = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC).timestamp()
    args = [f"{since:.3f}", keys.DEVICES_LAST_SEEN, keys.USERS_ACTIVITY_HISTORY]
    old = json.loads(in_pod(env, regionrun.OLD_PRIMARY, host, *args))
    assert old == {"role": "master", "devices": 1, "history": stamps}  # E2E-b only
    assert regionrun.stamped_after(old["history"], since) == 1

    loop = in_pod(env, regionrun.ROLE_LOOP, host, "tier0-role-watch=t1", "0.5", keys.PAIR_EPOCH)
    samples = regionrun.parse_roles("region1", loop)
    assert len(samples) >= 3 and {(s.role, s.epoch) for s in samples} == {("master", 7)}


def test_the_role_stop_ends_its_own_loops_only(redis_factory: RedisFactory, local_secrets: programs.Secrets) -> None:
    _, port = redis_factory(secrets=local_secrets)
    env = {**os.environ, **local_secrets.redis_env()}
    loops = {
        token: subprocess.Popen(
            [sys.executable, "-c", kit.REDIS_APP + regionrun.ROLE_LOOP, f"127.0.0.1:{port}"]
            + [f"tier0-role-watch={token}", "60", keys.PAIR_EPOCH],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for token in ("mine", "another")
    }
    try:
        time.sleep(1.0)
        assert all(p.poll() is None for p in loops.values())
        subprocess.run([sys.executable, "-c", regionrun.ROLE_STOP, "mine"], check=True, timeout=30)
        assert loops["mine"].wait(timeout=10) is not None
        assert loops["another"].poll() is None
    finally:
        for p in loops.values():
            p.kill()
            p.wait()


def test_the_activity_ledger_reports_what_rabbitmq_confirmed(
    rabbitmq_port: int, local_secrets: programs.Secrets
) -> None:
    conn = connect(rabbitmq_port, local_secrets)
    ch = conn.channel()
    ch.queue_delete(topics.ACTIVITY_QUEUE)
    try:
        env = {**os.environ, **local_secrets.amqp_env(rabbitmq_port)}
        argv = [sys.executable, str(E2E / "activity_ledger.py"), "publish", "itest", "20", "2"]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        ledger = kit.Ledger()
        ledger.read(out.stdout, "confirmed")
        assert len(ledger.acked) >= 30, out.stdout
        assert ledger.summary == f"sent {len(ledger.acked)} confirmed {len(ledger.acked)}"
        queued = []
        while (got := ch.basic_get(topics.ACTIVITY_QUEUE, auto_ack=True))[0] is not None:
            queued.append(json.loads(got[2])["message_id"])
        assert queued == ledger.acked  # every confirmed message, in order, and nothing else
    finally:
        ch.queue_delete(topics.ACTIVITY_QUEUE)
        conn.close()
