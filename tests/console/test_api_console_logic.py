"""Pure parts of the console and the HTTP surface: content negotiation, body checks, the OpenAPI
operation index, overview decoding, burst percentiles, text and integer rules."""

import re
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from tier0_contract import regionpair as rp
from tier0_services.ai.logs import parse
from tier0_services.api import bodyguard
from tier0_services.api.console import overview, traffic
from tier0_services.api.routers.core import wants_html
from tier0_services.api.schemas import INTEGER_ONLY, NOT_BLANK_PATTERN, not_blank
from tier0_testing.api import regionpair_manifest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json, text/html", False),
        ("text/html", True),
    ],
)
def test_only_browsers_are_sent_to_the_console(accept: str | None, html: bool) -> None:
    assert wants_html(accept) is html


def test_content_types() -> None:
    fits = bodyguard.content_type_fits
    assert fits(None, "application/json") and fits("application/json; charset=utf-8", "application/json")
    assert fits("application/merge-patch+json", "application/json")
    assert not fits("text/plain", "application/json") and not fits(None, "text/plain")
    assert fits("text/plain; charset=utf-8", "text/plain") and fits("text/x-log", "text/plain")


def test_body_checks() -> None:
    check = bodyguard.check_body
    assert check(b"", "application/json") is None
    assert check(b'{"q": "\xf0\x9f\x98\x80"}', "application/json") is None
    lone = check(b'{"q": "\\udc00"}', "application/json")
    assert lone is not None and lone.status == 400
    bad = check(b"ok \xff", "text/plain")
    assert bad is not None and bad.status == 400 and "0xff at offset 3" in bad.detail
    assert check(b"\\ud800 in plain text is just text", "text/plain") is None


def test_operation_index_matches_templates() -> None:
    schema: dict[str, Any] = {
        "paths": {
            "/api/diagnostics/documents": {
                "get": {},
                "post": {"requestBody": {"content": {"application/json": {}}}},
            },
            "/api/images/site/{site_id}": {"get": {}},
            "/api/diagnostics/logs/import": {"post": {"requestBody": {"content": {"text/plain": {}}}}},
        }
    }
    index = bodyguard.OperationIndex(schema)
    assert set(index.operations("/api/diagnostics/documents")) == {"GET", "POST"}
    assert index.operations("/api/diagnostics/documents")["POST"].body_media_type == "application/json"
    assert index.operations("/api/images/site/WY-ALPHA")["GET"].template == "/api/images/site/{site_id}"
    assert index.operations("/api/images/site/a/b") == {}
    assert index.operations("/api/diagnostics/logs/import")["POST"].body_media_type == "text/plain"


def test_pair_and_peer_decoding() -> None:
    last = {
        "type": "Failover",
        "from": "region2",
        "to": "region1",
        "outcome": "Succeeded",
        "epoch": 4,
        "startedAt": "2025-01-02T03:04:02Z",
        "completedAt": "2025-01-02T03:04:05Z",
        "durationSeconds": 2.5,
    }
    status = {
        "activeRegion": "region1",
        "phase": "SwitchingOver",
        "epoch": 4,
        "transition": {**last, "type": "Switchover", "from": "region1", "to": "region2", "epoch": 5},
        "regions": [{"name": "region2", "role": "replica", "healthy": True, "lagBytes": 120}],
        "lastTransition": last,
    }
    found = rp.RegionPair.from_object({**regionpair_manifest(active="region2"), "status": status})
    pair = overview.pair_view(found)
    assert (pair.name, pair.active_region, pair.desired_region, pair.phase, pair.in_transition) == (
        "og-field",
        "region1",
        "region2",
        "SwitchingOver",
        True,
    )
    assert pair.last_transition is not None and pair.last_transition.duration_seconds == 2.5
    # No spec.activeRegion: the home region, as the contract's model reads it; no status: no phase.
    manifest = regionpair_manifest()
    del manifest["spec"]["activeRegion"]
    unset = overview.pair_view(rp.RegionPair.from_object(manifest))
    assert (unset.desired_region, unset.phase, unset.epoch, unset.active_region) == ("region1", None, None, None)
    peer = overview.peer_from_pair("region2", overview.pair_regions(found)["region2"], pair, "v2", None)
    assert (peer.source, peer.role, peer.status, peer.lag_bytes, peer.version, peer.healthy) == (
        "regionpair",
        "replica",
        "standby",
        120,
        "v2",
        True,
    )
    unknown = overview.peer_from_pair("region2", None, None, None, "apiserver down")
    assert unknown.source == "unknown" and unknown.error == "apiserver down"
    assert overview.pair_regions(None) == {}


def test_replica_lag_and_telemetry() -> None:
    info = {"role": "master", "master_repl_offset": 1000, "slave0": {"offset": 900}, "slave1": {"offset": 990}}
    assert overview.replica_lag(info) == 100
    assert overview.replica_lag({"master_repl_offset": 5}) is None
    t = overview.telemetry_from({b"stored": b"7", b"invalid": b"1"}, [[b"3", b"1", None], [b"2", b"0", b"1"]], 9)
    assert t.messages_total == 8 and t.devices_by_state == {"OK": 5, "WARN": 1, "ALERT": 1}


def test_percentiles() -> None:
    assert traffic.percentiles([]) == {}
    p = traffic.percentiles([i / 1000 for i in range(1, 101)])
    assert p == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def test_not_blank_agrees_with_strip() -> None:
    pattern = re.compile(NOT_BLANK_PATTERN)
    for text in (" ", "\t\n", "\u3000", "\x1c", "\u00a0\u2028", "\ufeff"):
        assert not pattern.search(text), repr(text)
        assert not text.strip() or text == "\ufeff"
    for text in ("a", "  turbine ", "\u00e9"):
        assert pattern.search(text)

    class M(BaseModel):
        q: Annotated[str, not_blank(10)]

    with pytest.raises(ValidationError):
        M(q="   ")
    assert M(q=" x ").q == " x "


def test_integers_as_json_schema_means_them() -> None:
    class M(BaseModel):
        n: Annotated[int, Field(ge=1, le=10), INTEGER_ONLY] = 1

    assert M(n=3).n == 3 and M.model_validate_json('{"n": 3.0}').n == 3
    for bad in ("true", '"3"', "3.5", "0"):
        with pytest.raises(ValidationError):
            M.model_validate_json('{"n": ' + bad + "}")
    assert M.model_json_schema()["properties"]["n"]["maximum"] == 10


@pytest.mark.parametrize("value", [400.0, "0400", "400 ", True, "4e2", None, [400]])
def test_imported_status_codes_are_exact(value: object) -> None:
    with pytest.raises(parse.LogParseError):
        parse._status(value)


def test_imported_status_codes_that_are_fine() -> None:
    assert parse._status(404) == 404 and parse._status("503") == 503
