"""The liveness rule of the operator and the workers (`tier0_contract.liveness`): `/livez` is alive
while the loop's last stamp is at most the maximum age old, and says how long the loop has been
silent when it is not. (The real loops, wedged for real, are in tests/health/test_liveness_workers.py
and tests/health/test_operator_liveness.py.)"""

import pytest

from tier0_contract import liveness

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_age_is_the_time_since_the_last_stamp() -> None:
    t = FakeClock()
    clock = liveness.LoopClock(t)
    assert clock.age() == 0.0
    t.now += 7.5
    assert clock.age() == 7.5
    clock.tick()
    assert clock.age() == 0.0


def test_alive_up_to_the_maximum_age_then_wedged_with_the_reason() -> None:
    alive, body = liveness.verdict(3.0, 10.0)
    assert alive and body == {"status": "alive", "loopAgeSeconds": 3.0, "maxAgeSeconds": 10.0}
    assert liveness.verdict(10.0, 10.0)[0]
    alive, body = liveness.verdict(12.34, 10.0)
    assert not alive and body["status"] == "wedged"
    assert body["reason"] == "the event loop last ran 12.3 s ago (more than 10 s): it is blocked"
