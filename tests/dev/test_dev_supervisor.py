"""The local stack's supervisor on a real program: a redis-server killed with SIGKILL is restarted
on its port after the backoff delay, a second crash in a row waits longer, and the restarts are
recorded where `status` reads them."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tier0_dev import procs, programs, stack, supervise
from tier0_dev.procs import free_port

pytestmark = pytest.mark.integration


def _wait_restarted(sup: supervise.Supervisor, name: str, old_pid: int, port: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = sup.read_pids(name)
        if pids and pids[0] != old_pid and stack.redis_info(port).get("role") == "master":
            return pids[0]
        time.sleep(0.02)
    raise AssertionError(f"{name} was not restarted within {timeout} s")


def test_a_killed_component_comes_back_with_growing_backoff(tmp_path: Path) -> None:
    port = free_port()
    comp = stack.Component("redis-test", "", port, lambda: [programs.redis(port, tmp_path / "redis")])
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    first = comp.start()[0]
    (pids_dir / "redis-test.pid").write_text(str(first.pid))
    policy = supervise.Backoff(initial=0.3, factor=4, cap=10, reset_after=60)
    sup = supervise.Supervisor([comp], pids_dir, tmp_path / "state.json", policy, poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=sup.run, args=(stop,))
    thread.start()
    try:
        first.kill()
        t0 = time.monotonic()
        second = _wait_restarted(sup, comp.name, first.pid, port)
        first_delay = time.monotonic() - t0

        os.killpg(second, signal.SIGKILL)
        t1 = time.monotonic()
        _wait_restarted(sup, comp.name, second, port)
        second_delay = time.monotonic() - t1
    finally:
        stop.set()
        thread.join()
        for proc in sup.children:
            proc.stop()
    assert 0.3 <= first_delay < 3.0
    assert second_delay >= 1.2 > first_delay  # the second crash in a row waits initial x factor
    state = supervise.load_states(tmp_path / "state.json")["redis-test"]
    assert (state.restarts, state.failures) == (2, 2)
    assert state.last_exit.startswith("died after")


def test_a_zombie_leader_counts_as_dead_but_not_while_its_group_lives() -> None:
    # A shell leading a group with a child that outlives it (like rabbitmq-server's script and beam).
    leader = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30"], start_new_session=True)
    try:
        time.sleep(0.2)
        assert procs.group_alive(leader.pid)
        os.kill(leader.pid, signal.SIGKILL)  # not reaped yet: a zombie, its background sleep lives
        time.sleep(0.2)
        assert procs.group_alive(leader.pid)
        os.killpg(leader.pid, signal.SIGKILL)
        time.sleep(0.2)
        assert not procs.group_alive(leader.pid)  # only the zombie is left
    finally:
        leader.wait()
