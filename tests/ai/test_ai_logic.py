"""Pure logic of the diagnostics: log parsing, batch folding, question routing, which answer is
grounded and which is kept, chunking, BM25 and RRF, the extractive answerer (with the test-only
hashing embedder), the sample pictures' PNGs."""

import json
import struct
import zlib

import pytest

from tier0_services.ai import answers, diagnostics, sample_images
from tier0_services.ai.logs import aggregates, sample
from tier0_services.ai.logs.parse import LogEntry, LogParseError, format_combined, parse_line
from tier0_services.ai.providers import Passage
from tier0_services.ai.rag import router, text
from tier0_services.ai.rag.bm25 import BM25, rrf
from tier0_services.ai.rag.corpus import parse_note, sample_documents
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_testing.ai import HashingEmbedder

pytestmark = pytest.mark.unit


def test_combined_log_format() -> None:
    line = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.0" 200 2326'
    assert parse_line(line) == LogEntry("127.0.0.1", 971211336.0, "GET", "/apache_pb.gif", 200, None, 2326)
    nginx = '10.0.0.2 - - [01/Jun/2024:00:00:01 +0000] "POST /api/x HTTP/1.1" 400 - "-" "curl/8" 0.012'
    entry = parse_line(nginx)
    assert entry is not None and entry.status == 400 and entry.latency_ms == pytest.approx(12.0)
    apache_us = '10.0.0.2 - - [01/Jun/2024:00:00:01 +0000] "GET / HTTP/1.1" 204 0 "-" "ua" 2500'
    assert parse_line(apache_us) == LogEntry("10.0.0.2", 1717200001.0, "GET", "/", 204, 2.5, 0)
    assert parse_line("   ") is None
    for bad in [
        "garbage",
        '1.2.3.4 - - [bad time] "GET / HTTP/1.1" 200 1',
        '1.2.3.4 - - [01/Jun/2024:00:00:01 +0000] "GET /" 999 1',
    ]:
        with pytest.raises(LogParseError):
            parse_line(bad)


def test_json_lines() -> None:
    entry = parse_line(
        json.dumps(
            {
                "remote_addr": "1.1.1.1",
                "status_code": "503",
                "time": "2024-06-01T00:00:00Z",
                "url": "/a?b",
                "duration_ms": 4.5,
                "method": "get",
            }
        )
    )
    assert entry == LogEntry("1.1.1.1", 1717200000.0, "GET", "/a", 503, 4.5, 0)
    for bad in ["{", "[1]", json.dumps({"ip": "1.1.1.1"}), json.dumps({"ip": "x", "status": 200, "ts": "yesterday"})]:
        with pytest.raises(LogParseError):
            parse_line(bad)


def test_generated_log_round_trips_through_the_combined_format() -> None:
    log = sample.generate(2_000, seed=5)
    again = sample.generate(2_000, seed=5)
    assert log.entries == again.entries
    for entry, line in zip(log.entries[:200], log.combined_lines()[:200], strict=True):
        back = parse_line(line)
        assert back is not None
        assert (back.ip, back.method, back.path, back.status, back.latency_ms) == (
            entry.ip,
            entry.method,
            entry.path,
            entry.status,
            entry.latency_ms,
        )
        assert int(back.ts) == int(entry.ts)
    assert log.expected_top_ip(400) == log.noisy_ips[0]
    latency = log.entries[0].latency_ms
    assert latency is not None
    assert format_combined(log.entries[0]).endswith(f'"tier0-sample/1.0" {latency / 1000:.3f}')


def test_fold_counts() -> None:
    entries = [
        LogEntry("a", 100.0, "GET", "/x", 200, 10.0),
        LogEntry("a", 50.0, "GET", "/x", 400, 30.0),
        LogEntry("b", 86400.0 + 5, "POST", "/y", 400, None),
    ]
    f = aggregates.fold(entries)
    assert f.total == 3 and f.by_status == {200: 1, 400: 2} and f.by_method == {"GET": 2, "POST": 1}
    assert f.ips_by_status[400] == {"a": 1, "b": 1} and f.error_paths == {"/x": 1, "/y": 1}
    assert f.by_day == {"1970-01-01": 2, "1970-01-02": 1}
    assert (f.latency_sum, f.latency_count, f.latency_max) == (40.0, 2, 30.0)
    assert (f.first_ts, f.last_ts) == (50.0, 86405.0)
    assert [e.ts for e in f.recent_errors] == [50.0, 86405.0]


def test_chunking_keeps_headings_and_drops_the_sample_label() -> None:
    doc = parse_note("n", "# Title\ntags: a, b\n\nSAMPLE DATA: x.\n\n## Part\nOne. Two.\n\nThree.", "test")
    assert (doc.title, doc.tags) == ("Title", ("a", "b"))
    assert text.chunk(doc.body) == ["Part: One. Two.", "Part: Three."]
    long = " ".join(f"Sentence number {i} is here." for i in range(100))
    parts = text.chunk(long, max_chars=200)
    assert all(len(p) <= 200 for p in parts) and " ".join(parts) == long
    assert all(d.source.startswith("sample:") for d in sample_documents())


