"""Build cases.yaml and second_cases.yaml: compute every logs/live expectation from the seeded data,
assign the dev/test split by a fixed rule, and check the hand-written expectations against the corpus.

Nothing numeric about the logs or the fleet is typed in by hand: questions.yaml names an aggregate and
its arguments, this script computes the value from the same data the evaluation loads
(`sample.generate(12_000, seed=7)`, `api.fleet(1000)`, `api.activity_message(42, ...)`) and writes it,
with the answer phrases that a right answer must contain, into cases.yaml.

    PYTHONPATH=/work/main/contract:/work/main/services:/work/main/tests/support python3 compute_expected.py
    (needs pydantic, redis, orjson, kubernetes_asyncio, aiohttp, PyYAML: tier0's services extras,
    because tier0_testing.api imports the ingest store; /work/main/.venv has them once it exists)

Percentiles are NEAREST-RANK: sorted latencies x[1..n], p_q = x[ceil(q/100 * n)] (q=50 is the median
by the same rule). The values under the two usual interpolating definitions are written beside it
(`other_definitions`) because p99 differs between them (see README.md).
"""

import math
import pathlib
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import yaml

from tier0_services.ai.logs import sample
from tier0_testing import api as api_testing

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import checker  # noqa: E402  (the reference checker next to this script)

CORPUS_DIR = pathlib.Path("/work/main/services/tier0_services/ai/samples/corpus")
SECOND_DIR = HERE / "second_corpus"

LOG = sample.generate(12_000, seed=7)
ENTRIES = LOG.entries
FLEET = api_testing.fleet(1000)
USERS = 42
ACTIVITY = orjson.loads(api_testing.activity_message(USERS, 1_717_200_000.0))  # values do not depend on ts

Phrases = list[list[str]]
Result = dict[str, Any]

# --- how numbers, dates and sites may be written in an answer ---------------------------------------


def num_forms(v: int) -> list[str]:
    """12000 -> 12000, 12,000, 12 000 (the checker matches them at number boundaries)."""
    forms = [str(v)]
    if abs(v) >= 1000:
        forms += [f"{v:,}", f"{v:,}".replace(",", " ")]
    return forms


def float_forms(v: float) -> list[str]:
    """31.4797 -> 31.48, 31.5; an integral float 20.0 -> 20, 20.0."""
    if float(v).is_integer():
        return [str(int(v)), f"{v:.1f}"]
    forms = {f"{v:.2f}".rstrip("0").rstrip("."), f"{v:.1f}"}
    return sorted(forms, key=len, reverse=True)


def ms_forms(v: float) -> list[str]:
    """A latency in ms, or the same in seconds with its unit (0.351 s)."""
    seconds = v / 1000.0
    forms = [*float_forms(v), f"{seconds:.3f} s", f"{seconds:g} s", f"{seconds:.3f}s", f"{seconds:g}s"]
    return list(dict.fromkeys(forms))


def pct_forms(fraction: float) -> list[str]:
    """0.135833 -> 13.58, 13.6 (a percentage, % optional) or 0.1358, 0.136 (a fraction)."""
    p = fraction * 100.0
    forms = {f"{p:.2f}", f"{p:.1f}", f"{fraction:.4f}", f"{fraction:.3f}"}
    if round(p, 1).is_integer():  # 0.99% may well be said "1%"
        forms.add(f"{round(p)}%")
    return sorted(forms)


def date_forms(day: str) -> list[str]:
    d = datetime.strptime(day, "%Y-%m-%d")
    n = d.day
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    month, mon = d.strftime("%B"), d.strftime("%b")
    return [
        day,
        f"{month} {n}",
        f"{n} {month}",
        f"{mon} {n}",
        f"{n} {mon}",
        f"{month} {n}{suffix}",
        f"{n}{suffix} {month}",
        f"{n}{suffix} of {month}",
    ]


_STATES = {
    "WY": "Wyoming",
    "TX": "Texas",
    "ND": "North Dakota",
    "OK": "Oklahoma",
    "NM": "New Mexico",
    "CO": "Colorado",
    "LA": "Louisiana",
    "AK": "Alaska",
    "PA": "Pennsylvania",
    "CA": "California",
}


