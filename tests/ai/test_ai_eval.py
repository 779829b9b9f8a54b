"""The graded question set of `make bench BENCH=ai` (tests/bench/ai_eval.py), run once: answerable
questions >= 95% right, every out-of-scope question abstained, no answerable one abstained on.
Real local model, redis-stack-server, the API loading its samples at first start."""

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from redis.asyncio import Redis

from tier0_dev import programs
from tier0_dev.procs import free_port
from tier0_services.ai import local_model
from tier0_services.ai.providers import Providers
from tier0_services.ai.rag.extractive import SentenceReader
from tier0_services.ai.settings import AISettings
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
import ai_eval  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def stack_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    proc = programs.redis(port, tmp_path_factory.mktemp("redis-eval"), search=True)
    yield port
    proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(stack_port: int) -> AsyncIterator[httpx.AsyncClient]:
    redis = Redis(port=stack_port)
    await ai_eval.load_live(redis)
    await redis.aclose()
    model = local_model.shared()
    app = create_app(
        Settings(redis_url=f"redis://127.0.0.1:{stack_port}/0", api_token=SecretStr("t"), ai_rate_limit="")
    )
    app.state.ai_settings = AISettings(provider="local", load_samples=True, record_access_log=False)
    app.state.ai_providers = Providers(kind="local", embedder=model, answerer=SentenceReader(model))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        await app.state.ai.ready.wait()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://e") as c:
            yield c


async def test_question_set_meets_its_targets(client: httpx.AsyncClient) -> None:
    assert len(ai_eval.CASES) >= 40 and {c.category for c in ai_eval.CASES} == set(ai_eval.CATEGORIES)
    report = await ai_eval.evaluate(client)
    assert report.abstention_recall == 1.0, report.wrong
    assert report.answerable_accuracy >= 0.95, report.wrong
    assert report.abstention_precision == 1.0, report.wrong
