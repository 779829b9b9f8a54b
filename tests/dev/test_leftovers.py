"""The leftover-process check (`tier0_testing.leftovers`, behind tests/conftest.py's autouse
fixture): a process a test started is found while it runs, also once orphaned (its parent gone,
reparented away from pytest); one spawned by a program that ran before the test began is not the
test's; a stopped one is not reported; Erlang's port mapper, shared by every RabbitMQ node after
the first, is not a leftover."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tier0_dev import procs
from tier0_testing import leftovers

pytestmark = pytest.mark.integration

SLEEP = "import time; time.sleep(60)"


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_started_process_is_reported_until_it_is_stopped(tmp_path: Path) -> None:
    before = leftovers.snapshot()
    proc = procs.Process("sleeper", [sys.executable, "-c", SLEEP], tmp_path / "sleeper.log").start()
    try:
        wait_until(lambda: [p.pid for p in leftovers.started_since(before)] == [proc.pid])
    finally:
        assert procs.stop_all([proc]) == []
    assert leftovers.started_since(before) == []


def test_an_orphan_is_still_the_tests(tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    before = leftovers.snapshot()
    # The shell in between exits at once: the sleeper is reparented away from pytest.
    subprocess.run(["sh", "-c", f"'{sys.executable}' -c '{SLEEP}' >/dev/null 2>&1 & echo $! > {pid_file}"], check=True)
    orphan = int(pid_file.read_text())
    try:
        wait_until(lambda: [p.pid for p in leftovers.started_since(before)] == [orphan])
        assert leftovers.ours()[orphan].ppid != os.getpid()
    finally:
        os.kill(orphan, signal.SIGKILL)
    wait_until(lambda: leftovers.started_since(before) == [])


def test_what_an_older_program_spawns_is_not_the_tests(tmp_path: Path) -> None:
    """As a session fixture's browser starting a renderer while a test runs."""
    spawn = (
        f"import subprocess, sys, time; time.sleep(0.5); subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); {SLEEP}"
    )
    spawner = procs.Process("spawner", [sys.executable, "-c", spawn], tmp_path / "spawner.log").start()
    try:
        wait_until(lambda: spawner.pid in leftovers.ours())
        before = leftovers.snapshot()
        wait_until(lambda: any(p.ppid == spawner.pid for p in leftovers.ours().values()))
        assert leftovers.started_since(before) == []
    finally:
        assert procs.stop_all([spawner]) == []


def test_the_erlang_port_mapper_a_broker_starts_is_not_a_leftover() -> None:
    """A CI run once failed the test that happened to start the first RabbitMQ node: its
    `epmd -daemon` outlived it, as it is meant to. A port mapper of its own here, stopped after."""
    port = procs.free_port()
    before = leftovers.snapshot()
    subprocess.run([procs.find_program("epmd"), "-port", str(port), "-daemon"], check=True)
    try:
        wait_until(lambda: any(p.program == "epmd" for p in leftovers.ours().values() if p.pid not in before))
        assert leftovers.started_since(before) == []
    finally:
        subprocess.run([procs.find_program("epmd"), "-port", str(port), "-kill"], check=False, capture_output=True)
