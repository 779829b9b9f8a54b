"""Pure parts of grounded answering: question constraints and their check against evidence (the
Cohere path's coverage check), percentiles over the latency histogram, rounding, and the FT.INFO
reading behind index migration. Routing, slots and the reader: test_ai_answering.py."""

import pytest

from tier0_services.ai import vectors
from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs import questions as log_questions
from tier0_services.ai.rag import grounding

pytestmark = pytest.mark.unit

BP_2024 = (
    "BP field operations: safety incidents in 2024 (SAMPLE) Incident count: In 2024 the BP field operations "
    "monitored by tier0 recorded 9 safety incidents across all sites."
)


def test_constraints_find_names_years_codes_and_subject() -> None:
    c = grounding.constraints("How many incidents at Shell in 2019?")
    assert c.names == ("Shell",) and c.years == ("2019",) and c.codes == () and c.terms == ("incident",)
    c = grounding.constraints("What is BP's stock price?")
    assert c.names == ("BP",) and c.terms == ("stock", "price")
    c = grounding.constraints("What does HTTP 503 mean?")
    assert c.names == ("HTTP",) and c.codes == ("503",) and c.terms == ()


@pytest.mark.parametrize(
    ("question", "ok", "missing"),
    [
        ("How many safety incidents occurred in BP operations in 2024?", True, ""),
        ("What is BP's stock price?", False, "'stock', 'price'"),
        ("How many incidents at Shell in 2019?", False, "Shell"),
        ("BP incidents in 2023?", False, "2024, not 2023"),
    ],
)
def test_check_against_evidence(question: str, ok: bool, missing: str) -> None:
    verdict = grounding.check(grounding.constraints(question), BP_2024)
    assert verdict.ok is ok
    if not ok:
        assert missing in grounding.explain(verdict, ["BP field operations"], BP_2024)


def test_site_ids_match_their_names_in_prose() -> None:
    c = grounding.constraints("How many incidents did WY-ALPHA report?")
    assert grounding.check(c, "Wyoming Alpha reported 4 incidents").ok
    assert not grounding.check(c, "Texas Bravo reported 3 incidents").ok


def test_percentile_is_nearest_rank_over_the_histogram() -> None:
    values = [float(v) for v in range(1, 101)]
    hist: dict[float, int] = {}
    for v in values:
        bucket = float(aggregates.latency_bucket(v))
        hist[bucket] = hist.get(bucket, 0) + 1
    assert aggregates.percentile(hist, 50) == 50.0
    assert aggregates.percentile(hist, 99) == 99.0
    assert aggregates.percentile(hist, 100) == 100.0
    assert aggregates.percentile({}, 99) is None
    assert aggregates.latency_bucket(971.712115999992) == "972"
    assert aggregates.latency_bucket(0.51234) == "0.512"


def test_rounding_to_significant_digits() -> None:
    assert log_questions.sig(971.712115999992) == 972.0
    assert log_questions.sig(31.4567) == 31.5
    assert log_questions.sig(None) is None


def test_index_schema_from_ft_info() -> None:
    info = [
        b"index_name",
        b"idx:images",
        b"index_definition",
        [b"key_type", b"HASH", b"prefixes", [b"embedding:"], b"filter", b'@model=="m"'],
        b"attributes",
        [
            [b"identifier", b"embedding", b"type", b"VECTOR", b"algorithm", b"FLAT", b"dim", 384],
            [b"identifier", b"site_id", b"type", b"TAG"],
        ],
        b"indexing",
        0,
    ]
    assert vectors.parse_index_schema(info) == vectors.IndexSchema(384, '@model=="m"')
    assert not vectors.is_indexing(info)
    assert vectors.create_index_command("i", "p:", 8, ("a",), '@model=="m"')[:9] == [
        "FT.CREATE",
        "i",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "p:",
        "FILTER",
        '@model=="m"',
    ]
