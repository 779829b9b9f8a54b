"""Wedging a real process's loop in a test, and what its liveness probe sees meanwhile.

`argv()` starts a module under `wedged.py`, which blocks the main thread (where the loop runs) in a
real blocking call on SIGUSR1 while the other threads — the metrics and health server — run on.
`assert_liveness_sees_the_loop()` sends it and checks the probe: a liveness endpoint that only
proves its HTTP thread answers stays green through the wedge; one that sees the loop does not.
"""

import os
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tier0_dev.procs import Process
from tier0_testing import charts, wedged

WEDGE_SECONDS_ENV = wedged.WEDGE_SECONDS_ENV


def argv(module: str, *args: str) -> list[str]:
    """The command line running `python -m module args` under `wedged.py` (as a script: the
    subprocess does not have pytest's pythonpath)."""
    return [sys.executable, wedged.__file__, module, *args]


def liveness_path(chart: str, kind: str, container: str) -> str:
    """The path the chart's liveness probe of `container` (in a `kind` of `chart`) asks, as rendered
    with default values: the test probes what the kubelet would."""
    for doc in charts.render(chart, "t"):
        if doc["kind"] == kind:
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c["name"] == container:
                    return str(c["livenessProbe"]["httpGet"]["path"])
    raise AssertionError(f"no {kind} container {container} in charts/{chart}")


def status_of(url: str) -> int:
    """The HTTP status of GET `url` (0: no answer within a second)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


@dataclass
class Timeline:
    """What the liveness endpoint and /metrics answered, from the SIGUSR1 on (seconds, status)."""

    probe: list[tuple[float, int]] = field(default_factory=list)
    metrics: list[tuple[float, int]] = field(default_factory=list)

    def first(self, ok: bool, after: float = 0.0) -> float | None:
        return next((t for t, s in self.probe if t >= after and (s == 200) == ok), None)

    def __str__(self) -> str:
        return f"probe {self.probe}; metrics {self.metrics}"


def wedge(proc: Process, base_url: str, path: str, watch_for: float) -> Timeline:
    """SIGUSR1 `proc` (started with `argv`) and record `path` and /metrics for `watch_for` seconds."""
    line = Timeline()
    os.kill(proc.pid, signal.SIGUSR1)
    start = time.monotonic()
    while (now := time.monotonic() - start) < watch_for:
        line.probe.append((round(now, 2), status_of(base_url + path)))
        line.metrics.append((round(now, 2), status_of(base_url + "/metrics")))
        time.sleep(0.1)
    return line


def assert_liveness_sees_the_loop(proc: Process, base_url: str, path: str, max_age: float, seconds: float) -> None:
    """Wedge `proc`'s loop for `seconds` (its TIER0_TEST_WEDGE_SECONDS) and check what the probe saw:
    503 within `max_age` plus a poll, /metrics still 200 from its thread meanwhile, 200 again after."""
    assert status_of(base_url + path) == 200, Path(proc.log_path).read_text(errors="replace")[-3000:]
    line = wedge(proc, base_url, path, seconds + 3.0)
    failed_at = line.first(ok=False)
    assert failed_at is not None, f"{path} stayed healthy while the loop was wedged: {line}"
    assert failed_at <= max_age + 1.5, f"{path} noticed the wedge after {failed_at} s: {line}"
    during = [s for t, s in line.metrics if failed_at <= t < seconds - 0.5]
    assert during and all(s == 200 for s in during), f"/metrics should still answer from its thread: {line}"
    recovered = line.first(ok=True, after=failed_at)
    assert recovered is not None and recovered <= seconds + 2.0, f"{path} did not recover: {line}"
    assert proc.alive(), "the process died"
