"""Is one `/api/diagnostics/query` answer right for one blind case? The rules of
tests/ai/cases/README.md ("How to check one answer"), written from the README; a unit test holds it
equal to the case author's reference checker (tests/ai/cases/checker.py) on the same answers.

Pure: a case (a dict of cases.yaml / second_cases.yaml) and a response body in, a verdict out.
"""

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2212"), "-")
_SPACES = re.compile("[\u00a0\u2007\u2009\u202f]")
_DEVICE = re.compile(r"\b(?:TURB|THEN|EROT|OGS)-\d{6}\b")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def fold(text: str) -> str:
    """Case-insensitive, typographic dashes read as '-', no-break and thin spaces as ' '."""
    return _SPACES.sub(" ", text.translate(_DASHES)).casefold()


def found(alternative: str, text: str) -> bool:
    """A literal substring, except that a number at either end of the alternative must sit at a
    number boundary: `9` is in "(9)" but not in "19", "9.5" or "2,900"."""
    alt = fold(alternative)
    pattern = re.escape(alt)
    if alt[:1].isdigit():
        pattern = r"(?<!\d)(?<!\d[.,])" + pattern
    if alt[-1:].isdigit():
        pattern += r"(?!\d)(?![.,]\d)"
    return re.search(pattern, fold(text)) is not None


def group_found(group: Iterable[str], texts: list[str]) -> bool:
    return any(found(alt, t) for alt in group for t in texts)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in leaves(v)]
    return [value]


def value_held(value: Any, data: Any) -> bool:
    """Strict mode: the expected value is a leaf of `data`."""
    if isinstance(value, dict):
        return all(value_held(v, data) for v in value.values())
    if isinstance(value, list):
        return all(value_held(v, data) for v in value)
    for leaf in leaves(data):
        if isinstance(leaf, bool) or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and isinstance(leaf, int | float):
            if math.isclose(float(leaf), float(value), rel_tol=1e-3, abs_tol=0.05):
                return True
        elif isinstance(value, str) and isinstance(leaf, str) and fold(leaf) == fold(value):
            return True
    return False


def check(case: dict[str, Any], body: dict[str, Any], strict: bool = False) -> Verdict:
    expect = case["expect"]
    if body.get("mode") != expect["mode"]:
        return Verdict(False, f"mode {body.get('mode')!r}, expected {expect['mode']!r}")
    if expect["mode"] == "abstain":
        return Verdict(True, "abstained")
    answer = str(body.get("answer") or "")
    data = body.get("data") or {}
    if "doc" in expect:
        cited = {c.get("doc_id") for c in body.get("citations") or []}
        if not cited & set(expect["doc"]):
            return Verdict(False, f"cites {sorted(str(c) for c in cited)}, not one of {expect['doc']}")
    for group in expect.get("phrases", []):
        if not group_found(group, [answer]):
            return Verdict(False, f"answer has none of {group}")
    elsewhere = strings(data.get("items")) if case["category"] == "documents" else strings(data)
    for group in expect.get("items", []):
        if not group_found(group, [answer, *elsewhere]):
            return Verdict(False, f"missing item {group}")
    for group in expect.get("forbid", []):
        if group_found(group, [answer, *elsewhere]):
            return Verdict(False, f"forbidden item {group}")
    if "devices" in expect:
        named = set(_DEVICE.findall(" ".join([answer, *strings(data)])))
        missing = [d for d in expect["devices"] if d not in named]
        if missing:
            return Verdict(False, f"{len(missing)} devices missing, e.g. {missing[:3]}")
        if expect.get("devices_exact") and named - set(expect["devices"]):
            return Verdict(False, f"other devices named: {sorted(named - set(expect['devices']))[:3]}")
    if strict and "value" in expect and not value_held(expect["value"], data):
        return Verdict(False, f"value {expect['value']!r} not in data")
    return Verdict(True, "ok")
