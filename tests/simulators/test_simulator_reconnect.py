"""When the simulators give up on a broker connection and how soon they try again
(tier0_simulators.reconnect; the I/O around it: tests/simulators/test_simulator_reconnect_brokers.py).

What is tested: a publish waiting longer than the timeout with nothing acknowledged meanwhile is a
stall; nothing waiting, an acknowledgement or a new connection since, or a wait within the timeout
is not; the backoff starts at once, doubles from its minimum and stops at its maximum; nonsense
policies are refused.
"""

import pytest

from tier0_simulators import reconnect

pytestmark = pytest.mark.unit


def test_a_publish_waiting_past_the_timeout_with_nothing_acknowledged_is_a_stall() -> None:
    assert reconnect.stalled(now=12.1, oldest_unacked=10.0, last_progress=5.0, timeout=2.0)


@pytest.mark.parametrize(
    ("now", "oldest", "progress"),
    [
        (12.1, None, 5.0),  # nothing waits for an acknowledgement
        (11.9, 10.0, 5.0),  # still within the timeout
        (12.1, 10.0, 11.0),  # the broker acknowledged something a second ago: slow, not silent
        (12.1, 10.0, 10.5),  # a new connection (messages carried over from the dropped one)
    ],
)
def test_no_stall_without_a_publish_waiting_past_the_timeout_since_the_last_progress(
    now: float, oldest: float | None, progress: float
) -> None:
    assert not reconnect.stalled(now, oldest, progress, timeout=2.0)


def test_the_backoff_starts_at_once_doubles_and_is_capped() -> None:
    policy = reconnect.Policy(backoff_min=0.1, backoff_max=1.0)
    assert [policy.delay(n) for n in range(7)] == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.delay(10_000) == 1.0  # no overflow however long the outage


@pytest.mark.parametrize(
    "kwargs",
    [{"ack_timeout": 0}, {"connect_timeout": -1}, {"backoff_min": 0}, {"backoff_min": 3.0, "backoff_max": 2.0}],
)
def test_a_policy_that_could_never_reconnect_sensibly_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive timeouts"):
        reconnect.Policy(**kwargs)
