"""The blind cases' `test` split (tests/ai/cases, written without reading the answerer and never
tuned on), asked once through the real region API: the shipped samples with the local model on
redis-stack-server, and the second corpus (operator documents) added through the public document
API into its own empty store. A regression below the floors fails `make test`; `make bench
BENCH=ai` prints the full table beside the `dev` split and against the issue's 95% targets
(tests/ai/README.md has the figures).
"""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "bench")]
import blind  # noqa: E402

from tier0_dev import programs  # noqa: E402
from tier0_dev.procs import free_port  # noqa: E402
from tier0_services.ai import local_model  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

TARGET = 0.95
"""The issue's target for all three measures, on the `test` split and on the second corpus. It is
NOT met yet (tests/ai/README.md has the figures and why): the floors below hold what was measured,
a few points under, so that a regression fails `make test`; raise them as the answerer improves."""
FLOORS = {
    # (answerable right, abstention precision, abstention recall); measured 2026-12-08 (ai-3):
    "test split": (0.89, 0.86, 0.55),  # 92.0%, 90.5%, 61.3%
    "second corpus": (0.59, 0.70, 0.85),  # 63.6% (35/55), 74.1% (20/27), 90.9% (20/22)
}


@pytest.fixture(scope="module")
def stack_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = programs.redis(port, tmp_path_factory.mktemp("redis-blind"), search=True)
    yield f"redis://127.0.0.1:{port}/0"
    proc.stop()


@pytest.fixture(scope="module")
def second_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = programs.redis(port, tmp_path_factory.mktemp("redis-blind-second"), search=True)
    yield f"redis://127.0.0.1:{port}/0"
    proc.stop()


def _hold(report: blind.Report, where: str) -> None:
    """The floors; the questions that missed are shown only with TIER0_AI_SHOW_HELD_OUT=1 (the
    held-out questions are not read while tuning, tests/ai/README.md)."""
    right, asked = report.accuracy()
    precision, recall, *_ = report.abstention
    answerable_floor, precision_floor, recall_floor = FLOORS[where]
    wrong = (
        "\n".join(report.failures())
        if os.environ.get("TIER0_AI_SHOW_HELD_OUT") == "1"
        else (f"{len(report.failures())} misses (TIER0_AI_SHOW_HELD_OUT=1 shows them)")
    )
    assert asked == 0 or right / asked >= answerable_floor, f"{where}: {right}/{asked} answerable right\n{wrong}"
    assert precision >= precision_floor, f"{where}: abstention precision {precision:.3f}\n{wrong}"
    assert recall >= recall_floor, f"{where}: abstention recall {recall:.3f}\n{wrong}"


async def test_the_test_split_holds_its_floors(stack_url: str) -> None:
    cases = blind.split(blind.load("first"), "test")
    assert len(cases) >= 100 and {c["category"] for c in cases} == set(blind.CATEGORIES)
    async with blind.first_store(stack_url, local_model.shared()) as (client, refresh):
        report = await blind.ask(client, cases, refresh)
    _hold(report, "test split")


async def test_the_second_corpus_holds_its_floors(second_url: str) -> None:
    cases = blind.load("second")
    assert len(cases) >= 50
    async with blind.second_store(second_url, local_model.shared()) as client:
        listed = (await client.get("/api/diagnostics/documents")).json()
        assert listed["count"] == len(blind.second_documents())
        report = await blind.ask(client, cases)
    _hold(report, "second corpus")


async def test_the_issue_reproductions_answer(stack_url: str) -> None:
    """Issue 21's own sentences (the blind set's `verbatim` cases, all in `dev`): the site with the
    most incidents, the PPE count, the most common status code, the economic and the social
    statements (every one of the kind, none of the other), the safety glasses near miss."""
    cases = [c for c in blind.load("first") if c.get("verbatim")]
    assert len(cases) >= 6
    async with blind.first_store(stack_url, local_model.shared()) as (client, refresh):
        report = await blind.ask(client, cases, refresh)
    assert not report.failures(), "\n".join(report.failures())
