"""`POST /api/diagnostics/query`: route a question and keep the grounded answer. Orchestration
only; each kind of data has its own reader:

- `documents.DocumentReader`: the corpus, read a sentence at a time (or Cohere's chat), cited;
- `logs.questions`: exact aggregates over the access logs (imported by `logs.store.AccessLogs`);
- `live.LiveData`: bounded reads of the live telemetry.

Grounded by construction: every answer carries its `Evidence`. A question is routed by meaning
(`rag.router`: its closest labelled examples under the shipped MiniLM) with the slots it names
(`rag.slots`) as filters. When the best routes of two families are close, or no route is
confidently close, each is tried and the grounded answer is kept: an aggregate is grounded when
its data exists and it honours every slot (a year the logs cover, a site the region has, no
company name the logs cannot know); a document answer when the reader finds the sentence that
answers. Documents win a close call only with a sentence the reader is fairly sure of, and only
against an aggregate route that is not clearly meant. Those two rules are pure functions
(`graded`, `choose`); `Diagnostics` only asks the readers and applies them.
"""

import asyncio
from dataclasses import dataclass, replace

from redis.asyncio import Redis

from tier0_services.ai import answers, documents, live, providers
from tier0_services.ai.logs import questions as log_questions
from tier0_services.ai.rag import router, slots


@dataclass(frozen=True)
class Routing:
    """When to try more than the closest family, and which grounded answer to keep (fitted on the
    development split with `data/reader.json`; see tests/ai/README.md)."""

    margin: float = router.MARGIN
    confident: float = 0.55
    """An aggregate or live route scoring at least this is clearly meant: a document answer does not
    displace it."""
    min_aggregate: float = 0.43
    """An aggregate or live route scoring below this is not grounded (nothing like it was asked)."""
    docs_close: float = 0.60
    """Below `confident`, a document answer the reader gives at least this probability displaces a
    grounded aggregate (the question's words were the aggregate's, its meaning the documents')."""


@dataclass(frozen=True)
class Attempt:
    family: str
    result: answers.QueryResult
    grounded: bool
    confidence: float
    strong_abstention: bool = False
    """The family is the right one and its data says no (a year the logs lack, an unknown site):
    this abstention, not another family's, is the answer when nothing is grounded."""
    unavailable: providers.ProviderUnavailableError | None = None
    """The provider failed while answering (raised again when no other family answers)."""


class Diagnostics:
    def __init__(
        self,
        redis: Redis,
        route_by: router.Router,
        reader: documents.DocumentReader,
        live_data: live.LiveData,
        routing: Routing | None = None,
    ) -> None:
        self.redis = redis
        self.router = route_by
        self.documents = reader
        self.live = live_data
        self.routing = routing or Routing()

    async def query(self, question: str, top_k: int = 4) -> answers.QueryResult:
        found = slots.extract(question)
        decision, _, _ = await asyncio.to_thread(self.router.route, question, found, self.routing.margin)
        families = list(decision.tried)
        if "docs" not in families:
            families.append("docs")  # the documents are read too, unless an aggregate clearly answers
        attempts: list[Attempt] = []
        for family in families:
            if family == "docs" and any(
                a.grounded and a.confidence >= self.routing.confident for a in attempts if a.family != "docs"
            ):
                continue  # a clearly meant, grounded aggregate: no document answer would displace it
            attempts.append(await self._attempt(family, decision, question, found, top_k))
        chosen = choose(attempts, decision, self.routing)
        if chosen.unavailable is not None or (not chosen.grounded and any(a.unavailable for a in attempts)):
            raise next(a.unavailable for a in attempts if a.unavailable is not None)
        docs = next((a for a in attempts if a.family == "docs"), None)
        route = {
            **self.router.describe(decision),
            "tried": [a.family for a in attempts],
            "chosen": chosen.family,
            "reader": round(docs.confidence, 4) if docs is not None else None,
        }
        return replace(chosen.result, evidence=replace(chosen.result.evidence, route=route))

    async def _attempt(
        self, family: str, decision: router.Decision, question: str, found: slots.Slots, top_k: int
    ) -> Attempt:
        if family == "docs":
            wants_list = decision.best["docs"] == "docs.list"
            try:
                result, confidence = await self.documents.answer(question, found, top_k, wants_list)
            except providers.ProviderUnavailableError as exc:
                # The documents could not be read (Cohere embed failed): another family may still
                # answer; if none does, the query is a 503 with this reason.
                failed = answers.QueryResult(question, str(exc), "abstain", evidence=answers.Evidence("none"))
                return Attempt("docs", failed, False, 0.0, unavailable=exc)
            return Attempt("docs", result, result.mode == "retrieval", confidence)
        if family == "logs":
            result, strange = await log_questions.ask(self.redis, question, decision.best["logs"], found)
        else:
            result, strange = await self.live.ask(question, decision.best["live"], found)
        return graded(family, question, result, strange, decision.score(family), self.routing)


def graded(
    family: str, question: str, result: answers.QueryResult, strange: list[str], score: float, routing: Routing
) -> Attempt:
    """An aggregate family's answer (`logs` or `live`) with how well it fits (pure): grounded when it
    aggregated and the route scored at least `min_aggregate` with no name its data cannot know
    (`strange`); such an aggregation that does not fit becomes an abstention saying why. A confident
    route's own abstention is strong (its data says no)."""
    confident = score >= routing.confident
    fits = score >= routing.min_aggregate and not strange
    grounded = result.mode == "aggregation" and fits
    strong = result.mode == "abstain" and confident and not strange
    if result.mode == "aggregation" and not fits:
        what = "access logs" if family == "logs" else "live telemetry"
        names = f" ({', '.join(strange)})" if strange else ""
        result = answers.QueryResult(
            question,
            f"The {what} cannot answer this: the question names what they do not hold{names}.",
            "abstain",
            evidence=answers.Evidence("none", None, result.evidence.covers),
        )
    return Attempt(family, result, grounded, score, strong)


def choose(attempts: list[Attempt], decision: router.Decision, routing: Routing) -> Attempt:
    """The grounded answer (pure): documents when they are the closest family, or when the reader is
    fairly sure and no aggregate is clearly meant; else the closest grounded aggregate; with none
    grounded, the most informative abstention."""
    grounded = [a for a in attempts if a.grounded]
    docs = next((a for a in grounded if a.family == "docs"), None)
    others = [a for a in grounded if a.family != "docs"]
    if docs is not None and (
        not others
        or decision.order[0] == "docs"
        or (others[0].confidence < routing.confident and docs.confidence >= routing.docs_close)
    ):
        return docs
    if others:
        return others[0]
    strong = [a for a in attempts if a.strong_abstention]
    if strong:
        return strong[0]
    return next((a for a in attempts if a.family == "docs"), attempts[0])
