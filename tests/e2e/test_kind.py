"""The charts on a real cluster: kind, both charts installed, a switchover and a failover through the
real Service (hack/kind.sh e2e). Needs Docker: where `docker info` cannot reach an engine the test is
skipped with the reason printed (the only skip in the suite). CI runs it (.github/workflows/e2e.yaml).
"""

import shutil
import subprocess

import pytest

from tier0_dev.procs import ROOT


def docker_engine_problem() -> str | None:
    """Why Docker cannot be used here, or None when an engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    try:
        out = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if out.returncode != 0:
        return f"`docker info` cannot reach an engine: {(out.stderr or out.stdout).strip().splitlines()[-1]}"
    return None


def test_switchover_and_failover_on_kind() -> None:
    problem = docker_engine_problem()
    if problem:
        pytest.skip(f"kind e2e needs a Docker engine ({problem}); run it where Docker works: make kind-up kind-e2e")
    up = subprocess.run(["make", "kind-up"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
    e2e = subprocess.run(["make", "kind-e2e"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert e2e.returncode == 0, e2e.stdout[-4000:] + e2e.stderr[-4000:]
    assert "e2e passed" in e2e.stderr