def test_bm25_and_rrf() -> None:
    docs = ["hard hats are mandatory on drill pads", "turbine vibration limits", "hard hat policy for visitors"]
    bm25 = BM25(docs)
    top = bm25.top("hard hats", 5)
    assert {i for i, _ in top} == {0, 2} and bm25.top("sourdough", 5) == []
    assert [i for i, _ in bm25.top("mandatory hard hats", 5)] == [0, 2]
    fused = rrf([[0, 1, 2], [2, 0]], k=60)
    assert [i for i, _ in fused] == [0, 2, 1]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_local_answer_copies_the_answering_sentence_only() -> None:
    reader = SentenceReader(HashingEmbedder(256))
    passages = [
        Passage(1, "a#0", "a", "Incidents", "Counts: In 2024 there were 9 safety incidents. Rain fell.", 0.9),
        Passage(2, "b#0", "b", "Other", "Turbines spin quickly.", 0.4),
    ]
    answer = reader.answer("How many safety incidents were there in 2024?", passages)
    assert answer.cited == [1] and not answer.abstained
    assert answer.text == "According to the documents: In 2024 there were 9 safety incidents. [1]"
    assert reader.answer("zzz qqq", passages).abstained
    assert reader.answer("How many safety incidents were there in 2019?", passages).abstained
    assert reader.answer("anything", []).abstained


def test_sample_pictures_are_valid_labelled_pngs() -> None:
    catalog = sample_images.load_catalog()
    assert len(catalog) == 16
    assert {s.device_type for s in catalog} == {"turbine", "thermal_engine", "electrical_rotor", "og_sensor"}
    png = sample_images.render(catalog[0])
    assert png == sample_images.render(catalog[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (sample_images.WIDTH, sample_images.HEIGHT)
    idat_len = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert len(raw) == height * (1 + 3 * width)
    caption = sample_images.caption(catalog[0])
    assert "workers without hard hats" in caption and "WY-ALPHA" in caption


def _aggregate(mode: answers.Mode = "aggregation") -> answers.QueryResult:
    return answers.QueryResult("q", "42", mode, evidence=answers.Evidence("logs", "HGET x", {"days": 3}))


def _decision(order: list[str]) -> router.Decision:
    best = {"docs": "docs.fact", "logs": "logs.count", "live": "live.state"}
    return router.Decision({best[f]: 0.5 for f in order}, {f: best[f] for f in order}, order, order)


def test_an_aggregate_is_grounded_only_when_its_route_fits_and_it_names_nothing_strange() -> None:
    rules = diagnostics.Routing()
    fits = diagnostics.graded("logs", "q", _aggregate(), [], rules.min_aggregate, rules)
    assert fits.grounded and not fits.strong_abstention and fits.result.answer == "42"
    assert not diagnostics.graded("logs", "q", _aggregate(), [], rules.min_aggregate - 0.01, rules).grounded
    strange = diagnostics.graded("live", "q", _aggregate(), ["BP"], 0.9, rules)
    assert not strange.grounded and strange.result.mode == "abstain"
    assert (
        strange.result.answer == "The live telemetry cannot answer this: the question names what they do not hold (BP)."
    )
    assert strange.result.evidence == answers.Evidence("none", None, {"days": 3})  # what the data holds, kept
    said_no = diagnostics.graded("logs", "q", _aggregate("abstain"), [], rules.confident, rules)
    assert said_no.strong_abstention and not said_no.grounded
    assert not diagnostics.graded(
        "logs", "q", _aggregate("abstain"), [], rules.confident - 0.01, rules
    ).strong_abstention


def test_the_kept_answer_documents_against_aggregates() -> None:
    rules = diagnostics.Routing()
    result = _aggregate()

    def attempt(family: str, grounded: bool, confidence: float, strong: bool = False) -> diagnostics.Attempt:
        return diagnostics.Attempt(family, result, grounded, confidence, strong)

    sure_docs = attempt("docs", True, rules.docs_close)
    meant = attempt("logs", True, rules.confident)
    unsure = attempt("logs", True, rules.confident - 0.01)
    # The documents are the closest family: they win.
    assert diagnostics.choose([meant, sure_docs], _decision(["docs", "logs"]), rules) is sure_docs
    # A clearly meant aggregate is kept over a sure reader; one not clearly meant is not.
    assert diagnostics.choose([meant, sure_docs], _decision(["logs", "docs"]), rules) is meant
    assert diagnostics.choose([unsure, sure_docs], _decision(["logs", "docs"]), rules) is sure_docs
    unsure_docs = attempt("docs", True, rules.docs_close - 0.01)
    assert diagnostics.choose([unsure, unsure_docs], _decision(["logs", "docs"]), rules) is unsure
    # Nothing grounded: the family whose data says no, else the documents' abstention.
    no_docs = attempt("docs", False, 0.1)
    said_no = attempt("live", False, 0.7, strong=True)
    assert (
        diagnostics.choose([attempt("logs", False, 0.5), said_no, no_docs], _decision(["logs", "live", "docs"]), rules)
        is said_no
    )
    assert diagnostics.choose([attempt("logs", False, 0.5), no_docs], _decision(["logs", "docs"]), rules) is no_docs
