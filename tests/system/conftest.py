"""The whole system: tier0's charts on a real cluster (the built-in node, or TIER0_E2E_KUBECONFIG),
the e2e tier (`make kind-e2e` and `make test` select it with `-m e2e`).

The e2e package starts the built-in node when no cluster is named and none is running, deploys both
charts as `make up` does, and stops the node it started at the end. Needs root for the node.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import kit  # noqa: E402

from tier0_dev.node import cluster, deploy  # noqa: E402
from tier0_dev.node.layout import Layout  # noqa: E402


# Package scope: the node it started stops after the last e2e test, not at the end of the whole
# run (its pods would load the machine under the other tiers); the e2e tests are all in this folder
# and tests/conftest.py runs them one after the other.
@pytest.fixture(scope="package")
def installed() -> Iterator[tuple[kit.Cluster, float]]:
    """(the cluster with both charts installed and the pair Healthy, seconds the install took)."""
    kubeconfig, started = kit.started_kubeconfig()
    try:
        c = kit.Cluster(kubeconfig)
        took = deploy.install(c.rel)
        yield c, took
    finally:
        if started:
            cluster.down(Layout.default())


@pytest.fixture
def tier0(installed: tuple[kit.Cluster, float]) -> kit.Cluster:
    """The cluster, its pair Healthy (spec = status) before the test starts."""
    c = installed[0]
    c.healthy()
    return c


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if kit.REPORT:
        terminalreporter.write_sep("-", "e2e: what the client of the global Service saw")
        for line in kit.REPORT:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first e2e test also waits for node-up and both charts' install: a longer timeout."""
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.timeout(900))
