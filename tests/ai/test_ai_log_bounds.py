"""The access log stays bounded whatever the traffic: the recorder keeps route templates, not raw
paths; folding cuts long members and unknown methods; the top-k read ranks like the old full sort
(ties by name) from at most twice the rows asked for; latencies are bucketed within a range."""

import random

import pytest

from tier0_contract import keys
from tier0_services.ai.logs import aggregates
from tier0_services.ai.logs.parse import LogEntry
from tier0_services.ai.logs.recorder import AccessLogRecorder
from tier0_services.api.instrument import UNMATCHED_ROUTE, RequestRecord

pytestmark = pytest.mark.unit


def record(path: str, route: str, status: int = 404) -> RequestRecord:
    return RequestRecord(
        started_at=1_717_200_000.0,
        client_ip="10.0.0.1",
        method="GET",
        path=path,
        route=route,
        status=status,
        duration_seconds=0.002,
    )


def test_the_recorder_keeps_the_route_template_not_the_raw_path() -> None:
    recorder = AccessLogRecorder(redis=None, limit=10)  # type: ignore[arg-type]  # no flush here
    rng = random.Random(1)
    for _ in range(3):
        recorder(record("/" + "".join(rng.choices("abcdef", k=8192)), UNMATCHED_ROUTE))
    recorder(record("/api/images/site/WY-ALPHA?x=1", "/api/images/site/{site_id}", 200))
    paths = [e.path for e in recorder._buffer]
    assert paths == [UNMATCHED_ROUTE] * 3 + ["/api/images/site/{site_id}"]
    folded = aggregates.fold(recorder._buffer)
    assert folded.paths == {UNMATCHED_ROUTE: 3, "/api/images/site/{site_id}": 1}


def test_fold_cuts_long_members_and_unknown_methods() -> None:
    long_path = "/" + "x" * 8191
    folded = aggregates.fold(
        [
            LogEntry("1.2.3.4", 1.0, "BREW", long_path, 418, 1.0),
            LogEntry("1.2.3.4", 2.0, "GET", "/ok", 200, 1.0),
        ]
    )
    (path,) = folded.error_paths
    assert len(path) == keys.LOGS_MEMBER_MAX_CHARS and path.endswith("\u2026")
    assert path == aggregates.member(long_path)
    assert folded.by_method == {"OTHER": 1, "GET": 1}
    assert folded.recent_errors[0].path == path
    assert aggregates.member("/short") == "/short"


def test_fold_keeps_the_class_and_error_sets() -> None:
    folded = aggregates.fold(
        [
            LogEntry("a", 1.0, "GET", "/x", 404, None),
            LogEntry("a", 2.0, "GET", "/y", 400, None),
            LogEntry("b", 3.0, "GET", "/x", 503, None),
            LogEntry("b", 4.0, "GET", "/x", 200, None),
        ]
    )
    assert folded.ips_by_class == {4: {"a": 2}, 5: {"b": 1}, 2: {"b": 1}}
    assert folded.paths_by_class[4] == {"/x": 1, "/y": 1}
    assert folded.error_ips == {"a": 2, "b": 1}
    sets = aggregates.sorted_sets(folded)
    assert sets[keys.logs_ips_for_class(4)] == {"a": 2} and sets[keys.LOGS_ERROR_IPS] == {"a": 2, "b": 1}
    assert keys.logs_ips_for_class(4) == "logs:ips:4xx" != keys.logs_ips_for_status(400)


def full_sort(pairs: list[tuple[bytes, float]], limit: int) -> list[tuple[bytes, float]]:
    return sorted(pairs, key=lambda p: (-p[1], p[0]))[:limit]


def test_ranked_top_equals_the_full_sort() -> None:
    rng = random.Random(3)
    for _ in range(200):
        pairs = [(f"m{i:03d}".encode(), float(rng.randint(1, 6))) for i in range(rng.randint(0, 40))]
        limit = rng.randint(1, 12)
        # What Redis answers: ZRANGE REV (score desc, ties by name desc), then BYSCORE at the edge.
        highest = sorted(pairs, key=lambda p: (p[1], p[0]), reverse=True)[:limit]
        ties = sorted(p for p in pairs if highest and p[1] == highest[-1][1])[:limit]
        assert aggregates.ranked_top(highest, ties, limit) == full_sort(pairs, limit)


def test_latency_buckets_are_bounded() -> None:
    assert aggregates.latency_bucket(12.34) == "12.3"
    assert aggregates.latency_bucket(0) == "0"
    assert aggregates.latency_bucket(1e300) == aggregates.latency_bucket(1e7) == "1e+07"
    assert aggregates.latency_bucket(1e-9) == "0.001"
