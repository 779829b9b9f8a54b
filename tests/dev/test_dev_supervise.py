"""The local stack's pure parts: the restart backoff policy and what `status` prints about Redis
roles and the RegionPair."""

import pytest

from tier0_contract import regionpair as rp
from tier0_dev import stack, supervise
from tier0_testing.api import regionpair_manifest

pytestmark = pytest.mark.unit


def test_backoff_doubles_per_crash_in_a_row_up_to_the_cap() -> None:
    policy = supervise.Backoff(initial=0.5, factor=2, cap=4, reset_after=30)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_long_run_resets_the_streak_a_quick_crash_extends_it() -> None:
    policy = supervise.Backoff(reset_after=30)
    assert policy.after_crash(failures=0, uptime=0.1) == 1
    assert policy.after_crash(failures=3, uptime=2.0) == 4
    assert policy.after_crash(failures=5, uptime=30.0) == 1


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({}, "not answering"),
        (
            {"role": "master", "connected_slaves": "1", "master_repl_offset": "42"},
            "role master, 1 replica(s), offset 42",
        ),
        (
            {
                "role": "slave",
                "master_host": "127.0.0.1",
                "master_port": "6379",
                "master_link_status": "down",
                "slave_repl_offset": "7",
            },
            "role replica of 127.0.0.1:6379 (link down), offset 7",
        ),
    ],
)
def test_redis_role_comes_from_info_replication(info: dict[str, str], expected: str) -> None:
    assert stack.describe_redis(info) == expected


def test_pair_line_shows_phase_active_region_and_last_transition() -> None:
    last = {
        "type": "Switchover",
        "from": "region1",
        "to": "region2",
        "outcome": "Succeeded",
        "epoch": 2,
        "startedAt": "2025-01-02T03:04:04Z",
        "completedAt": "2025-01-02T03:04:05Z",
        "durationSeconds": 1.0,
    }
    status = {"phase": "Healthy", "activeRegion": "region2", "lastTransition": last}
    pair = rp.RegionPair.from_object({**regionpair_manifest(active="region2"), "status": status})
    assert stack.describe_pair(pair) == (
        "phase Healthy, active region2 (spec region2); last Switchover region1->region2 at 2025-01-02T03:04:05Z"
    )
    assert stack.describe_pair(None) == "not found"
