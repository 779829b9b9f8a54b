"""The user-activity simulator's population: bounds, churn, valid messages, repeatability."""

from datetime import UTC, datetime, timedelta

import pytest

from tier0_contract.models import parse_user_activity
from tier0_simulators.users import Population

pytestmark = pytest.mark.unit


def test_counts_stay_in_bounds_and_users_churn() -> None:
    pop = Population(200, 500, seed=7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    seen: set[str] = set()
    counts = []
    for i in range(200):
        msg = pop.tick(t0 + timedelta(seconds=5 * i))
        assert 200 <= msg.metrics.active_users <= 500
        assert msg.metrics.active_users == len(msg.active_users_list)
        assert msg.metrics.active_connections == sum(u.connections for u in msg.active_users_list)
        counts.append(msg.metrics.active_users)
        seen |= {u.user_id for u in msg.active_users_list}
    assert len(set(counts)) > 10  # the total wanders
    assert len(seen) > 2 * max(counts)  # users leave and new ones log in


def test_messages_round_trip_through_the_contract_and_are_repeatable() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    a, b = Population(200, 210, seed=1).tick(t), Population(200, 210, seed=1).tick(t)
    assert a == b
    assert parse_user_activity(a.model_dump_json()) == a


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        Population(500, 200)
