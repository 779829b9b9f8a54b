"""The dashboards pass Grafana's own schema, strictly: hack/dashcheck decodes each file with the
grafana-foundation-sdk's Dashboard.UnmarshalJSONStrict (unknown fields and wrong types anywhere,
panel options and field config included, are errors) and requires a description on every panel."""

import json
import subprocess
from pathlib import Path

import pytest

from tier0_dev.procs import ROOT, TOOLS_BIN

pytestmark = pytest.mark.integration

FILES = sorted((ROOT / "dashboards").glob("*.json")) + sorted((ROOT / "charts" / "tier0" / "dashboards").glob("*.json"))


def dashcheck() -> Path:
    binary = TOOLS_BIN / "dashcheck"
    if not binary.exists():
        pytest.fail("dashcheck is not built: run `hack/install-tools.sh --only dashcheck` (or `make tools`)")
    return binary


def test_every_dashboard_passes_grafanas_strict_schema() -> None:
    out = subprocess.run([dashcheck(), *FILES], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(FILES)} dashboards pass" in out.stdout


def test_the_checker_rejects_an_unknown_field_and_a_missing_description(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    good = (ROOT / "dashboards" / "tier0-fleet.json").read_text()
    model = json.loads(good)
    model["panels"][1]["notAGrafanaField"] = True
    bad.write_text(json.dumps(model))
    out = subprocess.run([dashcheck(), bad], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "notAGrafanaField" in out.stdout, out.stdout
    model = json.loads(good)
    model["panels"][1]["description"] = ""
    bad.write_text(json.dumps(model))
    out = subprocess.run([dashcheck(), bad], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "has no description" in out.stdout, out.stdout