def site_forms(site: str) -> list[str]:
    """WY-ALPHA or its spelled-out name (Wyoming Alpha), as the documents spell sites."""
    state, word = site.split("-", 1)
    return [site, f"{_STATES[state]} {word.title()}"]


ZERO_FORMS = [
    "0",
    "none",
    "no device",
    "no unit",
    "no alert",
    "no machine",
    "no equipment",
    "nothing",
    "not any",
    "zero",
]

# --- logs aggregates ------------------------------------------------------------------------------------

LATENCIES = sorted(e.latency_ms for e in ENTRIES if e.latency_ms is not None)
TOTAL = len(ENTRIES)


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def nearest_rank(q: float) -> float:
    rank = max(1, math.ceil(q / 100.0 * len(LATENCIES)))
    return LATENCIES[rank - 1]


def top(counter: Counter[Any]) -> tuple[Any, int, int]:
    """(key, count, runner-up count), ties broken by key; a tie at the top is refused (no one answer)."""
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    runner = ranked[1][1] if len(ranked) > 1 else 0
    if runner == ranked[0][1]:
        raise ValueError(f"tie at the top: {ranked[:3]}")
    return ranked[0][0], ranked[0][1], runner


def r(value: Any, phrases: Phrases, sensitive: bool, definition: str, **extra: Any) -> Result:
    return {"value": value, "phrases": phrases, "own_traffic_sensitive": sensitive, "definition": definition, **extra}


def status_count(status: int) -> Result:
    v = sum(1 for e in ENTRIES if e.status == status)
    return r(v, [num_forms(v)], False, f"entries with status == {status}")


