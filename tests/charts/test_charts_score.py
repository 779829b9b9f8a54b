"""Both charts pass kube-score, a well-known Kubernetes manifest linter, with every exception written
down (issue 17, item 7).

What is tested, with kube-score (KUBE_SCORE_VERSION in hack/versions.env, built by
hack/install-tools.sh) over each chart rendered with default values and with each ci/*.yaml:
- no check scores below OK on any object, except what an exception in charts/kube-score.yaml covers
  (inline `kube-score/ignore` annotations are switched off, so nothing is excepted elsewhere);
- every exception is still needed (some finding matches it), has a reason, and is listed in
  charts/README.md.
Here rather than in the unit tier because it runs helm and kube-score from .tools/bin, like
test_charts.py.
"""

import functools
import json
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tier0_dev.procs import ROOT, find_program

pytestmark = pytest.mark.controlplane

CHARTS = ROOT / "charts"
CONFIG = yaml.safe_load((CHARTS / "kube-score.yaml").read_text())
KUBE_VERSION = next(
    line.split("=", 1)[1].lstrip("v")
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if line.startswith("KUBERNETES_VERSION=")
)
# Each chart with its default values and with each of its ci/*.yaml (all-on, and the tier0 chart's
# shared brokers).
RENDERS = [
    (chart, values)
    for chart in ("tier0-operator", "tier0")
    for values in ("default", *sorted(p.stem for p in (CHARTS / chart / "ci").glob("*.yaml")))
]
OK = 10  # kube-score's grade for a passed check (critical 1, warning 5, almost OK 7)


@dataclass(frozen=True)
class Finding:
    obj: str  # Kind/name
    check: str
    grade: int
    summary: str

    def __str__(self) -> str:
        return f"{self.obj}: {self.check} ({self.grade}): {self.summary}"


def covers(exception: dict[str, Any], f: Finding) -> bool:
    return (
        exception["check"] == f.check
        and exception.get("summary", "") in f.summary
        and (not exception.get("objects") or any(re.fullmatch(p, f.obj) for p in exception["objects"]))
    )


@functools.cache
def findings(chart: str, values: str) -> tuple[Finding, ...]:
    extra = ["-f", str(CHARTS / chart / "ci" / f"{values}.yaml")] if values != "default" else []
    rendered = subprocess.run(
        [find_program("helm"), "template", chart, str(CHARTS / chart), "-n", chart, "--kube-version", KUBE_VERSION]
        + ["--skip-tests", *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    argv = [find_program("kube-score"), "score", "--output-format", "json", "--disable-ignore-checks-annotations"]
    argv += ["--kubernetes-version", CONFIG["kubernetesVersion"]]
    for check in CONFIG.get("enableOptional", []):
        argv += ["--enable-optional-test", check]
    scored = subprocess.run([*argv, "-"], input=rendered.stdout, capture_output=True, text=True, timeout=120)
    assert scored.stdout.lstrip().startswith("["), scored.stderr
    out = []
    for obj in json.loads(scored.stdout):
        name = f"{obj['type_meta']['kind']}/{obj['object_meta']['name']}"
        for c in obj["checks"]:
            if c["skipped"] or c["grade"] >= OK:
                continue
            for comment in c["comments"] or [{"summary": ""}]:
                out.append(Finding(name, c["check"]["id"], c["grade"], comment.get("summary", "")))
    return tuple(out)


@pytest.mark.parametrize(("chart", "values"), RENDERS, ids=[f"{c}-{v}" for c, v in RENDERS])
def test_kube_score_finds_nothing_but_the_written_down_exceptions(chart: str, values: str) -> None:
    scored = findings(chart, values)
    checked = {f.check for f in scored}
    assert checked, "kube-score found nothing at all: is it scoring the rendered objects?"
    left = [str(f) for f in scored if not any(covers(e, f) for e in CONFIG["exceptions"])]
    assert not left, "kube-score findings without an exception in charts/kube-score.yaml:\n" + "\n".join(left)


def test_every_exception_is_needed_explained_and_in_the_readme() -> None:
    scored = [f for chart, values in RENDERS for f in findings(chart, values)]
    readme = (CHARTS / "README.md").read_text()
    for e in CONFIG["exceptions"]:
        assert len(e.get("reason", "").split()) >= 10, f"{e['check']}: give the reason"
        assert any(covers(e, f) for f in scored), f"the exception {e} matches no finding any more: remove it"
        assert f"`{e['check']}`" in readme, f"charts/README.md does not list the exception {e['check']}"


def test_the_config_is_what_the_test_reads() -> None:
    """Unknown keys in an exception would silently widen or narrow it."""
    for e in CONFIG["exceptions"]:
        assert set(e) <= {"check", "summary", "objects", "reason"}, e
    listed = subprocess.run([find_program("kube-score"), "list"], capture_output=True, text=True, timeout=30)
    known = {line.split(",", 1)[0] for line in listed.stdout.splitlines()}
    for check in [e["check"] for e in CONFIG["exceptions"]] + CONFIG.get("enableOptional", []):
        assert check in known, f"kube-score has no check {check}"
