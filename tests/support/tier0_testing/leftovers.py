"""Which processes a test left running: the check behind tests/conftest.py's autouse fixture.

A worker, simulator or broker that outlives the test which started it keeps publishing, consuming
or writing while the next tests run, and they fail for reasons of their own (a fresh-clone run once
saw every MQTT message stored twice and a device simulator's message in a broker test). So a
process a test or its fixtures started must be gone when they end: checked here, not hoped.

How a process is known to be this test run's: `mark()` puts `MARKER` into pytest's environment, and
every program started from it inherits it, however it was started and even after its parent died
(an orphan reparented to init keeps its environment). A process is the test's when it carries the
marker, did not run when the test began, and was not spawned by a program that did (a browser's
renderer belongs to the browser a session fixture started). Only /proc is read.
"""

import os
from dataclasses import dataclass
from pathlib import Path

MARKER = "TIER0_TEST_RUN"

SHARED_DAEMONS = frozenset({"epmd"})
"""Programs meant to outlive whoever started them, shared by every later user on the machine:
Erlang's port mapper is started (`epmd -daemon`) by the first RabbitMQ node and serves every node
after it, so it stays. Which test starts it depends only on the order the tests run in."""


def mark() -> None:
    """Label every process this pytest starts from now on (children inherit the environment)."""
    os.environ[MARKER] = str(os.getpid())


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: str

    @property
    def program(self) -> str:
        """The file name of the program (argv[0]'s last part)."""
        return os.path.basename(self.argv.split(" ", 1)[0])

    def __str__(self) -> str:
        return f"pid {self.pid}: {self.argv}"


def _read(pid: str, tag: bytes) -> Proc | None:
    """The process if it runs (not a zombie) and carries `tag` in its environment."""
    base = Path("/proc") / pid
    try:
        if tag not in (base / "environ").read_bytes().split(b"\0"):
            return None
        stat = (base / "stat").read_text()
        argv = (base / "cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile, or not ours to read
        return None
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    if state == "Z":
        return None
    shown = " ".join(a.decode(errors="replace") for a in argv[:6] if a)
    return Proc(int(pid), int(ppid), shown[:160])


def ours() -> dict[int, Proc]:
    """Every running process started from this pytest (carrying its marker), by pid."""
    tag = f"{MARKER}={os.environ.get(MARKER, '')}".encode()
    found = (_read(entry, tag) for entry in os.listdir("/proc") if entry.isdigit())
    return {p.pid: p for p in found if p is not None}


def snapshot() -> frozenset[int]:
    return frozenset(ours())


def started_since(before: frozenset[int]) -> list[Proc]:
    """The processes started after `before` that still run, except those spawned by a program
    that already ran then."""
    now = ours()
    left = []
    for proc in now.values():
        if proc.pid in before or proc.program in SHARED_DAEMONS:
            continue
        parent = proc.ppid
        while parent in now and parent not in before:
            parent = now[parent].ppid
        if parent not in before:  # up to pytest itself, or orphaned: the test started it
            left.append(proc)
    return sorted(left, key=lambda p: p.pid)
