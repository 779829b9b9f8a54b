"""Fit the reader's model (services/tier0_services/ai/data/reader.json) on the development material
only: the author's own questions over the samples (tests/ai/dev/own_cases.yaml) and over a
README-style corpus (dev/readme_cases.yaml over dev/readme_corpus, a frozen charts/README.md), and
the `dev` split of the blind set (tests/ai/cases/). The `test` split and the second corpus are never
read here.

Every retrieved unit (sentence, item, row) of a development question is a sample: positive when it
holds all of the case's expected phrases, negative otherwise (every unit of a must-abstain question
is negative). A logistic model over `reader.Features` is fitted by Newton's method with an L2
penalty, then the threshold is chosen for the best question-level result: an answerable question
is right when its best unit is a positive one and clears the threshold, a must-abstain question
when its best unit does not.

    .venv/bin/python tests/ai/fit_reader.py            # fit and print, change nothing
    .venv/bin/python tests/ai/fit_reader.py --write    # also write data/reader.json

Needs redis-stack-server (make tools); loads the samples into a fresh one.
"""

import argparse
import asyncio
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "ai"), str(ROOT / "tests" / "bench")]

import blind  # noqa: E402
import check  # noqa: E402

from tier0_dev import programs  # noqa: E402
from tier0_dev.procs import free_port  # noqa: E402
from tier0_services.ai import runtime  # noqa: E402
from tier0_services.ai.providers import Providers  # noqa: E402
from tier0_services.ai.rag import corpus, reader, slots  # noqa: E402
from tier0_services.ai.rag.extractive import SentenceReader  # noqa: E402
from tier0_services.ai.settings import AISettings  # noqa: E402

MODEL_FILE = ROOT / "services" / "tier0_services" / "ai" / "data" / "reader.json"
L2 = 0.1
HARD_NEGATIVES = 6


@dataclass(frozen=True)
class DevCase:
    question: str
    answerable: bool
    groups: tuple[tuple[str, ...], ...]
    """Every group must be in the answer (any one alternative of it)."""
    source: str


DEV = ROOT / "tests" / "ai" / "dev"


def own_cases(name: str = "own_cases.yaml") -> list[DevCase]:
    raw = yaml.safe_load((DEV / name).read_text())
    out = []
    for c in raw["cases"]:
        if c["category"] == "documents" and c.get("contains"):
            out.append(DevCase(c["question"], True, tuple((p,) for p in c["contains"]), name))
        elif c["category"] == "abstain":
            out.append(DevCase(c["question"], False, (), name))
    return out


def readme_documents() -> list[corpus.Document]:
    """The README-style development corpus (tests/ai/dev/readme_corpus), added beside the samples."""
    return [
        corpus.parse_note(path.stem, path.read_text(encoding="utf-8"), f"dev:{path.name}")
        for path in sorted((DEV / "readme_corpus").glob("*.md"))
    ]


def all_cases() -> list[DevCase]:
    return own_cases() + own_cases("readme_cases.yaml") + blind_dev_cases()


def second_dev_cases() -> list[DevCase]:
    """The `dev` split of the second corpus's cases (development material from the second round
    on, tests/ai/README.md), read in a store holding that corpus alone."""
    return [DevCase(c.question, c.answerable, c.groups, "second-dev") for c in blind.document_cases("dev", "second")]


def blind_dev_cases() -> list[DevCase]:
    """The `dev` split of the blind set (tests/ai/cases): its document and must-abstain cases."""
    return [DevCase(c.question, c.answerable, c.groups, "blind-dev") for c in blind.document_cases("dev")]


async def readings(cases: list[DevCase], second: bool = False) -> list[tuple[DevCase, Any]]:
    """Each case read over the samples and the README corpus, or (`second`) over the second
    corpus alone."""
    with tempfile.TemporaryDirectory(prefix="fit-reader-") as tmp:
        port = free_port()
        proc = programs.redis(port, Path(tmp), search=True)
        redis = Redis(port=port)
        try:
            from tier0_services.ai import local_model

            model = local_model.shared()
            providers = Providers(kind="local", embedder=model, answerer=SentenceReader(model))
            ai = await runtime.start(
                redis, AISettings(provider="local", load_samples=not second, record_access_log=False), providers
            )
            await ai.ready.wait()
            docs = (
                [
                    corpus.Document(b["doc_id"], b["title"], b["text"], tags=tuple(b["tags"]))
                    for b in blind.second_documents()
                ]
                if second
                else readme_documents()
            )
            for doc in docs:
                await ai.corpus.add(doc)
            snap = await ai.corpus.snapshot()
            out = []
            for case in cases:
                found = slots.extract(case.question)
                candidates = await ai.corpus.retrieve(case.question, k=6)
                reading = ai.documents.local.read(
                    case.question, found, [c.passage for c in candidates], snap.bm25.idf, snap.doc_words
                )
                out.append((case, reading))
            await ai.stop()
            return out
        finally:
            await redis.aclose()
            proc.stop()


