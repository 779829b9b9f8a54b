"""The question set that grades `/api/diagnostics/query`: 52 cases over four categories, each with
its expected answer (computed from the data the evaluation loads, never typed in by hand where a
computation can give it) or an expected abstention.

Data: the labelled sample corpus, the seeded 12,000-line sample log (`logs.sample.generate(12_000,
seed=7)`), a 1,000-device fleet written through the ingest worker's store (`api.testing`) and one
user-activity message of 42 users. `make bench BENCH=ai` prints the table; an integration test runs
the set once and holds the targets (>= 95% answerable right, every out-of-scope question abstained).
"""

import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson
from redis.asyncio import Redis

from tier0_services.ai.logs import sample
from tier0_testing import api as api_testing

Category = Literal["documents", "logs", "live", "abstain"]
CATEGORIES: tuple[Category, ...] = ("documents", "logs", "live", "abstain")
LOG = sample.generate(12_000, seed=7)
FLEET = api_testing.fleet(1000)
USERS = 42
ACTIVITY = api_testing.activity_message(USERS, time.time())
Check = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Case:
    category: Category
    question: str
    check: Check
    """True when the answer is right (unused for `abstain`: the mode decides)."""
    expected: str


def says(*phrases: str, doc: str | None = None) -> Check:
    def check(body: dict[str, Any]) -> bool:
        cited = {c["doc_id"] for c in body["citations"]}
        return (
            body["mode"] == "retrieval" and all(p in body["answer"] for p in phrases) and (doc is None or doc in cited)
        )

    return check


def data(**expected: Any) -> Check:
    def check(body: dict[str, Any]) -> bool:
        got = body.get("data") or {}
        return body["mode"] == "aggregation" and all(got.get(k) == v for k, v in expected.items())

    return check


