"""Start, wait for and stop real local programs.

Test fixtures and `make up` both run redis-server, mosquitto, rabbitmq-server, etcd and
kube-apiserver through this module, so a program is started the same way everywhere. A program
that is missing is an error that says how to install it, never a skip.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = Path(os.environ.get("TOOLS_DIR", ROOT / ".tools")) / "bin"

INSTALL_HINTS = {
    "redis-server": "apt-get install redis-server (or: make tools)",
    "redis-sentinel": "apt-get install redis-sentinel (or: make tools)",
    "toxiproxy-server": "hack/install-tools.sh --only toxiproxy-server (or: make tools; Go module proxy)",
    "redis-stack-server": "hack/install-tools.sh --redis-stack (Redis + RediSearch into .tools; part of make tools)",
    "mosquitto": "apt-get install mosquitto (or: make tools)",
    "mosquitto_sub": "apt-get install mosquitto-clients (or: make tools)",
    "rabbitmq-server": "apt-get install rabbitmq-server (or: make tools)",
    "prometheus": "apt-get install prometheus (or: make tools)",
    "promtool": "apt-get install prometheus (or: make tools)",
    "prometheus-redis-exporter": "apt-get install prometheus-redis-exporter (or: make tools)",
    "wrk": "apt-get install wrk (or: make tools)",
    "etcd": "make tools (builds etcd from the Go module proxy into .tools/bin)",
    "kube-apiserver": "make tools (builds kube-apiserver from the Go module proxy into .tools/bin)",
    "helm": "make tools (builds helm from the Go module proxy into .tools/bin)",
    "kube-score": "hack/install-tools.sh --only kube-score (or: make tools; Go module proxy into .tools/bin)",
    "openssl": "apt-get install openssl",
    "kubectl": "install kubectl (https://kubernetes.io/docs/tasks/tools/)",
}

# Debian installs some servers outside PATH for non-root users.
EXTRA_DIRS = ("/usr/sbin", "/usr/lib/rabbitmq/bin")


class MissingProgramError(RuntimeError):
    """A program tier0 needs is not installed."""


class StartupError(RuntimeError):
    """A program started but never became ready; the message carries its log tail."""


def find_program(name: str) -> str:
    """Absolute path of `name`, looking in .tools/bin first; raises with an install hint."""
    candidate = TOOLS_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(EXTRA_DIRS))
    if found:
        return found
    hint = INSTALL_HINTS.get(name, "see README.md")
    raise MissingProgramError(f"{name} is not installed: {hint}")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Process:
    """One running program with its log file; `stop()` ends its whole process group."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def start(self, detach: bool = False) -> "Process":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            # Own process group: stop() reaches children (rabbitmq's beam, erl_child_setup).
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, check: Callable[[], bool], timeout: float = 60.0) -> "Process":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise StartupError(
                    f"{self.name} exited with {self.popen.returncode}; log {self.log_path}:\n" + log_tail(self.log_path)
                )
            if check():
                return self
            time.sleep(0.05)
        self.stop()
        raise StartupError(
            f"{self.name} not ready after {timeout:.0f} s; log {self.log_path}:\n" + log_tail(self.log_path)
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        # poll() reaps the leader as soon as it exits: a zombie still answers killpg(pid, 0).
        stop_group(self.popen.pid, timeout, reap=self.popen.poll)
        self.popen.wait(timeout=1)

    def kill(self) -> None:
        """SIGKILL the whole group: a crash, not a shutdown (failover tests use this)."""
        if self.popen is not None and self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=5)


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, process group) of a process from /proc, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def group_alive(pid: int) -> bool:
    """True while a process of the group led by `pid` runs. Zombies do not count: once `up` has
    exited, its children are reaped by whatever init the machine has, which can take seconds, and
    a zombie still answers signals."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    leader = _stat(pid)
    if leader is not None and leader[0] != "Z":
        return True
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(entry)) is not None and st[1] == pid and st[0] != "Z":
            return True
    return False


def stop_group(pid: int, timeout: float = 15.0, reap: Callable[[], object] | None = None) -> bool:
    """SIGTERM a process group, SIGKILL it after `timeout`; True if it was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        if not group_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check for `Process.wait_ready`: `url` answers 200 within half a second."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    return check
