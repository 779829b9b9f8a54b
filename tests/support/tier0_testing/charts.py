"""Rendering the repository's charts in tests: `helm template` at the Kubernetes version the control
plane runs (helm built with `go install` assumes v1.20 unless told, which the charts refuse)."""

import subprocess
from typing import Any

import yaml

from tier0_dev.procs import ROOT, find_program

CHARTS = ROOT / "charts"
KUBE_VERSION = next(
    line.split("=", 1)[1].lstrip("v")
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if line.startswith("KUBERNETES_VERSION=")
)


def render(chart: str, release: str, namespace: str = "default", *flags: str) -> list[dict[str, Any]]:
    """The objects `helm template` renders for charts/`chart` (without the `helm test` pods)."""
    out = subprocess.run(
        [find_program("helm"), "template", release, str(CHARTS / chart), "-n", namespace]
        + ["--kube-version", KUBE_VERSION, "--skip-tests", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]