def status_class_count(klass: int) -> Result:
    v = sum(1 for e in ENTRIES if e.status // 100 == klass)
    return r(v, [num_forms(v)], True, f"entries with {klass}00 <= status <= {klass}99")


def most_common_status() -> Result:
    code, count, runner = top(Counter(e.status for e in ENTRIES))
    return r(code, [[str(code)]], False, "status with the most entries", count=count, runner_up_count=runner)


def most_common_error_status() -> Result:
    code, count, runner = top(Counter(e.status for e in ENTRIES if e.status >= 400))
    return r(code, [[str(code)]], False, "status >= 400 with the most entries", count=count, runner_up_count=runner)


def error_rate() -> Result:
    errors = sum(1 for e in ENTRIES if e.status >= 400)
    v = errors / TOTAL
    return r(
        round(v, 6),
        [pct_forms(v)],
        True,
        "entries with status >= 400 / all entries (4xx and 5xx are errors)",
        numerator=errors,
        denominator=TOTAL,
        percent=round(v * 100, 4),
    )


def server_error_rate() -> Result:
    errors = sum(1 for e in ENTRIES if e.status >= 500)
    v = errors / TOTAL
    return r(
        round(v, 6),
        [pct_forms(v)],
        True,
        "entries with status >= 500 / all entries",
        numerator=errors,
        denominator=TOTAL,
        percent=round(v * 100, 4),
    )


def latency_percentile(q: int) -> Result:
    v = nearest_rank(q)
    inclusive = statistics.quantiles(LATENCIES, n=100, method="inclusive")[q - 1]
    exclusive = statistics.quantiles(LATENCIES, n=100, method="exclusive")[q - 1]
    return r(
        v,
        [ms_forms(v)],
        True,
        f"nearest-rank p{q} of latency_ms: x[ceil({q}/100 * n)] of the sorted values, n={len(LATENCIES)}",
        unit="ms",
        other_definitions={"linear_inclusive": round(inclusive, 3), "linear_exclusive": round(exclusive, 3)},
    )


def latency_mean() -> Result:
    v = sum(LATENCIES) / len(LATENCIES)
    return r(round(v, 4), [[*float_forms(v), f"{round(v)} ms"]], True, "arithmetic mean of latency_ms", unit="ms")


def latency_max() -> Result:
    v = LATENCIES[-1]
    return r(v, [ms_forms(v)], True, "largest latency_ms", unit="ms")


def top_ip_for_status(status: int) -> Result:
    ip, count, runner = top(Counter(e.ip for e in ENTRIES if e.status == status))
    return r(
        ip, [[ip]], False, f"client IP with the most entries of status {status}", count=count, runner_up_count=runner
    )


def top_ip() -> Result:
    ip, count, runner = top(Counter(e.ip for e in ENTRIES))
    return r(ip, [[ip]], False, "client IP with the most entries", count=count, runner_up_count=runner)


def method_count(method: str) -> Result:
    v = sum(1 for e in ENTRIES if e.method == method)
    return r(v, [num_forms(v)], True, f"entries with method {method}")


def most_common_method() -> Result:
    m, count, runner = top(Counter(e.method for e in ENTRIES))
    return r(m, [[m]], False, "method with the most entries", count=count, runner_up_count=runner)


def most_requested_path() -> Result:
    path, count, runner = top(Counter(e.path for e in ENTRIES))
    return r(path, [[path]], False, "path with the most entries", count=count, runner_up_count=runner)


def path_count(path: str) -> Result:
    v = sum(1 for e in ENTRIES if e.path == path)
    return r(v, [num_forms(v)], True, f"entries with path {path}")


def top_error_path() -> Result:
    path, count, runner = top(Counter(e.path for e in ENTRIES if e.status >= 400))
    return r(path, [[path]], False, "path with the most entries of status >= 400", count=count, runner_up_count=runner)


def top_path_for_status(status: int) -> Result:
    path, count, runner = top(Counter(e.path for e in ENTRIES if e.status == status))
    return r(
        path, [[path]], False, f"path with the most entries of status {status}", count=count, runner_up_count=runner
    )


def day_count(day: str) -> Result:
    v = sum(1 for e in ENTRIES if day_of(e.ts) == day)
    return r(v, [num_forms(v)], False, f"entries whose timestamp falls on {day} UTC")


def busiest_day() -> Result:
    day, count, runner = top(Counter(day_of(e.ts) for e in ENTRIES))
    return r(day, [date_forms(day)], False, "UTC day with the most entries", count=count, runner_up_count=runner)


def time_span() -> Result:
    first, last = min(e.ts for e in ENTRIES), max(e.ts for e in ENTRIES)
    iso = {
        "first": datetime.fromtimestamp(first, UTC).isoformat(timespec="seconds"),
        "last": datetime.fromtimestamp(last, UTC).isoformat(timespec="seconds"),
    }
    return r(
        iso,
        [date_forms(day_of(first)), date_forms(day_of(last))],
        True,
        "UTC time of the first and the last entry (a checker compares days)",
    )


def total() -> Result:
    return r(TOTAL, [num_forms(TOTAL)], True, "all entries")


def distinct_ips() -> Result:
    v = len({e.ip for e in ENTRIES})
    return r(v, [num_forms(v)], True, "distinct client IPs")


# --- live aggregates ------------------------------------------------------------------------------------


def _devices(state: str | None = None, site: str | None = None, dtype: str | None = None) -> list[str]:
    return sorted(
        d.device_id
        for d in FLEET
        if state in {None, d.state.value} and site in {None, d.site_id} and dtype in {None, d.device_type.value}
    )


def live(value: Any, phrases: Phrases, definition: str, **extra: Any) -> Result:
    return {"value": value, "phrases": phrases, "definition": definition, **extra}


def active_devices() -> Result:
    v = len(FLEET)
    return live(
        v, [num_forms(v)], "devices whose last message is within the 30 s window (the whole fleet, written just before)"
    )


def state_count(state: str, site: str | None = None) -> Result:
    v = len(_devices(state=state, site=site))
    where = f" at {site}" if site else ""
    return live(v, [num_forms(v)] if v else [ZERO_FORMS], f"devices whose newest state is {state}{where}")


def alert_devices(site: str | None = None, dtype: str | None = None) -> Result:
    ids = _devices(state="ALERT", site=site, dtype=dtype)
    phrases: Phrases = [] if ids else [ZERO_FORMS]
    return live(
        ids,
        phrases,
        f"devices in ALERT (site={site}, type={dtype}); every one must be named, no other",
        count=len(ids),
        devices=ids,
        devices_exact=True,
    )


def sites_most_state(state: str) -> Result:
    counts = Counter(d.site_id for d in FLEET if d.state.value == state)
    best = max(counts.values())
    sites = sorted(s for s, c in counts.items() if c == best)
    return live(
        sites,
        [],
        f"site(s) with the most {state} devices (ties: every tied site must be named)",
        count=best,
        items=[site_forms(s) for s in sites],
    )


def all_ok_sites() -> Result:
    bad = {d.site_id for d in FLEET if d.state.value != "OK"}
    sites = sorted({d.site_id for d in FLEET} - bad)
    return live(sites, [], "sites whose devices are all OK", items=[site_forms(s) for s in sites])


def site_devices(site: str) -> Result:
    v = len(_devices(site=site))
    return live(v, [num_forms(v)], f"devices at {site}")


def site_count() -> Result:
    v = len({d.site_id for d in FLEET})
    return live(v, [num_forms(v)], "sites that have sent telemetry")


def site_list() -> Result:
    sites = sorted({d.site_id for d in FLEET})
    return live(sites, [], "every site that has sent telemetry", items=[site_forms(s) for s in sites])


def type_count(dtype: str, site: str | None = None) -> Result:
    v = len(_devices(dtype=dtype, site=site))
    return live(v, [num_forms(v)], f"devices of type {dtype}" + (f" at {site}" if site else ""))


def active_users() -> Result:
    v = ACTIVITY["metrics"]["active_users"]
    return live(v, [num_forms(v)], "metrics.active_users of the newest activity message")


def active_connections() -> Result:
    v = ACTIVITY["metrics"]["active_connections"]
    return live(v, [num_forms(v)], "metrics.active_connections of the newest activity message")


def users_with_connections() -> Result:
    v = sum(1 for u in ACTIVITY["active_users_list"] if u["connections"] > 0)
    return live(v, [num_forms(v)], "users of the newest activity message with connections > 0")


def idle_users() -> Result:
    v = sum(1 for u in ACTIVITY["active_users_list"] if u["connections"] == 0)
    return live(v, [num_forms(v)], "users of the newest activity message with connections == 0")


def activity_metric(metric: str) -> Result:
    v = ACTIVITY["metrics"][metric]
    return live(v, [float_forms(v)], f"metrics.{metric} of the newest activity message")


AGGREGATES: dict[str, Callable[..., Result]] = {
    f.__name__: f
    for f in (
        status_count,
        status_class_count,
        most_common_status,
        most_common_error_status,
        error_rate,
        server_error_rate,
        latency_percentile,
        latency_mean,
        latency_max,
        top_ip_for_status,
        top_ip,
        method_count,
        most_common_method,
        most_requested_path,
        path_count,
        top_error_path,
        top_path_for_status,
        day_count,
        busiest_day,
        time_span,
        total,
        distinct_ips,
        active_devices,
        state_count,
        alert_devices,
        sites_most_state,
        all_ok_sites,
        site_devices,
        site_count,
        site_list,
        type_count,
        active_users,
        active_connections,
        users_with_connections,
        idle_users,
        activity_metric,
    )
}

# --- cases ------------------------------------------------------------------------------------------

TRAP_WORDS = ("site", "sites", "device", "devices", "telemetry", "log", "logs", "logged", "alert", "sensor", "sensors")
LIVE_KEYWORDS = ("device", "devices", "telemetry", "alert", "warn", "site", "sites", "sensor", "sensors")


def words(question: str) -> set[str]:
    return set(
        checker.normalize(question).replace("/", " ").replace("-", " ").replace("?", " ").replace(",", " ").split()
    )


def as_groups(value: Any) -> Phrases:
    return [[g] if isinstance(g, str) else list(g) for g in value or []]


def assign_splits(cases: list[dict[str, Any]]) -> None:
    """The split rule (README.md), in file order: the issue's own sentences are dev; other reproductions
    of the issue are test; every other case follows its group (paraphrases of one fact never straddle
    the halves), and a new group goes to the half that so far holds fewer cases of its (category, kind),
    dev on a tie."""
    group_split: dict[str, str] = {}
    held: Counter[tuple[str, str, str]] = Counter()
    for case in cases:
        category, kind = case["category"], case["kind"]
        if case.get("verbatim"):
            case["split"] = "dev"
        elif case.get("repro"):
            case["split"] = "test"
        else:
            group = case["group"]
            if group not in group_split:
                dev, test = held[(category, kind, "dev")], held[(category, kind, "test")]
                group_split[group] = "dev" if dev <= test else "test"
            case["split"] = group_split[group]
        held[(category, kind, case["split"])] += 1


def build(source: dict[str, list[dict[str, Any]]], doc_dir: pathlib.Path) -> list[dict[str, Any]]:
    doc_text = {p.stem: p.read_text(encoding="utf-8") for p in sorted(doc_dir.glob("*.md"))}
    out: list[dict[str, Any]] = []
    for category, rows in source.items():
        for row in rows:
            case: dict[str, Any] = {
                "id": row["id"],
                "split": None,
                "category": category,
                "kind": row["kind"],
                "group": row.get("group") or row["id"],
                "question": row["question"],
            }
            for key in ("repro", "verbatim"):
                if key in row:
                    case[key] = row[key]
            if "theme" in row:
                case["theme"] = row["theme"]
            w = words(row["question"])
            if category == "documents":
                traps = [t for t in TRAP_WORDS if t in w]
                if traps:
                    case["traps"] = traps
                e = row["expect"]
                docs = [e["doc"]] if isinstance(e["doc"], str) else list(e["doc"])
                expect: dict[str, Any] = {"mode": "retrieval", "doc": docs}
                for key in ("phrases", "items", "forbid"):
                    if key in e:
                        expect[key] = as_groups(e[key])
                for d in docs:
                    assert d in doc_text, f"{row['id']}: unknown doc {d}"
                # Every group must be findable in a cited document (catches typos in expectations).
                for key in ("phrases", "items", "forbid"):
                    for group in expect.get(key, []):
                        assert any(checker.group_matches(group, [doc_text[d]]) for d in docs), (
                            f"{row['id']}: {group} not in {docs}"
                        )
            elif category in {"logs", "live"}:
                args = row.get("args") or {}
                result = AGGREGATES[row["aggregate"]](**args)
                expect = {"mode": "aggregation", "aggregate": row["aggregate"], "args": args, **result}
                if category == "live":
                    case["keywordless"] = not any(k in w for k in LIVE_KEYWORDS)
            else:
                e = row["expect"]
                assert e["why"] in {"near-miss", "out-of-scope", "future"}, row["id"]
                near = e.get("near")
                assert near in {None, "logs", "live"} or near in doc_text, f"{row['id']}: unknown near {near}"
                expect = {"mode": "abstain", "abstain": True, "why": e["why"], "near": near, "detail": e["detail"]}
            case["expect"] = expect
            out.append(case)
    ids = [c["id"] for c in out]
    assert len(ids) == len(set(ids)), "duplicate ids"
    assign_splits(out)
    for category, kind in {(c["category"], c["kind"]) for c in out}:
        splits = {c["split"] for c in out if c["category"] == category and c["kind"] == kind}
        assert splits == {"dev", "test"}, f"{category}/{kind} only in {splits}"
    self_test(out)
    return out


def self_test(cases: list[dict[str, Any]]) -> None:
    """The reference checker accepts an answer made of the expectation and refuses a wrong mode."""
    for c in cases:
        e = c["expect"]
        text = " ; ".join(
            [g[0] for g in e.get("phrases", [])] + [g[0] for g in e.get("items", [])] + list(e.get("devices", []))
        )
        body = {
            "mode": e["mode"],
            "answer": text,
            "citations": [{"doc_id": d} for d in e.get("doc", [])],
            "data": {"value": e.get("value")},
        }
        ok, why = checker.check(c, body, strict=c["category"] in {"logs", "live"})
        assert ok, (c["id"], why)
        wrong = {**body, "mode": "abstain" if e["mode"] != "abstain" else "retrieval"}
        assert not checker.check(c, wrong)[0], c["id"]


def summary() -> dict[str, Any]:
    """The seeded data at a glance (README.md quotes it)."""
    return {
        "logs": {
            "generator": "tier0_services.ai.logs.sample.generate(12_000, seed=7)",
            "entries": TOTAL,
            "by_status": dict(sorted(Counter(e.status for e in ENTRIES).items())),
            "by_method": dict(sorted(Counter(e.method for e in ENTRIES).items())),
            "by_day_utc": dict(sorted(Counter(day_of(e.ts) for e in ENTRIES).items())),
            "by_path": dict(Counter(e.path for e in ENTRIES).most_common()),
            "top_ips": dict(Counter(e.ip for e in ENTRIES).most_common(5)),
            "top_ips_400": dict(Counter(e.ip for e in ENTRIES if e.status == 400).most_common(5)),
            "noisy_ips_by_construction": LOG.noisy_ips,
            "latency_ms": {f"p{q}": nearest_rank(q) for q in (50, 90, 95, 99)}
            | {"mean": round(sum(LATENCIES) / len(LATENCIES), 4), "min": LATENCIES[0], "max": LATENCIES[-1]},
        },
        "live": {
            "fleet": "tier0_testing.api.fleet(1000)",
            "by_state": dict(sorted(Counter(d.state.value for d in FLEET).items())),
            "by_site": dict(sorted(Counter(d.site_id for d in FLEET).items())),
            "by_type": dict(sorted(Counter(d.device_type.value for d in FLEET).items())),
            "alert_by_site": dict(sorted(Counter(d.site_id for d in FLEET if d.state.value == "ALERT").items())),
            "warn_by_site": dict(sorted(Counter(d.site_id for d in FLEET if d.state.value == "WARN").items())),
            "alert_by_type": dict(
                sorted(Counter(d.device_type.value for d in FLEET if d.state.value == "ALERT").items())
            ),
            "activity": "tier0_testing.api.activity_message(42, ts)",
            "activity_metrics": ACTIVITY["metrics"],
        },
    }


def write(path: pathlib.Path, header: str, meta: dict[str, Any], cases: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump(
        {**meta, "cases": cases}, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None
    )
    path.write_text(header + text, encoding="utf-8")


def main() -> int:
    # Sanity of the definitions the checks rely on: whole-millisecond latencies under 1 s (so the
    # region API's 3-significant-digit latency histogram is exact), and a combined-format round trip
    # that keeps every latency and second.
    assert all(float(x).is_integer() and x < 1000 for x in LATENCIES), "latency histogram would round"
    from tier0_services.ai.logs import parse

    back = [parse.parse_line(line) for line in LOG.combined_lines()]
    assert all(
        b is not None and b.latency_ms == e.latency_ms and int(b.ts) == int(e.ts) and day_of(b.ts) == day_of(e.ts)
        for b, e in zip(back, ENTRIES, strict=True)
    ), "combined-format round trip changes the data"

    first = yaml.safe_load((HERE / "questions.yaml").read_text(encoding="utf-8"))
    cases = build(first, CORPUS_DIR)
    header = "# GENERATED by compute_expected.py from questions.yaml and the seeded data; do not edit by hand.\n"
    write(
        HERE / "cases.yaml",
        header,
        {
            "corpus": "services/tier0_services/ai/samples/corpus (doc_id = file name without .md)",
            "data": summary(),
            "percentile_definition": "nearest-rank: x[ceil(q/100 * n)] of the ascending latencies (1-based)",
        },
        cases,
    )
    second = yaml.safe_load((HERE / "second_questions.yaml").read_text(encoding="utf-8"))
    second_cases = build(second, SECOND_DIR)
    write(
        HERE / "second_cases.yaml",
        header,
        {
            "corpus": "second_corpus/ (frozen copies of operator/README.md and operator/RUNBOOK.md; "
            "doc_id = file name without .md)",
        },
        second_cases,
    )
    for name, cs in (("cases.yaml", cases), ("second_cases.yaml", second_cases)):
        by = Counter((c["category"], c["split"]) for c in cs)
        print(name, len(cs), dict(sorted(by.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
