"""The access-log day counts are bounded (`keys.LOGS_MAX_DAYS`, older days summed under `earlier`):
the answers that read them say so instead of giving a figure for a day, month or year whose requests
may have been summed away, and still answer for the days kept (pure: `questions.gap`)."""

from datetime import UTC, datetime

import pytest

from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs import questions as log_questions
from tier0_services.ai.rag import intents, slots

pytestmark = pytest.mark.unit

KEPT = {"2024-06-01": 10, "2024-06-02": 20, "2024-06-03": 30}
FIRST_TS = datetime(2024, 5, 20, 12, tzinfo=UTC).timestamp()


def summed_stats(earlier: int = 7) -> aggregates.Stats:
    total = sum(KEPT.values()) + earlier
    return aggregates.Stats(
        total, {200: total}, {"GET": total}, dict(KEPT), 3, 0.0, 0, None, FIRST_TS, None, earlier=earlier
    )


@pytest.mark.parametrize(
    ("question", "label", "expected"),
    [
        ("How many requests on 30 May 2024?", "logs.count", "the 7 requests of earlier days"),
        ("How many requests in May 2024?", "logs.count", "the 7 requests of earlier days"),
        ("How many requests got a 404 in 2024?", "logs.count", "the 7 requests of earlier days"),
        ("How many requests on 3 May 2024?", "logs.count", "nothing on 2024-05-03"),  # before the first request
        ("How many requests in 2019?", "logs.count", "nothing in 2019"),
        ("How many requests on 9 June?", "logs.count", "nothing on 06-09"),  # after the oldest kept day
        ("How many requests on 25 May?", "logs.count", "the 7 requests of earlier days"),
        ("How many requests on 2 May?", "logs.count", "nothing on 05-02"),
        ("How many requests on 1 June 2024?", "logs.count", None),  # a kept day is exact
        ("How many requests on 2 June?", "logs.count", None),
    ],
)
def test_a_day_summed_away_is_said_not_counted(question: str, label: str, expected: str | None) -> None:
    q = intents.log_query(label, slots.extract(question))
    found = log_questions.gap(q, summed_stats())
    assert (found is None) if expected is None else (found is not None and expected in found), found
    if found is not None and "earlier days" in found:
        assert "The logs I hold cover 2024-05-20 to 2024-06-03" in found
        assert "keep the newest 3 days (from 2024-06-01)" in found


def test_without_summed_days_nothing_changes() -> None:
    q = intents.log_query("logs.count", slots.extract("How many requests on 30 May 2024?"))
    stats = summed_stats(earlier=0)
    assert log_questions.gap(q, stats) is not None and "nothing on 2024-05-30" in (log_questions.gap(q, stats) or "")
    assert "earlier_days_entries" not in log_questions.covers(stats)
    assert log_questions.covers(summed_stats())["earlier_days_entries"] == 7