def said(case: DevCase, text: str) -> bool:
    return case.answerable and all(check.group_found(g, [text]) for g in case.groups)


def label(case: DevCase, unit: reader.UnitRecord) -> int:
    return int(said(case, unit.text))


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 50) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression by Newton's method (the bias is not penalised)."""
    xb = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.eye(xb.shape[1]) * l2
    penalty[-1, -1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        gradient = xb.T @ (p - y) + penalty @ w
        hessian = xb.T @ (xb * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], float(w[-1])


def question_level(pairs: list[tuple[DevCase, Any]], model: reader.Model) -> tuple[int, int, list[str]]:
    """Question-level result of `model` on the readings (features do not depend on the model)."""
    right = 0
    wrong: list[str] = []
    for case, reading in pairs:
        scored = sorted(
            (reader.Scored(s.unit, s.features, model.probability(s.features)) for s in reading.scored),
            key=lambda s: -s.probability,
        )
        chosen = reader.answer_units(scored, model, entities=reading.question.entities)
        text = " ".join(c.unit.text for c in chosen)
        ok = (bool(chosen) and said(case, text)) if case.answerable else not chosen
        right += ok
        if not ok:
            got = scored[0].unit.text[:90] if scored else "-"
            p = scored[0].probability if scored else 0.0
            wrong.append(f"{'ANS' if case.answerable else 'ABS'} {case.question!r} -> p={p:.2f} {got!r}")
    return right, len(pairs), wrong


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--write", action="store_true")
    args.add_argument("--second", action="store_true", help="also fit on the second corpus's dev split")
    opts = args.parse_args()
    cases = all_cases()
    pairs = asyncio.run(readings(cases))
    if opts.second:
        second = second_dev_cases()
        cases += second
        pairs += asyncio.run(readings(second, second=True))
    xs, ys = [], []
    for case, r in pairs:
        # Every positive and the hardest negatives (closest by cosine): the easy negatives of a
        # question would otherwise outweigh what decides, its best few units.
        # Units the gates shut out (`reader.can_answer`) are never chosen: they teach nothing.
        open_units = [s for s in r.scored if reader.can_answer(s.features)]
        positives = [s for s in open_units if label(case, s.unit)]
        negatives = sorted((s for s in open_units if not label(case, s.unit)), key=lambda s: -s.features.cosine)
        for s in positives + negatives[:HARD_NEGATIVES]:
            xs.append(s.features.vector())
            ys.append(label(case, s.unit))
    x, y = np.asarray(xs), np.asarray(ys, dtype=float)
    answerable = [c for c in cases if c.answerable]
    unreachable = [c.question for c, r in pairs if c.answerable and not any(label(c, s.unit) for s in r.scored)]
    print(f"{len(cases)} questions ({len(answerable)} answerable), {len(y)} units, {int(y.sum())} positive")
    if unreachable:
        print("answer not retrieved for:", *unreachable, sep="\n  ")
    w, b = fit(x, y)
    results = []
    for threshold in np.arange(0.05, 0.96, 0.01):
        m = reader.Model(tuple(w), b, float(threshold))
        results.append((question_level(pairs, m)[0], float(threshold)))
    top = max(r for r, _ in results)
    plateau = [t for r, t in results if r == top]
    # The middle of the best plateau (not its low end): as far from the questions on either side.
    chosen = plateau[len(plateau) // 2]
    model = reader.Model(tuple(float(v) for v in w), b, round(chosen, 2))
    right, total, wrong = question_level(pairs, model)
    print("weights:", dict(zip(reader.FEATURES, [round(v, 3) for v in w], strict=True)), "bias", round(b, 3))
    print(f"threshold {model.threshold}: {right}/{total} questions right")
    for line in wrong:
        print("  WRONG", line)
    if opts.write:
        sources = sorted({c.source for c in cases})
        MODEL_FILE.write_text(
            json.dumps(
                {
                    "features": list(reader.FEATURES),
                    "weights": [round(v, 4) for v in w],
                    "bias": round(b, 4),
                    "threshold": model.threshold,
                    "band": 0.15,
                    "fitted_on": f"{' + '.join(sources)}: {len(cases)} development questions, {len(y)} units "
                    f"(tests/ai/fit_reader.py, L2 {L2}); {right}/{total} right on them",
                },
                indent=2,
            )
            + "\n"
        )
        print("wrote", MODEL_FILE.relative_to(ROOT))
    return 0 if math.isfinite(b) else 1


if __name__ == "__main__":
    raise SystemExit(main())