def _top(counter: Counter[str], n: int, name: str) -> list[dict[str, Any]]:
    return [{name: k, "count": v} for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _nearest_rank(q: float) -> float:
    ordered = sorted(e.latency_ms for e in LOG.entries if e.latency_ms is not None)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def _status(*codes: int) -> int:
    return sum(1 for e in LOG.entries if e.status in codes)


def _alerts(site: str | None = None, dtype: str | None = None) -> list[str]:
    return sorted(
        d.device_id
        for d in FLEET
        if d.state.value == "ALERT" and site in {None, d.site_id} and dtype in {None, d.device_type.value}
    )


def _listed(count: int, prefix: str) -> Check:
    def check(body: dict[str, Any]) -> bool:
        items = (body.get("data") or {}).get("items") or []
        return body["mode"] == "retrieval" and len(items) == count and all(i.startswith(prefix) for i in items)

    return check


def _devices(expected: list[str]) -> Check:
    def check(body: dict[str, Any]) -> bool:
        return body["mode"] == "aggregation" and sorted((body.get("data") or {}).get("devices") or []) == expected

    return check


NOISY = LOG.noisy_ips[0]
ERRORS = sum(1 for e in LOG.entries if e.status >= 400)
SITE_COUNTS = Counter(d.site_id for d in FLEET)
CONNECTIONS = orjson.loads(ACTIVITY)["metrics"]["active_connections"]

CASES: list[Case] = [
    # --- answerable from the documents (sample corpus) ---------------------------------------
    Case(
        "documents",
        "How many safety incidents occurred in BP operations in 2024?",
        says("9 safety incidents", doc="hse-incidents-2024"),
        "9 (hse-incidents-2024)",
    ),
    Case("documents", "How many incidents did Wyoming Alpha report in 2024?", says("Wyoming Alpha reported 4"), "4"),
    Case(
        "documents",
        "What caused most of the 2024 safety incidents?",
        says("missing personal protective equipment"),
        "missing PPE",
    ),
    Case("documents", "What does HTTP 503 mean?", says("dependency such as Redis"), "a dependency is down"),
    Case("documents", "What does HTTP 429 mean?", says("rate limit"), "rate limit"),
    Case("documents", "When must hard hats be replaced?", says("five years"), "after five years or an impact"),
    Case("documents", "What vibration level raises an ALERT on a turbine?", says("11 mm/s"), "11 mm/s"),
    Case(
        "documents",
        "How often is the borescope inspection of the hot section done?",
        says("8,000 fired hours"),
        "every 8,000 fired hours",
    ),
    Case("documents", "When are the turbine air intake filters changed?", says("10 mbar"), "above 10 mbar or 6 months"),
    Case(
        "documents",
        "What does the operator do in a planned switchover?",
        says("promotes", doc="region-failover-runbook"),
        "pause, catch up, promote, flip",
    ),
    Case("documents", "How many shifts do oil drill operations run?", says("two twelve-hour shifts"), "two 12 h"),
    Case("documents", "Where is hearing protection required?", says("10 metres"), "within 10 m of a turbine"),
    Case(
        "documents",
        "What should clients do when they get HTTP 503 during a failover?",
        says("retry with backoff"),
        "retry with backoff",
    ),
    Case("documents", "List economic and social sustainability statements", _listed(5, ""), "all 5 statements"),
    Case("documents", "List the social sustainability statements", _listed(3, "Social"), "the 3 social ones"),
    # --- answerable from the access logs (exact aggregates) ------------------------------------
    Case(
        "logs",
        "Give me the most frequent IP devices generating error 400",
        lambda b: data()(b) and b["data"]["top_ips"][0]["ip"] == LOG.expected_top_ip(400),
        LOG.expected_top_ip(400),
    ),
    Case("logs", "How many requests got a 404?", data(count=_status(404)), str(_status(404))),
    Case(
        "logs",
        "Which paths return 404 most often?",
        data(top_paths=_top(Counter(e.path for e in LOG.entries if e.status == 404), 5, "path")),
        "404 paths",
    ),
    Case(
        "logs",
        "What is the error rate?",
        data(error_rate_pct=round(100 * ERRORS / len(LOG.entries), 2)),
        f"{100 * ERRORS / len(LOG.entries):.2f}%",
    ),
    Case("logs", "p99 latency?", data(percentiles_ms={"p99": _nearest_rank(99)}), f"{_nearest_rank(99):g} ms"),
    Case(
        "logs",
        "What is the median latency?",
        data(percentiles_ms={"p50": _nearest_rank(50)}),
        f"{_nearest_rank(50):g} ms",
    ),
    Case(
        "logs",
        "What are the p50, p95 and p99 latencies?",
        data(percentiles_ms={f"p{q}": _nearest_rank(q) for q in (50, 95, 99)}),
        "three percentiles",
    ),
    Case(
        "logs",
        "Top 3 IPs with 500 errors",
        data(top_ips=_top(Counter(e.ip for e in LOG.entries if e.status == 500), 3, "ip")),
        "top 3 for 500",
    ),
    Case("logs", "How many 5xx responses are in the logs?", data(count=_status(500, 503)), str(_status(500, 503))),
    Case("logs", "How many requests are in the logs?", data(count=len(LOG.entries)), "12000"),
    Case(
        "logs",
        "Which endpoints have the most errors?",
        data(top_paths=_top(Counter(e.path for e in LOG.entries if e.status >= 400), 5, "path")),
        "error paths",
    ),
    Case(
        "logs",
        f"How many requests came from {NOISY}?",
        data(count=sum(1 for e in LOG.entries if e.ip == NOISY)),
        "count for the noisiest IP",
    ),
    Case("logs", "How many requests in 2024 got a 503?", data(count=_status(503)), str(_status(503))),
    Case(
        "logs",
        "Which clients get the most 401 responses?",
        data(top_ips=_top(Counter(e.ip for e in LOG.entries if e.status == 401), 5, "ip")),
        "top 401 IPs",
    ),
    # --- answerable from the live telemetry -------------------------------------------------
    Case("live", "How many devices are in alert state right now?", data(count=len(_alerts())), str(len(_alerts()))),
    Case("live", "Which devices are in alert at WY-ALPHA?", _devices(_alerts("WY-ALPHA")), "the WY-ALPHA alerts"),
    Case(
        "live",
        "How many turbines are in alert?",
        data(count=len(_alerts(dtype="turbine"))),
        str(len(_alerts(dtype="turbine"))),
    ),
    Case(
        "live",
        "How many devices are in WARN state?",
        data(count=sum(1 for d in FLEET if d.state.value == "WARN")),
        "WARN count",
    ),
    Case("live", "How many devices are active?", data(active_devices=len(FLEET)), str(len(FLEET))),
    Case("live", "How many users are online right now?", data(active_users=USERS), str(USERS)),
    Case("live", "How many active connections are there?", data(active_connections=CONNECTIONS), str(CONNECTIONS)),
    Case(
        "live",
        "How many devices does TX-BRAVO have?",
        data(device_count=SITE_COUNTS["TX-BRAVO"]),
        str(SITE_COUNTS["TX-BRAVO"]),
    ),
    Case("live", "List the sites", data(sites=sorted(SITE_COUNTS)), "10 sites"),
    Case("live", "How many sites are there?", data(count=len(SITE_COUNTS)), str(len(SITE_COUNTS))),
    Case(
        "live",
        "How many electrical rotors are in alert at OK-DELTA?",
        data(count=len(_alerts("OK-DELTA", "electrical_rotor"))),
        str(len(_alerts("OK-DELTA", "electrical_rotor"))),
    ),
    # --- must abstain (out of scope, or outside what the data covers) -------------------------
    *(
        Case("abstain", q, lambda b: False, "abstain")
        for q in (
            "What is BP's stock price?",
            "How many incidents at Shell in 2019?",
            "BP incidents in 2023?",
            "What was the price of gold in Zurich in 1987?",
            "Who is the CEO of BP?",
            "What will the weather be in Houston tomorrow?",
            "How many requests got a 404 in 2019?",
            "How many devices are in alert at TX-BETA?",
            "How many incidents did Chevron report in 2024?",
            "What is the capital of France?",
            "How many safety incidents occurred at Exxon in 2024?",
            "What was BP's revenue in 2024?",
        )
    ),
]


async def load_live(redis: Redis) -> None:
    """(Re)write the fleet at the current time (so every device counts as active) and the activity."""
    await api_testing.write_devices(redis, FLEET, time.time())
    await api_testing.write_activity(redis, ACTIVITY)


@dataclass
class Report:
    right: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    abstained_when_wanted: int = 0
    abstained_when_not: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    wrong: list[tuple[str, str, str]] = field(default_factory=list)

    def accuracy(self, category: str) -> float:
        return self.right[category] / self.total[category] if self.total[category] else 0.0

    @property
    def answerable_accuracy(self) -> float:
        cats = [c for c in CATEGORIES if c != "abstain"]
        return sum(self.right[c] for c in cats) / max(1, sum(self.total[c] for c in cats))

    @property
    def abstention_precision(self) -> float:
        said = self.abstained_when_wanted + self.abstained_when_not
        return self.abstained_when_wanted / said if said else 1.0

    @property
    def abstention_recall(self) -> float:
        return self.abstained_when_wanted / self.total["abstain"] if self.total["abstain"] else 1.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


async def evaluate(client: httpx.AsyncClient, rounds: int = 1, refresh: Callable[[], Any] | None = None) -> Report:
    """Ask every case `rounds` times, interleaved (round-robin, so no answer is asked twice in a
    row); grade the first round, time every round."""
    report = Report()
    for n in range(rounds):
        if refresh is not None:
            await refresh()
        for case in CASES:
            t = time.perf_counter()
            resp = await client.post("/api/diagnostics/query", json={"question": case.question})
            elapsed = time.perf_counter() - t
            report.latencies.setdefault(case.category, []).append(elapsed)
            if n:
                continue
            body = resp.json()
            abstained = resp.status_code == 200 and body["mode"] == "abstain"
            report.total[case.category] += 1
            if case.category == "abstain":
                ok = abstained
                report.abstained_when_wanted += int(abstained)
            else:
                ok = resp.status_code == 200 and case.check(body)
                report.abstained_when_not += int(abstained)
            report.right[case.category] += int(ok)
            if not ok:
                report.wrong.append((case.category, case.question, str(body.get("answer", body))[:200]))
    return report
