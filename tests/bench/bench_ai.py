"""AI features: local-model embedding throughput, vector search latency over 10,000 stored vectors
(the numpy path that runs on plain Redis), and `/api/diagnostics/query` latency.

Everything real: the packaged int8 ONNX MiniLM (2 intra-op threads), a redis-server on a free
loopback port, and the region API in process (httpx ASGI transport, so the figures are the app's
own cost without a network hop). Each figure stands beside a reference measured in the same run:

* embeddings/s in batches of 32 beside one text per call (what batching buys);
* search p50/p99 through `VectorIndex.search` (a version GET + the matrix product + top-k) beside
  the bare in-process matrix product over the same 10,000 x 384 matrix, and the cold load;
* query latency for an aggregation ("most frequent IP for error 400", exact, from Redis counters)
  and a retrieval question (embed, BM25 + KNN fused, extractive answer) beside `GET /health`.

Environment: BENCH_AI_SEARCHES (default 500), BENCH_AI_QUERIES (per question, default 40).
"""

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from redis.asyncio import Redis
from table import Table

from tier0_dev import programs
from tier0_dev.procs import free_port
from tier0_services.ai import sample_images, vectors
from tier0_services.ai.images import SPEC
from tier0_services.ai.local_model import MiniLMEmbedder
from tier0_services.ai.logs import sample
from tier0_services.ai.settings import AISettings
from tier0_services.ai.vector_index import VectorIndex
from tier0_services.api.app import create_app
from tier0_services.api.settings import Settings

SEARCHES = int(os.environ.get("BENCH_AI_SEARCHES", "500"))
QUERIES = int(os.environ.get("BENCH_AI_QUERIES", "40"))
VECTORS = 10_000
DIM = 384


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def bench_embeddings(model: MiniLMEmbedder) -> Table:
    texts = [s.description for s in sample_images.load_catalog()]
    corpus = [f"{t} (variant {i})" for i in range(16) for t in texts]  # 256 realistic captions
    model.embed_texts(corpus[:8], "search_document")  # warm-up
    start = time.perf_counter()
    model.embed_texts(corpus, "search_document")
    batched = len(corpus) / (time.perf_counter() - start)
    start = time.perf_counter()
    for text in corpus[:64]:
        model.embed_texts([text], "search_document")
    single = 64 / (time.perf_counter() - start)
    table = Table("Local embedder (all-MiniLM-L6-v2 int8 ONNX, 2 threads)", ["measure", "value", "reference"])
    table.add("embeddings/s, batches of 32 (256 captions)", round(batched, 1), f"{single:.1f}/s one text per call")
    table.add("ms per caption, batched", round(1000 / batched, 3), f"{1000 / single:.3f} ms one per call")
    return table


