"""Keep the local stack running: a crashed component is restarted with exponential backoff.

`tier0_dev up` starts the components itself (so it can print where each one listens) and then a
detached supervisor (`python -m tier0_dev supervise`), which watches every component that has a
pidfile. A component whose process group is gone is restarted after `Backoff.delay()`; the delay
doubles with each crash in a row and falls back to the first step once a component has run for
`reset_after` seconds (Kubernetes' CrashLoopBackOff, with local-development numbers). What the
supervisor knows (restarts, last exit, next attempt) goes into a JSON file that `status` reads;
the pidfile's mtime is when the component last started. `down` stops the supervisor first, so
nothing is restarted while the stack is being stopped.
"""

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from tier0_dev.procs import MissingProgramError, Process, StartupError, group_alive, stop_group

log = logging.getLogger("tier0_dev.supervise")


@dataclass(frozen=True)
class Backoff:
    """The restart policy, pure: how long to wait before the next attempt."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    reset_after: float = 30.0
    """A component that ran at least this long counts as healthy: its next crash waits `initial`."""

    def delay(self, failures: int) -> float:
        """Seconds before restart attempt number `failures` of a crash streak (1 = first)."""
        return float(min(self.cap, self.initial * self.factor ** max(0, failures - 1)))

    def after_crash(self, failures: int, uptime: float) -> int:
        """The streak length once a component that had run `uptime` seconds crashed."""
        return 1 if uptime >= self.reset_after else failures + 1


class Startable(Protocol):
    """What the supervisor needs of a stack component (stack.Component has it)."""

    @property
    def name(self) -> str: ...

    @property
    def start(self) -> Callable[[], list[Process]]: ...


@dataclass
class ComponentState:
    """What `status` shows next to a component's pid."""

    restarts: int = 0
    failures: int = 0
    """Crashes in a row (reset by a run longer than Backoff.reset_after)."""
    last_exit: str = ""
    down_since: float | None = None
    next_attempt: float | None = None


@dataclass
class Supervisor:
    components: Sequence[Startable]
    pids_dir: Path
    state_file: Path
    policy: Backoff = field(default_factory=Backoff)
    poll_interval: float = 0.2
    states: dict[str, ComponentState] = field(default_factory=dict)
    children: list[Process] = field(default_factory=list)
    """Processes this supervisor started (it reaps them)."""

    def pidfile(self, name: str) -> Path:
        return self.pids_dir / f"{name}.pid"

    def read_pids(self, name: str) -> list[int]:
        try:
            return [int(p) for p in self.pidfile(name).read_text().split()]
        except (OSError, ValueError):
            return []

    def step(self, now: float) -> None:
        """One pass: notice crashes, restart what is due. Only components with a pidfile are
        watched (the ones `up` started); one without is not this supervisor's business."""
        for proc in self.children:  # reap our own children, or a dead one stays a zombie
            if proc.popen is not None:
                proc.popen.poll()
        self.children = [p for p in self.children if p.alive()]
        changed = False
        for comp in self.components:
            pids = self.read_pids(comp.name)
            if not pids:
                continue
            st = self.states.setdefault(comp.name, ComponentState())
            if all(group_alive(p) for p in pids):
                if st.down_since is not None:  # restarted by someone else (a second `up`)
                    st.down_since = st.next_attempt = None
                    changed = True
                continue
            if st.down_since is None:
                uptime = now - self.pidfile(comp.name).stat().st_mtime
                st.failures = self.policy.after_crash(st.failures, uptime)
                st.down_since = now
                st.next_attempt = now + self.policy.delay(st.failures)
                st.last_exit = f"died after {uptime:.1f} s"
                log.warning("%s died after %.1f s; restart in %.1f s", comp.name, uptime, st.next_attempt - now)
                for pid in pids:  # what is left of a multi-process component (etcd + apiserver)
                    stop_group(pid, timeout=5)
                changed = True
            if st.next_attempt is not None and now >= st.next_attempt:
                changed = True
                self._restart(comp, st)
        if changed:
            self.save()

    def _restart(self, comp: Startable, st: ComponentState) -> None:
        try:
            procs = comp.start()
        except (StartupError, MissingProgramError, OSError) as exc:
            now = time.time()
            st.failures += 1
            st.next_attempt = now + self.policy.delay(st.failures)
            st.last_exit = f"restart failed: {str(exc).splitlines()[0]}"
            log.error("%s: %s; next attempt in %.1f s", comp.name, st.last_exit, st.next_attempt - now)
            return
        self.children += procs
        self.pidfile(comp.name).write_text(" ".join(str(p.pid) for p in procs))
        st.restarts += 1
        st.down_since = st.next_attempt = None
        log.info("%s restarted (restart %d, pid %s)", comp.name, st.restarts, procs[0].pid)

    def save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({name: asdict(st) for name, st in self.states.items()}, indent=1))
        tmp.replace(self.state_file)

    def run(self, stop: threading.Event) -> None:
        self.save()
        while not stop.is_set():
            self.step(time.time())
            stop.wait(self.poll_interval)


def load_states(state_file: Path) -> dict[str, ComponentState]:
    """The supervisor's last saved view (empty when it never ran)."""
    try:
        raw = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {}
    return {name: ComponentState(**fields) for name, fields in raw.items()}


def serve(supervisor: Supervisor) -> int:
    """Run until SIGTERM/SIGINT (what `down` sends)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("supervising %s", ", ".join(c.name for c in supervisor.components))
    supervisor.run(stop)
    log.info("stopped")
    return 0
