"""Reference checker for cases.yaml / second_cases.yaml: is one `/api/diagnostics/query` answer right?

README.md states the rules in words; this is the same rules in code, so that a checker written from the
README can be compared with it. Pure functions over the case (a dict loaded from the YAML) and the
answer body (the JSON of a `DiagnosticsAnswer`: `mode`, `answer`, `citations[].doc_id`, `data`).

    ok, reason = checker.check(case, body)
"""

import math
import re
from collections.abc import Iterable
from typing import Any

_DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-"})
_SPACES = re.compile(r"[\u00a0\u202f\u2009\u2007]")
DEVICE_ID = re.compile(r"\b(?:TURB|THEN|EROT|OGS)-\d{6}\b")


def normalize(text: str) -> str:
    """Case-folded, typographic dashes as '-', no-break and thin spaces as ' '."""
    return _SPACES.sub(" ", text.translate(_DASHES)).casefold()


def _pattern(alternative: str) -> re.Pattern[str]:
    """An alternative as a regex: case-folded literal; an end that is a digit must sit at a number
    boundary (`9` does not match in `19`, `9.5` or `2,900`; `20` does not match `20.5`)."""
    alt = normalize(alternative)
    body = re.escape(alt)
    if alt[:1].isdigit():
        body = r"(?<!\d)(?<!\d[.,])" + body
    if alt[-1:].isdigit():
        body = body + r"(?!\d)(?![.,]\d)"
    return re.compile(body)


def matches(alternative: str, text: str) -> bool:
    return _pattern(alternative).search(normalize(text)) is not None


def group_matches(group: Iterable[str], texts: Iterable[str]) -> bool:
    """True when any alternative of the group is found in any of the texts."""
    texts = list(texts)
    return any(matches(alt, t) for alt in group for t in texts)


def _strings(data: Any) -> list[str]:
    """Every string leaf of `data` (nested dicts and lists)."""
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list | tuple):
        return [s for v in data for s in _strings(v)]
    return []


def _leaves(data: Any) -> list[Any]:
    if isinstance(data, dict):
        return [x for v in data.values() for x in _leaves(v)]
    if isinstance(data, list | tuple):
        return [x for v in data for x in _leaves(v)]
    return [data]


def value_in_data(value: Any, data: Any) -> bool:
    """Strict mode: the expected value is a leaf of `data` (numbers within 0.05 absolute or 0.1%
    relative; strings case-folded; a dict value: each of its leaves; a list: each element)."""
    if isinstance(value, dict):
        return all(value_in_data(v, data) for v in value.values())
    if isinstance(value, list):
        return all(value_in_data(v, data) for v in value)
    for leaf in _leaves(data):
        if isinstance(value, bool) or isinstance(leaf, bool):
            continue
        if isinstance(value, int | float) and isinstance(leaf, int | float):
            if math.isclose(float(leaf), float(value), rel_tol=1e-3, abs_tol=0.05):
                return True
        elif isinstance(value, str) and isinstance(leaf, str) and normalize(leaf) == normalize(value):
            return True
    return False


def check(case: dict[str, Any], body: dict[str, Any], strict: bool = False) -> tuple[bool, str]:
    """(passed, reason). `strict` additionally requires a logs/live `value` to be a leaf of `data`."""
    expect = case["expect"]
    mode = body.get("mode")
    if mode != expect["mode"]:
        return False, f"mode {mode!r}, expected {expect['mode']!r}"
    if expect["mode"] == "abstain":
        return True, "abstained"
    answer = body.get("answer") or ""
    data = body.get("data") or {}
    if "doc" in expect:
        cited = {c.get("doc_id") for c in body.get("citations") or []}
        if not cited & set(expect["doc"]):
            return False, f"cited {sorted(x for x in cited if x)}, expected one of {expect['doc']}"
    for group in expect.get("phrases", []):
        if not group_matches(group, [answer]):
            return False, f"answer lacks any of {group}"
    # Documents: an enumeration may come as `data.items`; logs/live: any string of `data` counts.
    if case["category"] == "documents":
        listed = _strings(data.get("items")) if isinstance(data, dict) else []
    else:
        listed = _strings(data)
    for group in expect.get("items", []):
        if not group_matches(group, [answer, *listed]):
            return False, f"item missing: {group}"
    for group in expect.get("forbid", []):
        if group_matches(group, [answer, *listed]):
            return False, f"forbidden item present: {group}"
    if "devices" in expect:
        everything = " ".join([answer, *_strings(data)])
        seen = set(DEVICE_ID.findall(everything))
        missing = [d for d in expect["devices"] if d not in seen]
        if missing:
            return False, f"{len(missing)} expected devices missing, e.g. {missing[:3]}"
        if expect.get("devices_exact"):
            extra = sorted(seen - set(expect["devices"]))
            if extra:
                return False, f"unexpected devices {extra[:3]}"
    if strict and "value" in expect and not value_in_data(expect["value"], data):
        return False, f"value {expect['value']!r} not in data"
    return True, "ok"
