"""The blind evaluation of `/api/diagnostics/query` (tests/ai/cases, written by another author
without reading the answerer): load its data, ask its cases, grade them with `check`, and sum up
per file, split and category, with abstention precision and recall and the latency of each answer.

Two stores, as the cases' README asks: the first file over the shipped samples (corpus and the
12,000-line seeded log, loaded by the region API at start-up), the evaluation's 1,000-device fleet
and one activity message; the second file over the frozen operator documents of
tests/ai/cases/second_corpus alone, added through the public `POST /api/diagnostics/documents`.

Tuning rule: the reader and the routing are fitted on the `dev` split only (tests/ai/fit_reader.py);
`test` and the second corpus are asked to report them. `failures()` shows the questions of a
split's misses; the benchmark prints them for `dev` only unless told otherwise.
"""

import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ai_eval
import httpx
import yaml
from asgi_lifespan import LifespanManager
from check import Verdict, check
from pydantic import SecretStr
from redis.asyncio import Redis

from tier0_services.ai.providers import Providers
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

CASES = Path(__file__).resolve().parent / "cases"
FILES = {"first": "cases.yaml", "second": "second_cases.yaml"}
File = Literal["first", "second"]
CATEGORIES = ("documents", "logs", "live", "abstain")


def load(which: File) -> list[dict[str, Any]]:
    raw = yaml.safe_load((CASES / FILES[which]).read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = raw["cases"]
    return cases


def split(cases: Iterable[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [c for c in cases if c["split"] == name]


@dataclass(frozen=True)
class DocumentCase:
    """A document or abstain case as the reader's fitting sees it."""

    question: str
    answerable: bool
    groups: tuple[tuple[str, ...], ...]
    """Every group must be matched (any alternative) by the answer's text."""


def document_cases(name: str, which: File = "first") -> list[DocumentCase]:
    """A file's document and must-abstain cases of one split (enumerations aside: they are read
    as lists, not sentences)."""
    out = []
    for c in split(load(which), name):
        if c["category"] == "documents" and c["kind"] != "enumeration":
            groups = tuple(tuple(str(a) for a in g) for g in c["expect"].get("phrases", []))
            out.append(DocumentCase(c["question"], True, groups))
        elif c["category"] == "abstain" and c["expect"].get("near") not in {"logs", "live"}:
            out.append(DocumentCase(c["question"], False, ()))
    return out


def second_documents() -> list[dict[str, Any]]:
    """The second corpus as `POST /api/diagnostics/documents` bodies (doc_id = file stem, title =
    first line without '# ', tags = the `tags:` line, text = the whole file)."""
    bodies = []
    for path in sorted((CASES / "second_corpus").glob("*.md")):
        raw = path.read_text(encoding="utf-8")
        lines = raw.splitlines()
        title = lines[0].removeprefix("# ").strip() if lines else path.stem
        tags = next((ln[5:] for ln in lines[:4] if ln.lower().startswith("tags:")), "")
        bodies.append(
            {
                "doc_id": path.stem,
                "title": title,
                "tags": [t.strip() for t in tags.split(",") if t.strip()],
                "text": raw,
            }
        )
    return bodies


@dataclass
class Result:
    case: dict[str, Any]
    body: dict[str, Any]
    verdict: Verdict
    seconds: float
    extra_seconds: list[float] = field(default_factory=list)
    """Latencies of the same question asked again (benchmark rounds; only the first is graded)."""


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)

    def of(self, category: str | None = None) -> list[Result]:
        return [r for r in self.results if category is None or r.case["category"] == category]

    def accuracy(self, category: str | None = None) -> tuple[int, int]:
        """(right, asked) over the answerable cases (or one category)."""
        pool = [r for r in self.of(category) if category is not None or r.case["category"] != "abstain"]
        return sum(r.verdict.ok for r in pool), len(pool)

    @property
    def abstention(self) -> tuple[float, float, int, int, int]:
        """(precision, recall, abstained rightly, abstentions, must-abstain cases)."""
        said = [r for r in self.results if r.body.get("mode") == "abstain"]
        wanted = self.of("abstain")
        right = sum(1 for r in said if r.case["category"] == "abstain")
        precision = right / len(said) if said else 1.0
        recall = right / len(wanted) if wanted else 1.0
        return precision, recall, right, len(said), len(wanted)

    def latencies(self) -> list[float]:
        return [r.seconds for r in self.results]

    def failures(self) -> list[str]:
        return [
            f"{r.case['id']} [{r.case['category']}/{r.case['kind']}] {r.case['question']!r}: {r.verdict.reason} "
            f"-- {str(r.body.get('answer', r.body))[:160]}"
            for r in self.results
            if not r.verdict.ok
        ]

    def kinds(self) -> Counter[tuple[str, bool]]:
        return Counter((f"{r.case['category']}/{r.case['kind']}", r.verdict.ok) for r in self.results)


async def ask(
    client: httpx.AsyncClient,
    cases: list[dict[str, Any]],
    refresh: Callable[[], Awaitable[Any]] | None = None,
    refresh_every_s: float = 20.0,
) -> Report:
    """Ask every case once, in order; `refresh` (rewriting the live fleet) runs first and again
    when `refresh_every_s` have passed (the fleet counts as active for 30 s)."""
    report = Report()
    last = 0.0
    for case in cases:
        if refresh is not None and time.monotonic() - last > refresh_every_s:
            await refresh()
            last = time.monotonic()
        t = time.perf_counter()
        resp = await client.post("/api/diagnostics/query", json={"question": case["question"]})
        elapsed = time.perf_counter() - t
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        verdict = check(case, body) if resp.status_code == 200 else Verdict(False, f"HTTP {resp.status_code}")
        report.results.append(Result(case, body, verdict, elapsed))
    return report


TOKEN = "blind-eval"


def _settings(redis_url: str) -> Settings:
    """One client asking in sequence: the per-client AI rate limit (an edge control, 10/s by
    default) would refuse the questions a fast answerer gets through, and it is not what is
    measured here."""
    return Settings(redis_url=redis_url, api_token=SecretStr(TOKEN), ai_rate_limit="")


@asynccontextmanager
async def first_store(
    redis_url: str, model: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Callable[[], Awaitable[None]]]]:
    """The region API over the shipped samples (loaded by its own start-up into an empty Redis,
    its own access log not recorded), with the evaluation's fleet and activity; yields a client and
    the live refresh."""
    redis = Redis.from_url(redis_url)

    async def refresh() -> None:
        await ai_eval.load_live(redis)

    await refresh()
    app = create_app(_settings(redis_url))
    app.state.ai_settings = AISettings(provider="local", load_samples=True, record_access_log=False)
    app.state.ai_providers = Providers(kind="local", embedder=model, answerer=SentenceReader(model))
    try:
        async with LifespanManager(app, startup_timeout=120, shutdown_timeout=30) as manager:
            await app.state.ai.ready.wait()
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://eval") as c:
                yield c, refresh
    finally:
        await redis.aclose()


@asynccontextmanager
async def second_store(redis_url: str, model: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The region API over an empty Redis (no samples, no logs, no fleet) holding only the second
    corpus, added through `POST /api/diagnostics/documents` like anyone's documents."""
    app = create_app(_settings(redis_url))
    app.state.ai_settings = AISettings(provider="local", load_samples=False, record_access_log=False)
    app.state.ai_providers = Providers(kind="local", embedder=model, answerer=SentenceReader(model))
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=30) as manager:
        await app.state.ai.ready.wait()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://eval") as c:
            for body in second_documents():
                resp = await c.post(
                    "/api/diagnostics/documents", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
                )
                if resp.status_code != 200:
                    raise RuntimeError(f"adding {body['doc_id']}: HTTP {resp.status_code} {resp.text[:200]}")
            yield c
