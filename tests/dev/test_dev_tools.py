"""tier0_dev: program lookup errors, port helpers, the local stack's component table."""

import socket

import pytest

from tier0_dev import procs, stack

pytestmark = pytest.mark.unit


def test_missing_program_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs, "TOOLS_BIN", procs.ROOT / "no-such-dir")
    monkeypatch.setattr(procs, "EXTRA_DIRS", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(procs.MissingProgramError, match=r"redis-server is not installed: apt-get install redis-server"):
        procs.find_program("redis-server")
    with pytest.raises(procs.MissingProgramError, match=r"make tools"):
        procs.find_program("kube-apiserver")


def test_free_port_is_bindable_and_port_open_sees_listeners() -> None:
    port = procs.free_port()
    assert not procs.port_open(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert procs.port_open(port)


def test_stack_components_have_unique_names_and_ports() -> None:
    names = [c.name for c in stack.COMPONENTS]
    ports = [c.port for c in stack.COMPONENTS]
    assert len(names) == len(set(names))
    assert len(ports) == len(set(ports))
    # docs/DESIGN.md's fixed local ports.
    by_name = {c.name: c.port for c in stack.COMPONENTS}
    assert by_name["redis-region1"] == 6379 and by_name["redis-region2"] == 6380
    assert by_name["region-api-region1"] == 8000 and by_name["region-api-region2"] == 8100
    assert by_name["mosquitto"] == 1883 and by_name["rabbitmq"] == 5672
