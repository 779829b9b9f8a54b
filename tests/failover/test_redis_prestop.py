"""The Redis pod's preStop hook, exactly as charts/tier0 renders it, run against real redis-servers
with the chart's ACL users (issue 18: a drain of the active region is a switchover, not a failover).

What is tested: while its Redis is a primary with a replica attached, the hook waits (as
tier0-exporter, whose ROLE it asks: a refused ROLE would end the wait at once), and it returns
within a few polls once that Redis is no longer the primary (the operator switched over); it gives
up after redis.switchoverWaitSeconds when nobody does; it returns at once for a primary without a
replica, for a replica and for a Redis that does not answer; once it saw a switchover it lingers
redis.switchoverLingerSeconds (its region's terminating API pods read it until the flip lands).
The password reaches redis-cli through REDISCLI_AUTH read from the mounted file, never as an
argument.
"""

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tier0_dev import programs
from tier0_dev.procs import ROOT, Process, find_program, free_port
from tier0_services.access import redis as redis_access

pytestmark = pytest.mark.integration

RedisFactory = Callable[..., tuple[Process, int]]
PROBE_DIR = "/var/run/secrets/tier0/redis-probe"  # where the chart mounts the exporter's password


def rendered_hook(wait: int, linger: int) -> list[str]:
    out = subprocess.run(
        [find_program("helm"), "template", "tier0", str(ROOT / "charts" / "tier0"), "--kube-version", "1.34.4"]
        + ["--show-only", "templates/redis.yaml", "--set", f"redis.switchoverWaitSeconds={wait}"]
        + ["--set", f"redis.switchoverLingerSeconds={linger}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    sts = next(d for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "StatefulSet")
    (server,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "redis"]
    command: list[str] = server["lifecycle"]["preStop"]["exec"]["command"]
    return command


@pytest.fixture
def hook(tmp_path: Path, local_secrets: programs.Secrets) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the rendered hook against the Redis on `port`, its password file where the chart mounts
    it (a copy in tmp_path), the port the test's Redis listens on."""
    probe = tmp_path / "redis-probe"
    probe.mkdir()
    key = redis_access.SECRET_KEYS[redis_access.EXPORTER]
    (probe / key).write_text((local_secrets.dir("redis") / key).read_text())
    started: list[subprocess.Popen[str]] = []

    def start(port: int, wait: int, linger: int = 0) -> subprocess.Popen[str]:
        shell, flag, script = rendered_hook(wait, linger)
        script = script.replace(PROBE_DIR, str(probe)).replace(" -p 6379 ", f" -p {port} ")
        assert str(probe) in script and f" -p {port} " in script
        proc = subprocess.Popen([shell, flag, script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def admin(port: int, secrets: programs.Secrets) -> redis.Redis:
    password = (secrets.dir("redis") / redis_access.SECRET_KEYS[redis_access.ADMIN]).read_text()
    return redis.Redis(port=port, username=redis_access.ADMIN, password=password, socket_timeout=5)


def replicate(replica: redis.Redis, primary_port: int, primary: redis.Redis) -> None:
    replica.replicaof("127.0.0.1", primary_port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        role: list[Any] = primary.role()  # type: ignore[assignment]  # redis-py types sync and async alike
        if role[0] == b"master" and role[2]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no replica attached to :{primary_port}: {primary.role()}")


def finished_within(proc: subprocess.Popen[str], seconds: float) -> float:
    """Seconds until the hook returned (fails the test if it is still waiting after `seconds`)."""
    start = time.monotonic()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the preStop hook still waits after {seconds} s")
    assert proc.returncode == 0, proc.stdout.read() if proc.stdout else proc.returncode
    return time.monotonic() - start


def test_a_primary_with_its_replica_waits_until_the_switchover(
    redis_factory: RedisFactory, local_secrets: programs.Secrets, hook: Callable[..., subprocess.Popen[str]]
) -> None:
    _, old_port = redis_factory(secrets=local_secrets)
    _, new_port = redis_factory(secrets=local_secrets)
    old, new = admin(old_port, local_secrets), admin(new_port, local_secrets)
    replicate(new, old_port, old)
    proc = hook(old_port, 20)
    time.sleep(1.5)
    assert proc.poll() is None, "the hook let a primary with an attached replica go"
    # The operator's switchover: the replica promoted, the old primary made its replica.
    new.replicaof("no", "one")
    old.replicaof("127.0.0.1", new_port)
    took = finished_within(proc, 3)
    assert took < 1.0, f"the hook saw the switchover only after {took:.2f} s (it polls every 0.1 s)"


def test_the_wait_is_bounded_by_switchover_wait_seconds(
    redis_factory: RedisFactory, local_secrets: programs.Secrets, hook: Callable[..., subprocess.Popen[str]]
) -> None:
    _, primary_port = redis_factory(secrets=local_secrets)
    _, replica_port = redis_factory(secrets=local_secrets)
    replicate(admin(replica_port, local_secrets), primary_port, admin(primary_port, local_secrets))
    start = time.monotonic()
    proc = hook(primary_port, 2)
    finished_within(proc, 6)
    assert 1.0 <= time.monotonic() - start <= 4.0  # `date +%s` has whole seconds: 2 s is 1 to 3 s


def test_nothing_to_wait_for_returns_at_once(
    redis_factory: RedisFactory, local_secrets: programs.Secrets, hook: Callable[..., subprocess.Popen[str]]
) -> None:
    _, alone = redis_factory(secrets=local_secrets)  # a primary without a replica
    assert finished_within(hook(alone, 20), 2) < 1.5
    _, primary_port = redis_factory(secrets=local_secrets)
    _, replica_port = redis_factory(secrets=local_secrets)
    replicate(admin(replica_port, local_secrets), primary_port, admin(primary_port, local_secrets))
    assert finished_within(hook(replica_port, 20), 2) < 1.5  # a replica (the standby)
    assert finished_within(hook(free_port(), 20), 3) < 2.5  # a Redis that does not answer


def test_after_a_switchover_the_old_primary_lingers_as_a_replica(
    redis_factory: RedisFactory, local_secrets: programs.Secrets, hook: Callable[..., subprocess.Popen[str]]
) -> None:
    _, old_port = redis_factory(secrets=local_secrets)
    _, new_port = redis_factory(secrets=local_secrets)
    old, new = admin(old_port, local_secrets), admin(new_port, local_secrets)
    replicate(new, old_port, old)
    proc = hook(old_port, 20, linger=2)
    time.sleep(0.5)
    new.replicaof("no", "one")
    old.replicaof("127.0.0.1", new_port)
    took = finished_within(proc, 5)
    assert 2.0 <= took < 3.0, f"the hook returned {took:.2f} s after the switchover, not after lingering 2 s"
    _, alone = redis_factory(secrets=local_secrets)  # nothing was waited for: no linger either
    assert finished_within(hook(alone, 20, linger=2), 2) < 1.5