async def bench_search(redis: Redis) -> Table:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(VECTORS, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    index = VectorIndex(redis, SPEC, use_ft=False)
    for first in range(0, VECTORS, 1000):
        await index.upsert(
            [
                (f"bench-{n}", {"embedding": vectors.to_bytes(matrix[n]), "site_id": f"S{n % 20}",
                                "device_type": "turbine", "model": "bench"})
                for n in range(first, min(first + 1000, VECTORS))
            ]
        )  # fmt: skip
    queries = rng.normal(size=(SEARCHES, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    start = time.perf_counter()
    await index.search(queries[0], 10, {"model": "bench"})
    cold = time.perf_counter() - start
    timings: list[float] = []
    filtered: list[float] = []
    bare: list[float] = []
    for q in queries:
        t = time.perf_counter()
        found, _ = await index.search(q, 10, {"model": "bench"})
        timings.append(time.perf_counter() - t)
        t = time.perf_counter()
        await index.search(q, 10, {"model": "bench", "site_id": "S3"})
        filtered.append(time.perf_counter() - t)
        t = time.perf_counter()
        exact = vectors.top_k(matrix, q, 10)
        bare.append(time.perf_counter() - t)
        assert [i for i, _ in exact] == [int(f.removeprefix("bench-")) for f, _ in found]
    table = Table(
        f"Vector search, numpy path, {VECTORS:,} x {DIM} stored in Redis (k=10, {SEARCHES} queries)",
        ["measure", "p50 ms", "p99 ms", "reference (same run)"],
    )
    table.add("VectorIndex.search", ms(pct(timings, 0.5)), ms(pct(timings, 0.99)),
              f"bare matmul+top-k p50 {ms(pct(bare, 0.5))} ms, p99 {ms(pct(bare, 0.99))} ms")  # fmt: skip
    table.add("with site filter (1/20)", ms(pct(filtered, 0.5)), ms(pct(filtered, 0.99)), "same index")
    table.add("cold load (first search)", ms(cold), "", "HMGET of 10,000 HASHes, once per version")
    await redis.delete(*[f"{SPEC.prefix}bench-{n}" for n in range(VECTORS)], SPEC.ids_key, SPEC.version_key)
    return table


async def bench_queries(redis_url: str, model: MiniLMEmbedder) -> Table:
    from tier0_services.ai.providers import Providers
    from tier0_services.ai.rag.extractive import ExtractiveAnswerer

    app = create_app(Settings(redis_url=redis_url, api_token=SecretStr("bench")))
    app.state.ai_settings = AISettings(provider="local", load_samples=True, record_access_log=False)
    app.state.ai_providers = Providers(kind="local", embedder=model, answerer=ExtractiveAnswerer(model))
    log = sample.generate(12_000, seed=7)
    questions = {
        "aggregation: most frequent IP for error 400": "Give me the most frequent IP devices generating error 400",
        "retrieval: BP safety incidents in 2024": "How many safety incidents occurred in BP operations in 2024?",
        "abstention: unrelated question": "What was the price of gold in Zurich in 1987?",
    }
    table = Table(
        f"POST /api/diagnostics/query in process ({QUERIES} each, 12,000 log entries, sample corpus)",
        ["question", "mode", "p50 ms", "p99 ms", "reference: GET /health p50/p99 ms"],
    )
    async with LifespanManager(app) as manager:
        await app.state.ai.ready.wait()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://b") as c:
            body = "\n".join(log.combined_lines())
            resp = await c.post("/api/diagnostics/logs/import", content=body,
                                headers={"Authorization": "Bearer bench", "Content-Type": "text/plain"})  # fmt: skip
            assert resp.json()["imported"] == 12_000, resp.text
            health = []
            for _ in range(QUERIES):
                t = time.perf_counter()
                await c.get("/health")
                health.append(time.perf_counter() - t)
            ref = f"{ms(pct(health, 0.5))} / {ms(pct(health, 0.99))}"
            for label, question in questions.items():
                timings: list[float] = []
                mode = ""
                for _ in range(QUERIES):
                    t = time.perf_counter()
                    answer = (await c.post("/api/diagnostics/query", json={"question": question})).json()
                    timings.append(time.perf_counter() - t)
                    mode = answer["mode"]
                if label.startswith("aggregation"):
                    assert answer["data"]["top_ips"][0]["ip"] == log.expected_top_ip(400)
                table.add(label, mode, ms(statistics.median(timings)), ms(pct(timings, 0.99)), ref)
    return table


async def run(redis_port: int, model: MiniLMEmbedder) -> list[Table]:
    redis = Redis(port=redis_port)
    try:
        search = await bench_search(redis)
    finally:
        await redis.aclose()
    return [search, await bench_queries(f"redis://127.0.0.1:{redis_port}/0", model)]


def main() -> int:
    model = MiniLMEmbedder(threads=2)
    start = time.perf_counter()
    model.load()
    load = time.perf_counter() - start
    embed_table = bench_embeddings(model)
    embed_table.add("model load (tokenizer + ONNX session)", f"{ms(load)} ms", "once per process")
    embed_table.print()
    with tempfile.TemporaryDirectory(prefix="bench-ai-") as tmp:
        port = free_port()
        proc = programs.redis(port, Path(tmp) / "redis")
        try:
            for table in asyncio.run(run(port, model)):
                table.print()
        finally:
            proc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
