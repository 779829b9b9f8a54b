"""Fixtures that start the real programs on free loopback ports and stop them afterwards.

Nothing here is a fake: redis-server, mosquitto, rabbitmq-server, etcd and kube-apiserver are the
real binaries (see hack/tier0_dev). A missing one fails the test with an install hint.
"""

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tier0_dev import controlplane, programs
from tier0_dev.controlplane import ControlPlane
from tier0_dev.procs import Process, free_port
from tier0_testing import leftovers

pytest_plugins = ["tier0_fixtures.controlplane"]

leftovers.mark()
LEFTOVER_GRACE_S = 1.0
"""How long a process a test stopped may take to be gone after the test's fixtures have ended."""


TIERS = ("browser", "controlplane", "e2e", "integration", "unit")
"""The tier markers (pyproject.toml describes each), in the order a whole run (`make test`) runs
them: the heavy tiers first, as when the tests lived in tier folders (browser, controlplane, e2e,
integration, unit, alphabetically). A test declares its tier: `pytestmark = pytest.mark.unit`."""


def tier_of(item: pytest.Item) -> str | None:
    """The item's one tier marker, or None when it has none or more than one."""
    tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
    return tiers.pop() if len(tiers) == 1 else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test without exactly one tier marker (before `-m` deselects it unseen), and order
    the tests by tier. Tests are filed by behaviour (tests/README.md); `-m unit` etc. select a tier."""
    wrong: dict[str, list[str]] = {}
    for item in items:
        if tier_of(item) is None:
            found = sorted({mark.name for mark in item.iter_markers() if mark.name in TIERS})
            what = f"{len(found)} tier markers ({', '.join(found)})" if found else "no tier marker"
            wrong.setdefault(f"{item.nodeid.split('::')[0]}: {what}", []).append(item.name)
    if wrong:
        lines = "\n".join(f"  {where}, e.g. {names[0]}" for where, names in sorted(wrong.items()))
        raise pytest.UsageError(
            f"each test needs exactly one tier marker, one of {', '.join(TIERS)} "
            f"(declare it in the file: `pytestmark = pytest.mark.unit`; tests/README.md):\n{lines}"
        )
    items.sort(key=lambda item: TIERS.index(tier_of(item) or "unit"))


@pytest.fixture(autouse=True)
def no_process_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose processes (started by it or its function-scoped fixtures) still run once
    they have all ended, and kill them, so they cannot reach into the next tests
    (`tier0_testing.leftovers`). Not checked: unit tests (they start none) and e2e tests (what
    they start runs on the cluster; their session starts the built-in node itself)."""
    if request.node.get_closest_marker("unit") or request.node.get_closest_marker("e2e"):
        yield
        return
    before = leftovers.snapshot()
    yield
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while (left := leftovers.started_since(before)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        for proc in left:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shown = "\n  ".join(str(p) for p in left)
        pytest.fail(f"still running after the test and its fixtures ended (now killed):\n  {shown}")


RedisFactory = Callable[..., tuple[Process, int]]


@pytest.fixture(scope="session")
def local_secrets(tmp_path_factory: pytest.TempPathFactory) -> programs.Secrets:
    """Generated credentials, laid out as the chart mounts its Secrets (programs.Secrets)."""
    return programs.Secrets.generate(tmp_path_factory.mktemp("secrets"))


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """Start redis-servers on demand: `proc, port = redis_factory()`; all stop at teardown.
    `redis_factory(secrets=local_secrets)` starts one with the chart's ACL users."""
    started: list[Process] = []

    def start(*extra: str, secrets: programs.Secrets | None = None) -> tuple[Process, int]:
        port = free_port()
        proc = programs.redis(port, tmp_path / f"redis-{port}", extra=extra, secrets=secrets)
        started.append(proc)
        return proc, port

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def redis_port(redis_factory: RedisFactory) -> int:
    return redis_factory()[1]


@pytest.fixture
def redis_search_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """Like `redis_factory`, with the RediSearch module (Redis Stack's server from .tools); a test
    using it fails with the install command when it is missing."""
    started: list[Process] = []

    def start(*extra: str, secrets: programs.Secrets | None = None) -> tuple[Process, int]:
        port = free_port()
        proc = programs.redis(port, tmp_path / f"redis-search-{port}", extra=extra, search=True, secrets=secrets)
        started.append(proc)
        return proc, port

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def redis_search_port(redis_search_factory: RedisFactory) -> int:
    return redis_search_factory()[1]


@pytest.fixture(scope="session")
def mosquitto_port(tmp_path_factory: pytest.TempPathFactory, local_secrets: programs.Secrets) -> Iterator[int]:
    """The MQTT broker, as the chart's EMQX is configured: `local_secrets` users, the chart's topic
    rules, no anonymous clients (clients take `local_secrets.mqtt_env(user)`)."""
    port = free_port()
    proc = programs.mosquitto(port, tmp_path_factory.mktemp("mosquitto"), local_secrets)
    yield port
    proc.stop()


@pytest.fixture(scope="session")
def rabbitmq_port(tmp_path_factory: pytest.TempPathFactory, local_secrets: programs.Secrets) -> Iterator[int]:
    """RabbitMQ with the chart's users and vhost (`local_secrets.amqp_env(port)`); no guest user."""
    ports = programs.RabbitPorts(amqp=free_port(), dist=free_port())
    proc = programs.rabbitmq(ports, tmp_path_factory.mktemp("rabbitmq"), local_secrets)
    yield ports.amqp
    proc.stop()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One etcd + kube-apiserver for the session (tests isolate themselves by namespace)."""
    cp = controlplane.start(tmp_path_factory.mktemp("controlplane"))
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> list[str]:
    """argv prefix for the real kubectl against the local control plane."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.fail("kubectl is not installed: see https://kubernetes.io/docs/tasks/tools/")
    return [binary, "--kubeconfig", str(control_plane.kubeconfig)]
