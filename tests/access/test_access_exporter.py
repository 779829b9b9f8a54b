"""redis_exporter as the node runs it (images/standins/redis-exporter: Debian's 1.45 behind
wrapper.py) against a Redis with the ACL users: it reads its Redis as `tier0-exporter` from the
password file the chart's init container renders, and its `/scrape?target=` endpoint, which would
hand those credentials to any address a caller names, is not served.

Reproduction of issue 17 ("redis_exporter's /scrape?target="): the exporter connected to a target
given in the URL; now the request is refused and nothing connects to the target.
"""

import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tier0_dev import programs
from tier0_dev.procs import ROOT, Process, find_program, free_port, port_open
from tier0_services.access import redis as redis_access

pytestmark = pytest.mark.integration

WRAPPER = ROOT / "images" / "standins" / "redis-exporter" / "wrapper.py"
RedisFactory = Callable[..., tuple[Process, int]]


@pytest.fixture
def exporter(tmp_path: Path, redis_factory: RedisFactory, local_secrets: programs.Secrets) -> Iterator[tuple[int, int]]:
    """(exporter port, redis port): the stand-in with the chart's settings."""
    _, redis_port = redis_factory(secrets=local_secrets)
    addr = f"redis://127.0.0.1:{redis_port}"
    redis_access.write(local_secrets.dir("redis"), tmp_path / "access", exporter_addr=addr)
    port = free_port()
    env = {
        "REDIS_ADDR": addr,
        "REDIS_USER": redis_access.EXPORTER,
        "REDIS_PASSWORD_FILE": str(tmp_path / "access" / redis_access.EXPORTER_PASSWORDS),
        "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "REDIS_EXPORTER_DISABLE_SCRAPE_ENDPOINT": "true",
        "TIER0_STANDIN_INTERNAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "TIER0_STANDIN_EXPORTER": find_program("prometheus-redis-exporter"),
    }
    proc = Process("redis-exporter", [sys.executable, str(WRAPPER)], tmp_path / "exporter.log", env=env).start()
    # Ready when the exporter behind the proxy answers: the proxy listens at once and says 503 until
    # then (a loaded CI machine once asked for /metrics in that gap).
    proc.wait_ready(lambda: port_open(port) and answers(f"http://127.0.0.1:{port}/health"), timeout=15)
    yield port, redis_port
    proc.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def test_the_exporter_reads_redis_as_its_own_user(exporter: tuple[int, int], local_secrets: programs.Secrets) -> None:
    port, redis_port = exporter
    status, metrics = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "\nredis_up 1" in metrics
    assert "redis_connected_clients" in metrics
    assert get(f"http://127.0.0.1:{port}/health")[0] == 200
    admin = redis.Redis(
        port=redis_port,
        username=redis_access.ADMIN,
        password=(local_secrets.dir("redis") / redis_access.SECRET_KEYS[redis_access.ADMIN]).read_text(),
    )
    denied = [e for e in admin.acl_log() if e.get("username") == redis_access.EXPORTER]  # type: ignore[union-attr]
    assert denied == [], f"the exporter needs commands its ACL user lacks: {denied}"
    admin.close()


def test_scrape_of_another_target_is_refused_and_never_connects(exporter: tuple[int, int]) -> None:
    port, _ = exporter
    connections: list[object] = []
    with socket.socket() as target:
        target.bind(("127.0.0.1", 0))
        target.listen()
        target.settimeout(2)

        def accept() -> None:
            try:
                connections.append(target.accept())
            except OSError:
                pass

        waiter = threading.Thread(target=accept)
        waiter.start()
        status, _ = get(f"http://127.0.0.1:{port}/scrape?target=redis://127.0.0.1:{target.getsockname()[1]}")
        waiter.join()
    assert status == 404
    assert connections == [], "the exporter connected to the address in the URL"
