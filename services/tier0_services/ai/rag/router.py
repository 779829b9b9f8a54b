"""Route a question by meaning: documents, access logs (and which aggregate) or live telemetry
(and which read), from its similarity to labelled example utterances (`data/routes.yaml`).

Each route's score is the mean cosine of the question to its `K` closest examples under the
shipped all-MiniLM-L6-v2 (always the local model, whichever provider answers, so routing needs no
network). The families (docs, logs, live) whose best route is within `margin` of the best one are
all tried, best first, and `diagnostics` keeps the grounded answer; the slots the question names
(`rag.slots`) only nudge the scores where a slot belongs to one family alone (an IP address or a
URL path to the logs). Pure scoring (`label_scores`, `decide`) is separate from the model.
"""

import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

import yaml

from tier0_services.ai.local_model import WordVectors
from tier0_services.ai.providers import Vectors
from tier0_services.ai.rag import slots as slots_mod
from tier0_services.ai.rag.slots import Slots

K = 3
MARGIN = 0.06
"""Families whose best score is within this of the best family's are all tried (fitted on the
dev split; see tests/ai/README.md)."""
SLOT_NUDGE = 0.08
FAMILIES = ("docs", "logs", "live")
FIGURES = frozenset({"logs.count", "logs.error_rate", "logs.unique_ips"})
"""Aggregates that answer with a figure only: not "which ..." or "who ..."."""
RANKINGS = frozenset({"logs.status_breakdown", "logs.top_ips", "logs.top_paths", "logs.methods"})
"""Aggregates that rank: they answer a question that asks for a ranking or a quantity."""


class QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> tuple[Vectors, list[WordVectors]]: ...

    def encode_query(self, text: str) -> tuple[Vectors, WordVectors]: ...

    def encode_query_with(self, text: str, others: list[str]) -> tuple[Vectors, WordVectors, Vectors]: ...


def load_examples() -> dict[str, list[str]]:
    raw = resources.files("tier0_services.ai").joinpath("data/routes.yaml").read_text(encoding="utf-8")
    data: dict[str, list[str]] = yaml.safe_load(raw)
    for label, examples in data.items():
        if label.split(".", 1)[0] not in FAMILIES or not examples:
            raise ValueError(f"routes.yaml: bad route {label!r}")
    return data


def family(label: str) -> str:
    return label.split(".", 1)[0]


def label_scores(similarities: Vectors, labels: list[str], k: int = K) -> dict[str, float]:
    """Per label, the mean of its `k` highest similarities (pure; `labels[i]` is example i's)."""
    out: dict[str, float] = {}
    by_label: dict[str, list[float]] = {}
    for label, s in zip(labels, similarities.tolist(), strict=True):
        by_label.setdefault(label, []).append(float(s))
    for label, values in by_label.items():
        best = sorted(values, reverse=True)[:k]
        out[label] = sum(best) / len(best)
    return out


@dataclass(frozen=True)
class Decision:
    scores: dict[str, float]
    """Per route label, after the slot nudges."""
    best: dict[str, str]
    """Per family, its best label."""
    order: list[str]
    """Families by their best score, best first."""
    tried: list[str]
    """The families to try, best first: those within the margin of the best."""

    def score(self, fam: str) -> float:
        return self.scores[self.best[fam]]

    @property
    def close(self) -> bool:
        return len(self.tried) > 1


def decide(scores: dict[str, float], slots: Slots, margin: float = MARGIN) -> Decision:
    """Nudge by the slots that belong to one family (an IP or a path to the logs; the source the
    question names: "in the access logs", "according to the runbook", "right now") or rule one
    route out (a count does not name the clients asked for; an aggregate says no procedure),
    rank the families, keep those within the margin."""
    nudged = dict(scores)
    for label in nudged:
        fam = family(label)
        if slots.source == fam:
            nudged[label] += SLOT_NUDGE
        if fam == "logs" and (slots.ip or slots.path or slots.method):
            nudged[label] += SLOT_NUDGE
        if label == "logs.latency" and slots.percentiles:
            nudged[label] += SLOT_NUDGE
        if fam != "docs" and slots.how_to:
            nudged[label] -= SLOT_NUDGE  # "how do I see the dead letters?" wants the procedure
        if label in RANKINGS and not slots.statistic:
            nudged[label] -= SLOT_NUDGE  # a ranking answers "which ... most", not "which code means ..."
        if label in FIGURES and slots.names_one:
            nudged[label] -= SLOT_NUDGE  # "which clients got the most 5xx?" names clients, counts nothing
    best: dict[str, str] = {}
    for label, score in nudged.items():
        fam = family(label)
        if fam not in best or score > nudged[best[fam]]:
            best[fam] = label
    order = sorted(best, key=lambda f: -nudged[best[f]])
    top = nudged[best[order[0]]]
    tried = [f for f in order if nudged[best[f]] >= top - margin]
    return Decision(nudged, best, order, tried)


@dataclass
class Router:
    """The examples' vectors (computed once, on first use or `prime`) and the scoring."""

    encoder: QueryEncoder
    examples: dict[str, list[str]] = field(default_factory=load_examples)
    _matrix: Vectors | None = None
    _labels: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prime(self) -> None:
        with self._lock:
            if self._matrix is not None:
                return
            labels = [label for label, items in self.examples.items() for _ in items]
            texts = [slots_mod.canonical(text) for items in self.examples.values() for text in items]
            self._matrix = self.encoder.encode(texts)[0]
            self._labels = labels

    def scores(self, question_vector: Vectors) -> dict[str, float]:
        self.prime()
        assert self._matrix is not None
        return label_scores(self._matrix @ question_vector, self._labels)

    def route(self, question: str, slots: Slots, margin: float = MARGIN) -> tuple[Decision, Vectors, WordVectors]:
        canonical = slots_mod.canonical(question)
        # The retrieval and the reader read the question as asked; the router its stand-in form.
        if canonical == question:
            vector, words = self.encoder.encode_query(question)
            routed = self.scores(vector)
        else:
            vector, words, others = self.encoder.encode_query_with(question, [canonical])
            routed = self.scores(others[0])
        return decide(routed, slots, margin), vector, words

    def describe(self, decision: Decision) -> dict[str, Any]:
        """What the answer's evidence shows of the routing: each family's best route and score."""
        return {
            "routes": {f: {"route": decision.best[f], "score": round(decision.score(f), 4)} for f in decision.order},
            "tried": decision.tried,
        }
