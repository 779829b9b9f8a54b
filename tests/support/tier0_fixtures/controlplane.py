"""Control-plane fixtures shared by the operator's, the region API's and the charts' tests, in every
folder: tests/conftest.py registers this module (`pytest_plugins`)."""

from pathlib import Path

import pytest

from tier0_dev.procs import ROOT
from tier0_testing.operator import run_kubectl

REGIONPAIR_CRD = ROOT / "crds" / "regionpairs.tier0.dev.yaml"


@pytest.fixture(scope="session")
def regionpair_crd(kubectl: list[str]) -> Path:
    """The real RegionPair CRD from crds/, installed once and Established."""
    run_kubectl(kubectl, "apply", "-f", str(REGIONPAIR_CRD))
    run_kubectl(kubectl, "wait", "--for=condition=Established", "crd/regionpairs.tier0.dev", "--timeout=30s")
    return REGIONPAIR_CRD
