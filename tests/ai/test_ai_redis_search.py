"""How tests and the local stack find a Redis with the query engine (tier0_dev.programs)."""

from pathlib import Path

import pytest

from tier0_dev import procs, programs

pytestmark = pytest.mark.unit


def test_search_redis_is_required_preferred_or_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    plain = tmp_path / "redis-server"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o755)
    monkeypatch.setattr(procs, "TOOLS_BIN", tmp_path)
    monkeypatch.setattr(procs, "EXTRA_DIRS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(procs.MissingProgramError, match=r"redis-stack-server is not installed: hack/install-tools.sh"):
        programs.redis_binary(search=True)
    assert programs.redis_binary(search=None) == str(plain)
    assert programs.redis_binary(search=False) == str(plain)
    stack = tmp_path / "redis-stack-server"
    stack.write_text("#!/bin/sh\n")
    stack.chmod(0o755)
    assert programs.redis_binary(search=True) == str(stack) == programs.redis_binary(search=None)
    assert programs.redis_binary(search=False) == str(plain)
