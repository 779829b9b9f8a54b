"""Read the answer out of the documents, one sentence (list item, table row) at a time.

No package on the registries this project can reach ships a cross-encoder's weights (we looked:
see services/README.md), so the scorer that sees the question and a sentence together is built on
the model already shipped: a late-interaction reader. Every word of the question is aligned with
its closest word of the sentence in context (the MiniLM's contextual word vectors, `local_model`;
an exact stem match counts 1), and the alignments, weighted by how rare each word is in the
corpus, say how much of what the question asks the sentence covers. With the sentence's cosine
to the question, the entity checks (the names, years and codes the question names must be in the
sentence's document context) and the answer type ("how many" wants a number the question did not
give, "how often" a frequency), a logistic model fitted on the development split
(`data/reader.json`, tests/ai/fit_reader.py) gives each sentence a probability of answering. The
best sentence answers when it clears the threshold fitted with it; otherwise the answer abstains
and says what the closest documents lack (a near miss: they mention safety glasses, and when hard
hats are replaced, but no sentence says when glasses are).

Enumerations ("what are the economic statements?", "list the alerts") return every item of the
section(s) whose heading matches what the question qualifies, not the best few sentences.

Pure apart from `UnitIndex`, which keeps each passage's units and vectors in process (bounded).
"""

import functools
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from tier0_services.ai.local_model import WordVectors
from tier0_services.ai.providers import Vectors
from tier0_services.ai.rag import slots as slots_mod
from tier0_services.ai.rag import text

QUESTION_CUES = frozenset(
    """often frequently long many much far big large old how what which who whom whose when where why
    must shall may might ought
    kind kinds type types sort way ways mean means meaning does do did done happen happens happened
    say says said tell know give find need needs there here value values number amount according
    document documents doc docs note notes""".split()
)
"""Words that say what kind of answer is wanted, not what it is about: not coverage terms.
("reported" stays out as a cue only when the documents are reports; see `_terms`.)"""
_TIME_UNIT = r"(?:second|minute|hour|day|week|month|year|shift|sec|min|hr|ms|s)s?"
_NUMBER_WORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|sixty|hundred|thousand|half|once|twice|none|no|zero|single|dozen)"
)
_NUMBER = re.compile(rf"\b(?:\d+(?:[.,]\d+)*%?|{_NUMBER_WORD})\b", re.IGNORECASE)
_FREQUENCY = re.compile(
    rf"\b(?:(?:every|each|per)\s+(?:[\d,]+|{_NUMBER_WORD}|other|{_TIME_UNIT}\b|shift|time|cycle)|"
    rf"daily|weekly|monthly|yearly|annually|hourly|nightly|quarterly|biweekly|"
    rf"(?:\d+|{_NUMBER_WORD})\s*(?:-\s*)?{_TIME_UNIT}|after\s+\w+|whichever|whenever|once|twice|"
    rf"at the start of|at the end of|before|within)\b",
    re.IGNORECASE,
)
_DURATION = re.compile(rf"\b(?:\d+(?:[.,]\d+)?|{_NUMBER_WORD})\s*(?:-\s*)?{_TIME_UNIT}\b", re.I)


_DATE = re.compile(
    r"\b(?:19|20)\d\d\b|\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b(?:january|february|march|april|may|june|july|"
    r"august|september|october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"yesterday|today|ago|last (?:week|month|year))\b",
    re.IGNORECASE,
)


_NAMES = re.compile(r"\b[A-Z][A-Za-z0-9&-]*(?:\s+[A-Z][A-Za-z0-9&-]*)*")
_NAME_COUNT = re.compile(
    r"\b([A-Z][A-Za-z0-9&-]*(?:\s+[A-Z][A-Za-z0-9&-]*)*)\s+(?:[a-z]+\s+){0,2}?(\d[\d,]*(?:\.\d+)?)\b"
)
_SUPERLATIVE = re.compile(
    r"\b(?:which|what|who|where)\b.*\b(most|least|highest|lowest|fewest|largest|smallest|biggest|greatest|top|worst|best)\b",
    re.IGNORECASE,
)


_ASKS_DEFAULT = re.compile(r"\bdefaults?\b|\bdefaulted\b", re.I)
_STATES_DEFAULT = re.compile(
    r"\bdefault|\b(?:[a-z]+[A-Z]\w*|\w+[._]\w+[\w.]*)\s*(?:\(\s*[^()\s][^()]{0,24}\)|[:=]\s*\S)",
)


def states_default(unit_text: str) -> bool:
    """Does the sentence state a default: the word, or a setting with its value (`failureThreshold
    (3)`, `spec.paused: false`, `TIER0_AI_PROVIDER=local`)?"""
    return bool(_STATES_DEFAULT.search(unit_text))


_ASKS_VERSION = re.compile(r"\b(?:which|what)\s+(?:\w+\s+){0,2}versions?\b|\bversions? of\b", re.I)
_VERSION_IN_TEXT = re.compile(r"\bv?\d+\.\d+(?:\.\d+)*\b")
_ASKS_CODE = re.compile(r"\b(?:which|what)\s+(?:http\s+)?(?:status|response|error|return)?\s*(?:code|status)\b", re.I)
_CODE_IN_TEXT = re.compile(r"\b[1-5]\d\d\b")
CODE_WORDS = frozenset("http status code codes response error".split())
"""In "which status code ...", the words that say a code is wanted: the answer's kind, not its subject."""


class AnswerType:  # noqa: D101 (constants)
    VERSION = "version"
    CODE = "code"
    SUPERLATIVE = "superlative"
    NUMBER = "number"
    FREQUENCY = "frequency"
    DURATION = "duration"
    DATE = "date"
    NONE = ""


DIMENSIONS = {
    "time": "ms millisecond milliseconds second seconds sec secs s minute minutes min mins hour hours h hr hrs "
    "day days week weeks month months year years",
    "length": "mm millimetre millimetres millimeter millimeters cm metre metres meter meters m km kilometre kilometres "
    "kilometer kilometers foot feet ft inch inches mile miles",
    "pressure": "bar mbar psi pa kpa mpa pascal pascals",
    "share": "percent percentage per-cent %",
    "memory": "byte bytes kb mb gb tb kib mib gib",
    "temperature": "celsius fahrenheit degree degrees °c °f",
}
_UNIT_DIMENSION = {u: d for d, units in DIMENSIONS.items() for u in units.split()}
_ASKED_UNIT = re.compile(
    r"\bhow many (\w+)|\bin (?:which |what )?(\w+)\b\s*\??$|\b(\w+) apart\b|\bwhat (percentage|percent)\b|"
    r"\bhow many (\w+) (?:apart|long|between|before|after)\b",
    re.IGNORECASE,
)
_UNIT_IN_TEXT = re.compile(
    r"(?:\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|thirty|a|every|per))\s*-?\s*([a-z%°]+)",
    re.I,
)


def asked_dimension(question: str) -> str:
    """The measure a question asks its answer in ("how many seconds", "in bar", "what
    percentage"): the answer must state that measure, in any of its units."""
    for m in _ASKED_UNIT.finditer(question):
        word = next((g for g in m.groups() if g), "").lower()
        if word in _UNIT_DIMENSION:
            return _UNIT_DIMENSION[word]
    return ""


def has_dimension(dimension: str, unit_text: str) -> bool:
    """Does the sentence state a figure in that measure: "10 s", "80 percent", or a setting named
    in it with its value (`stallAfterSeconds (10)`, `max_lag_ms: 500`)?"""
    low = unit_text.lower()
    if dimension == "share" and "%" in low:
        return True
    if any(_UNIT_DIMENSION.get(m.group(1).lower()) == dimension for m in _UNIT_IN_TEXT.finditer(low)):
        return True
    return bool(re.search(r"\d", unit_text)) and any(
        _UNIT_DIMENSION.get(part) == dimension
        for m in _SETTING_NAME.finditer(unit_text)
        for part in text.terms(m.group(0))[1:]
    )


_SETTING_NAME = re.compile(r"\b(?:[a-z]+[A-Z]\w*|[A-Za-z]+_\w+)\b")
"""An identifier (camelCase or snake_case): its parts say what its value measures."""


HARD_TYPES = frozenset({"number", "frequency", "duration", "date", "code", "version"})
"""Kinds of answer a sentence must hold to answer at all: without a figure it cannot say how many."""


def answer_type(question: str) -> str:
    q = question.lower()
    if re.search(r"\bhow (?:often|frequently)\b|\bhow many times\b|\bat what interval\b|\bwhat interval\b", q):
        return AnswerType.FREQUENCY
    if re.search(
        r"\bwhen (?:was|were|did) .*\b(?:last|first)\b|\b(?:what|which) (?:date|day|year)\b|\bsince when\b", q
    ):
        return AnswerType.DATE
    # "How long is a password?" asks a length, not a time.
    if re.search(r"\bhow long\b|\bwhat duration\b|\bhow much time\b", q) and not re.search(r"\bhow long is an?\b", q):
        return AnswerType.DURATION
    if re.search(r"\bhow (?:many|much)\b|\bwhat (?:number|percentage|share|fraction|proportion)\b|\bcount of\b", q):
        return AnswerType.NUMBER
    if _ASKS_VERSION.search(question):
        return AnswerType.VERSION
    if _ASKS_CODE.search(question):
        return AnswerType.CODE
    if _SUPERLATIVE.search(question):
        return AnswerType.SUPERLATIVE
    return AnswerType.NONE


def type_satisfied(kind: str, unit_text: str, question_numbers: Iterable[str]) -> bool:
    """Does the sentence hold an answer of the kind asked? A number must be one the question did
    not give ("How many requests got a 404?" is not answered by "HTTP 404 means ...")."""
    if kind == AnswerType.NONE:
        return True
    given = {n.lower() for n in question_numbers}
    if kind == AnswerType.NUMBER:
        return any(m.group(0).lower() not in given for m in _NUMBER.finditer(unit_text))
    if kind in {AnswerType.FREQUENCY, AnswerType.DURATION} and _timed_value(unit_text):
        return True  # "probeIntervalSeconds: 1", "timeout (60 s)": a figure of a timed setting
    if kind == AnswerType.FREQUENCY:
        return bool(_FREQUENCY.search(unit_text))
    if kind == AnswerType.DATE:
        return bool(_DATE.search(unit_text))
    if kind == AnswerType.VERSION:
        return bool(_VERSION_IN_TEXT.search(unit_text))
    if kind == AnswerType.CODE:
        return any(m.group(0) not in given for m in _CODE_IN_TEXT.finditer(unit_text))
    if kind == AnswerType.SUPERLATIVE:
        # "Which site had the most ...?" is answered by a comparison: several named figures.
        return len(ranked_names(unit_text, question_numbers)) >= 2
    return bool(_DURATION.search(unit_text))


_TIME_WORDS = frozenset(
    "second seconds sec secs ms millisecond milliseconds minute minutes hour hours day days week weeks "
    "interval timeout period delay backoff ttl".split()
)


def _timed_value(unit_text: str) -> bool:
    """A figure beside a word of time, written as a setting rather than prose (`intervalSeconds: 1`)."""
    return bool(re.search(r"\d", unit_text)) and bool(set(text.terms(unit_text)) & _TIME_WORDS)


def ranked_names(unit_text: str, question_numbers: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The (name, figure) pairs of a comparison sentence ("Wyoming Alpha reported 4 incidents,
    Texas Bravo 3 and Oklahoma Delta 2"), largest first; figures the question gave are not ones."""
    given = set(question_numbers)
    pairs: dict[str, float] = {}
    for m in _NAME_COUNT.finditer(unit_text):
        name, figure = m.group(1).strip(), m.group(2).replace(",", "")
        if figure in given or name in pairs:
            continue
        pairs[name] = float(figure)
    return sorted(pairs.items(), key=lambda kv: -kv[1])


_ORDINALS = {
    "first": "1",
    "second": "2",
    "third": "3",
    "fourth": "4",
    "fifth": "5",
    "sixth": "6",
    "seventh": "7",
    "eighth": "8",
    "ninth": "9",
    "tenth": "10",
}
_CARDINALS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fifteen": "15",
    "twenty": "20",
    "thirty": "30",
}


def figures(words: Iterable[str]) -> set[str]:
    """The numbers among words, digits and words alike ("three" and "3" are both 3; "third" too),
    without thousands separators."""
    out = set()
    for w in words:
        w = w.replace(",", "")
        if w.isdigit():
            out.add(str(int(w)))
        elif w in _CARDINALS:
            out.add(_CARDINALS[w])
        elif w in _ORDINALS:
            out.add(_ORDINALS[w])
        elif w[:-2].isdigit() and w[-2:] in {"st", "nd", "rd", "th"}:
            out.add(str(int(w[:-2])))
    return out


UnitKind = text.UnitKind


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> tuple[Vectors, list[WordVectors]]: ...


@dataclass(frozen=True)
class UnitRecord:
    passage_id: str
    doc_id: str
    title: str
    source: str
    heading: str
    text: str
    kind: UnitKind
    line: int
    order: int
    vector: Vectors
    stems: frozenset[str]
    """Stems of the unit and its context (title, heading)."""
    unit_stems: frozenset[str]
    """Stems of the unit's own words."""
    word_vectors: npt.NDArray[np.float16]
    """Contextual vectors of the content words of `heading: text` (rows)."""
    n_title: int
    """How many of those rows are the title's (the first ones; 0 while the title is not read) ..."""
    n_context: int
    """... and the title's and heading's together; the rest are the unit's own words."""
    heading_stems: frozenset[str]
    raw_words: frozenset[str]
    """Every word of the unit and its context, lowercase, not stemmed (entity checks)."""
    figures: frozenset[str] = frozenset()
    """The numbers of the unit and its heading (`figures`), read once."""


def context_text(heading: str, unit: str) -> str:
    """What the model reads of a unit: the unit under its heading. (The document's title is shared
    by all its units and would pull every one towards it; its words count by stem.)"""
    return f"{heading}: {unit}" if heading else unit


def build_units(passages: Sequence[Any], encoder: Encoder, batch: int = 64) -> dict[str, list[UnitRecord]]:
    """Units of each passage (`passage_id`, `doc_id`, `title`, `source`, `text`) with vectors."""
    pending: list[tuple[Any, text.Unit, int, str]] = []
    for p in passages:
        for order, unit in enumerate(text.units(p.text)):
            pending.append((p, unit, order, context_text(unit.heading, unit.text)))
    out: dict[str, list[UnitRecord]] = {p.passage_id: [] for p in passages}
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        vectors, words = encoder.encode([c[3] for c in chunk])
        for (p, unit, order, ctx), vector, wv in zip(chunk, vectors, words, strict=True):
            keep = [i for i, w in enumerate(wv.words) if w not in text.STOPWORDS]
            unit_start = len(ctx) - len(unit.text)
            out[p.passage_id].append(
                UnitRecord(
                    passage_id=p.passage_id,
                    doc_id=p.doc_id,
                    title=p.title,
                    source=getattr(p, "source", ""),
                    heading=unit.heading,
                    text=unit.text,
                    kind=unit.kind,
                    line=unit.line,
                    order=order,
                    vector=vector,
                    stems=frozenset(text.terms(f"{p.title} {ctx}")),
                    unit_stems=frozenset(text.terms(unit.text)),
                    word_vectors=wv.vectors[keep].astype(np.float16),
                    n_title=0,
                    n_context=sum(1 for i in keep if wv.starts[i] < unit_start),
                    heading_stems=frozenset(text.terms(unit.heading)),
                    raw_words=frozenset(text.words(f"{p.title} {ctx}")),
                    figures=frozenset(figures(text.words(f"{unit.heading} {unit.text}"))),
                )
            )
    return out


MAX_WORD_VECTORS = 100_000
"""The in-process bound of `UnitIndex`: word vectors kept (float16 x 384 = 768 bytes each, so at
most about 77 MB; a 114 kB markdown corpus needs about 12,000)."""


def _rows(units: list["UnitRecord"]) -> int:
    return sum(int(u.word_vectors.shape[0]) + 1 for u in units)


class UnitIndex:
    """Each passage's units and their vectors, in process, keyed by passage id and text (so a
    replaced document is read again); bounded by `max_rows` word vectors (least recently used
    passages out; read again when asked about)."""

    def __init__(self, encoder: Encoder, max_rows: int = MAX_WORD_VECTORS) -> None:
        self.encoder = encoder
        self.max_rows = max_rows
        self._units: OrderedDict[str, tuple[str, list[UnitRecord]]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    def get(self, passages: Sequence[Any]) -> dict[str, list[UnitRecord]]:
        """Units of these passages (thread-safe; the model runs outside the lock)."""
        with self._lock:
            missing = [p for p in passages if self._units.get(p.passage_id, ("", []))[0] != p.text]
        built = build_units(missing, self.encoder) if missing else {}
        with self._lock:
            for p in missing:
                old = self._units.pop(p.passage_id, None)
                if old is not None:
                    self._count -= _rows(old[1])
                self._units[p.passage_id] = (p.text, built[p.passage_id])
                self._count += _rows(built[p.passage_id])
            out: dict[str, list[UnitRecord]] = {}
            for p in passages:
                entry = self._units.get(p.passage_id)
                if entry is None:
                    continue
                self._units.move_to_end(p.passage_id)
                out[p.passage_id] = entry[1]
            while self._count > self.max_rows and len(self._units) > len(out):
                _, (_, dropped) = self._units.popitem(last=False)
                self._count -= _rows(dropped)
            return out


@dataclass(frozen=True)
class Term:
    word: str
    stem: str
    idf: float
    vector: Vectors | None
    known: bool = False
    """The corpus uses this word somewhere."""


@dataclass(frozen=True)
class Features:
    cosine: float
    """The unit's (under its heading) cosine to the question."""
    coverage: float
    """IDF-weighted mean alignment of the question's terms with the unit and its context (heading,
    title): 1 for a word whose stem is there, else the closest contextual word vector's, mapped."""
    unit_coverage: float
    """The same with the unit's own words only."""
    gap: float
    """The most important part of the question the unit and its heading miss (the title does not
    count): max over terms of rarity x (1 - alignment), rarity = idf / the corpus's highest idf."""
    known_gap: float
    """The same over the words the corpus uses somewhere: a word the documents know but this
    sentence lacks is a stronger sign than one they never use (often a paraphrase)."""
    type_miss: float
    """1 when the question wants an answer of a kind (a figure, a frequency, a date, a comparison)
    and the unit has none; 0 otherwise."""
    entities_ok: float
    """Names, years and codes of the question all in the unit's document."""
    entities_in_unit: float
    """... and the names, years, codes and figures in the unit or its context, not only elsewhere."""
    retrieval: float
    """1 / rank of the unit's passage in the retrieval (1 for the best passage)."""
    figures_ok: bool = True
    """Every number the question names is in the unit or its heading, and the measure it asks for
    ("in bar") is stated (a gate, not a weight)."""
    hard_type: bool = False
    """The question wants a figure, a frequency, a duration or a date (a gate, not a weight)."""
    default_miss: bool = False
    """A default is asked and the unit states none (a gate)."""

    def vector(self) -> list[float]:
        return [
            self.cosine,
            self.coverage,
            self.unit_coverage,
            self.gap,
            self.known_gap,
            self.type_miss,
            self.entities_ok,
            self.entities_in_unit,
            self.retrieval,
        ]


FEATURES = (
    "cosine",
    "coverage",
    "unit_coverage",
    "gap",
    "known_gap",
    "type_miss",
    "entities_ok",
    "entities_in_unit",
    "retrieval",
)


@dataclass(frozen=True)
class Model:
    """Logistic weights over `Features` and the thresholds, fitted on the development split."""

    weights: tuple[float, ...]
    bias: float
    threshold: float
    """A unit answers when its probability is at least this."""
    band: float = 0.15
    """Other units of the answer's passage join it when within this of its probability."""
    fitted_on: str = ""

    def probability(self, f: Features) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, f.vector(), strict=True))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def load_model() -> Model:
    raw = json.loads(resources.files("tier0_services.ai").joinpath("data/reader.json").read_text(encoding="utf-8"))
    if tuple(raw["features"]) != FEATURES:
        raise ValueError(f"data/reader.json: features {raw['features']} != {FEATURES}")
    return Model(
        weights=tuple(float(w) for w in raw["weights"]),
        bias=float(raw["bias"]),
        threshold=float(raw["threshold"]),
        band=float(raw.get("band", 0.15)),
        fitted_on=str(raw.get("fitted_on", "")),
    )


@dataclass(frozen=True)
class Question:
    text: str
    vector: Vectors
    terms: tuple[Term, ...]
    kind: str
    slots: slots_mod.Slots
    entities: tuple[str, ...]
    """Names, years and status codes the answer's context must hold."""
    top_idf: float = 1.0
    """The corpus's highest idf (a word in one passage only)."""
    dimension: str = ""
    """The measure the question asks for (`asked_dimension`), '' when none."""
    figures: frozenset[str] = frozenset()
    """Numbers the question names (digits, number words, ordinals; not its years or codes): "a
    third audit" is not answered by a sentence about the second."""
    wants_default: bool = False
    """The question asks for a default ("what is the default ...", "by default"): the answer must
    state one (`states_default`)."""

    @functools.cached_property
    def term_matrix(self) -> Vectors:
        """The terms' contextual vectors as rows (a zero row for a term without one)."""
        out = np.zeros((len(self.terms), self.vector.shape[0]), dtype=np.float32)
        for j, t in enumerate(self.terms):
            if t.vector is not None:
                out[j] = t.vector
        return out


STATUS_NOUNS = frozenset(
    """status statuses code codes response responses error errors http reply replies return returns returned
    returning answer answered get gets got receive receives received""".split()
)
"""With a status code in the question, these words only say what the code is ("a 404 response",
"returns an HTTP 500"): the code itself is the entity the answer must hold."""


_COUNT_ASKED = re.compile(
    r"\b(?:which|what|list|name|give)\s+(?:(?:are|were)\s+)?(?:the\s+)?"
    r"(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten)\s+(?!of\b|percent\b|%)[a-z]",
    re.IGNORECASE,
)
""""Which two commands ...", "what are the three steps ...": how many answers are wanted, not a
figure the answer's sentence must hold."""


def _entity_words(slots: slots_mod.Slots) -> tuple[str, ...]:
    found = list(slots.names) + [str(y) for y in slots.years]
    if slots.status is not None:
        found.append(str(slots.status))
    return tuple(dict.fromkeys(found))


def question(
    question_text: str,
    vector: Vectors,
    words: WordVectors,
    slots: slots_mod.Slots,
    idf: dict[str, float],
) -> Question:
    """The question's coverage terms (content words that are not answer-type cues or entities),
    each with its contextual vector and its rarity in the corpus."""
    entities = _entity_words(slots)
    kind = answer_type(question_text)
    entity_words = {w for e in entities for w in text.words(e)}
    top_idf = max(idf.values(), default=1.0)
    vectors = {w: words.vectors[i] for i, w in enumerate(words.words)}
    found: dict[str, Term] = {}
    for w in text.words(re.sub(r"['’]s\b", "", question_text)):  # "BP's revenue": BP and revenue
        if w in text.STOPWORDS or w in QUESTION_CUES or len(w) < 2 or w in entity_words:
            continue
        if slots.status is not None and w in STATUS_NOUNS:
            continue
        if kind == AnswerType.CODE and w in CODE_WORDS:
            continue
        s = text.stem(w)
        if s in found or s in entity_words:
            continue
        found[s] = Term(w, s, idf.get(s, top_idf), vectors.get(w), s in idf)
    named = figures(text.words(question_text)) - {str(y) for y in slots.years} - {str(slots.status)}
    named -= {n for m in _COUNT_ASKED.finditer(question_text) for n in figures([m.group(1).lower()])}
    named -= (
        {"1"}
        if re.search(r"\b(?:first|one)\b", question_text, re.I) and not re.search(r"\b1\b", question_text)
        else set()
    )
    return Question(
        question_text,
        vector,
        tuple(t for t in found.values() if t.stem not in _ORDINALS and t.stem not in _CARDINALS),
        kind,
        slots,
        entities,
        top_idf,
        asked_dimension(question_text),
        frozenset(named),
        bool(_ASKS_DEFAULT.search(question_text)),
    )


def _has_entity(entity: str, words: frozenset[str]) -> bool:
    low = entity.lower()
    if low in words or low.rstrip("s") in words:
        return True
    parts = [p for p in re.split(r"[-_.&]", low) if p]
    if len(parts) < 2:
        return False
    # "WY-ALPHA" is "Wyoming Alpha" in prose: its long parts must be there, its short ones as
    # the start of a word.
    return all(p in words if len(p) >= 3 else any(w.startswith(p) for w in words) for p in parts)


SYNONYM_FLOOR = 0.35
SYNONYM_SPAN = 0.35
"""A word vector's cosine to the question's word maps to an alignment of (cos - floor) / span,
clipped to [0, 1]: morphological variants and synonyms (injured / injuries 0.76, cost / price
0.68) align, words of the same kind but another thing (compressor / turbine 0.30) do not. Set
from the development questions' pairs."""
CONTEXT_WEIGHT = {"unit": 1.0, "heading": 0.9, "title": 0.75}
"""A question word found only in the unit's heading, or only in its document's title, counts less:
the title is shared by every sentence of the document."""


def _softs(sims: Vectors) -> Vectors:
    """Per question term (columns), its alignment with the closest of these word vectors (rows):
    (cos - floor) / span clipped to [0, 1]; 0 without rows (or for a term without a vector, whose
    column is zero)."""
    if not sims.shape[0]:
        return np.zeros(sims.shape[1], dtype=np.float32)
    out: Vectors = np.clip((sims.max(axis=0) - SYNONYM_FLOOR) / SYNONYM_SPAN, 0.0, 1.0)
    return out


def _exact(stem: str, stems: frozenset[str]) -> bool:
    return stem in stems or (len(stem) >= 5 and any(s.startswith(stem[:5]) for s in stems))


@dataclass(frozen=True)
class Alignment:
    """How well a unit covers each question term: with its heading and its document's title
    (`context`), with its own words only (`own`), with its heading but not the title (`no_title`)."""

    context: list[float]
    own: list[float]
    no_title: list[float]


def align(q: Question, unit: UnitRecord, sims: Vectors | None = None) -> Alignment:
    """The unit's alignment with every term of the question; `sims` is the unit's word vectors
    times the question's term vectors (rows x terms), computed here when not given (the scorer
    computes one product per passage, not one per term and unit)."""
    if sims is None:
        sims = unit.word_vectors.astype(np.float32) @ q.term_matrix.T
    own_soft = _softs(sims[unit.n_context :])
    heading_soft = _softs(sims[unit.n_title : unit.n_context])
    title_soft = _softs(sims[: unit.n_title])
    title_stems = unit.stems - unit.unit_stems - unit.heading_stems
    context: list[float] = []
    own: list[float] = []
    no_title: list[float] = []
    for j, t in enumerate(q.terms):
        mine = 1.0 if _exact(t.stem, unit.unit_stems) else float(own_soft[j])
        own.append(mine)
        if mine >= 1.0:
            context.append(1.0)
            no_title.append(1.0)
            continue
        in_heading = 1.0 if _exact(t.stem, unit.heading_stems) else float(heading_soft[j])
        best = max(mine, CONTEXT_WEIGHT["heading"] * in_heading)
        no_title.append(best)
        in_title = 1.0 if _exact(t.stem, title_stems) else float(title_soft[j])
        context.append(max(best, CONTEXT_WEIGHT["title"] * in_title))
    return Alignment(context, own, no_title)


def features(
    q: Question,
    unit: UnitRecord,
    context_words: frozenset[str],
    rank: int,
    top_idf: float,
    sims: Vectors | None = None,
) -> Features:
    """How well this unit answers the question (pure)."""
    cosine = float(unit.vector @ q.vector)
    total = sum(t.idf for t in q.terms) or 1.0
    a = align(q, unit, sims)
    in_context = in_unit = gap = known_gap = 0.0
    for j, t in enumerate(q.terms):
        in_context += t.idf * a.context[j]
        in_unit += t.idf * a.own[j]
        miss = min(1.0, t.idf / top_idf) * (1.0 - a.no_title[j])
        gap = max(gap, miss)
        if t.known:
            known_gap = max(known_gap, miss)
    entities_ok = all(_has_entity(e, context_words) for e in q.entities)
    figures_ok = q.figures <= unit.figures and (not q.dimension or has_dimension(q.dimension, unit.text))
    unit_entities = all(_has_entity(e, unit.raw_words) for e in q.entities) and figures_ok
    return Features(
        cosine=cosine,
        coverage=in_context / total if q.terms else 1.0,
        unit_coverage=in_unit / total if q.terms else 1.0,
        gap=gap,
        known_gap=known_gap,
        type_miss=float(not type_satisfied(q.kind, unit.text, q.slots.numbers)),
        entities_ok=float(entities_ok),
        entities_in_unit=float(unit_entities),
        retrieval=1.0 / rank,
        figures_ok=figures_ok,
        hard_type=q.kind in HARD_TYPES,
        default_miss=q.wants_default and not states_default(unit.text),
    )


@dataclass(frozen=True)
class Scored:
    unit: UnitRecord
    features: Features
    probability: float


def score_units(
    q: Question,
    ranked_passages: Sequence[str],
    units: dict[str, list[UnitRecord]],
    doc_words: dict[str, frozenset[str]],
    model: Model,
) -> list[Scored]:
    """Every unit of the retrieved passages with its probability of answering, best first."""
    scored: list[Scored] = []
    top_idf = max([t.idf for t in q.terms] + [q.top_idf], default=1.0)
    terms_t = q.term_matrix.T
    # A longer document is cut into several passages, and the one ranked first is not always the
    # one holding the answer: every passage of a document is read at its best passage's rank, so
    # its sentences compete by what they say, not by which cut they fell into.
    doc_rank: dict[str, int] = {}
    for rank, pid in enumerate(ranked_passages, start=1):
        mine = units.get(pid, [])
        if mine:
            doc_rank.setdefault(mine[0].doc_id, rank)
    for pid in ranked_passages:
        mine = units.get(pid, [])
        if not mine:
            continue
        rank = doc_rank[mine[0].doc_id]
        # One product of the passage's word vectors with the question's terms, sliced per unit.
        sims = np.concatenate([u.word_vectors for u in mine]).astype(np.float32) @ terms_t
        row = 0
        for unit in mine:
            rows = int(unit.word_vectors.shape[0])
            words = doc_words.get(unit.doc_id, unit.raw_words)
            f = features(q, unit, words, rank, top_idf, sims[row : row + rows])
            row += rows
            scored.append(Scored(unit, f, model.probability(f)))
    scored.sort(key=lambda s: -s.probability)
    return scored


def answer_units(scored: list[Scored], model: Model, max_units: int = 3, entities: Sequence[str] = ()) -> list[Scored]:
    """The best unit that can answer (`can_answer`) and the units of its passage close to it, in
    reading order; [] when it does not clear the threshold. When the best is a list item or table
    row, of the rows of its document within `band` of it the one naming most of the question's
    `entities` in its own words is preferred to one that has them only from its heading or title
    ("when is a RegionPair in phase Pending?" under a title naming every phase: the Pending row,
    not the Failed one)."""
    eligible = [s for s in scored if can_answer(s.features)]
    if not eligible:
        return []
    best = eligible[0]
    if best.probability < model.threshold:
        return []
    if entities and best.unit.kind == "item":
        floor = max(model.threshold, best.probability - model.band)
        near = [
            s
            for s in eligible
            if s.unit.doc_id == best.unit.doc_id and s.unit.kind == "item" and s.probability >= floor
        ]
        named = [_named(entities, s.unit) for s in near]
        if max(named) > _named(entities, best.unit):
            best = near[named.index(max(named))]
            # Its neighbours are rows naming the entity too, not the rows it was preferred to.
            eligible = [s for s in eligible if _named(entities, s.unit) >= max(named)]
    chosen = [best]
    for s in eligible:
        if s is best:
            continue
        if len(chosen) >= max_units:
            break
        if s.unit.passage_id == best.unit.passage_id and s.probability >= max(
            model.threshold, best.probability - model.band
        ):
            chosen.append(s)
    if best.unit.kind == "item":
        # A list item is one thought: its other sentences go with the one that answers.
        for s in scored:
            same_item = s.unit.passage_id == best.unit.passage_id and s.unit.line == best.unit.line
            if same_item and s.unit.kind == "item" and s not in chosen and len(chosen) < max_units + 2:
                chosen.append(s)
    if best.features.type_miss and not best.features.hard_type:
        # "Which site had the most ...?": when the best sentence compares nothing, the comparison
        # of its passage (it reads on from the answer), or one of its document that clears the
        # bar, goes with it.
        comparing = next(
            (
                s
                for s in eligible
                if not s.features.type_miss
                and (
                    s.unit.passage_id == best.unit.passage_id
                    or (s.unit.doc_id == best.unit.doc_id and s.probability >= model.threshold)
                )
            ),
            None,
        )
        if comparing is not None and comparing not in chosen:
            chosen.append(comparing)
    return sorted(chosen, key=lambda s: (s.unit.passage_id != best.unit.passage_id, s.unit.order))


def _named(entities: Sequence[str], unit: UnitRecord) -> int:
    """How many of the entities the unit's own words hold (not its heading's or title's)."""
    words = frozenset(text.words(unit.text))
    return sum(_has_entity(e, words) for e in entities)


def bridge(scored: list[Scored], model: Model) -> tuple[Scored, tuple[str, ...]] | None:
    """The best unit, when it is about what is asked (it clears the bar, the question's names are
    in its document) but lacks the kind of answer asked (a figure, a default), and names settings
    (`failureThreshold`, `stallAfterSeconds`): with the settings it names. READMEs describe a
    setting in prose and give its value elsewhere, in a table of defaults."""
    if not scored:
        return None
    top = scored[0]
    f = top.features
    if top.probability < model.threshold or not f.entities_ok or not f.figures_ok:
        return None
    if not ((f.hard_type and f.type_miss) or f.default_miss):
        return None
    names = tuple(dict.fromkeys(m.group(0) for m in _SETTING_NAME.finditer(top.unit.text)))
    return (top, names) if names else None


def hop(via: Scored, names: Sequence[str], candidates: list[Scored]) -> Scored | None:
    """Of `candidates` (units of other passages), the best that answers the question's kind
    (`can_answer`: it states the figure or the default) by giving one of the settings `names` its
    value (`failureThreshold (3)`, `stallAfterSeconds: 10`)."""
    valued = re.compile(
        r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\s*(?:\(\s*[^()\s][^()]{0,24}\)|[:=]\s*\S)"
    )
    for s in candidates:  # best first
        if s.unit is not via.unit and can_answer(s.features) and valued.search(s.unit.text):
            return s
    return None


def can_answer(f: Features) -> bool:
    """The gates: the question's names, years and codes are in the unit's document, its figures in
    the unit, and a unit without the kind of answer asked for (a figure, a frequency, a duration, a
    date, a default) does not answer."""
    return bool(f.entities_ok) and f.figures_ok and not (f.hard_type and f.type_miss) and not f.default_miss


@dataclass(frozen=True)
class Shortfall:
    """Why the closest units do not answer: what the question names that they lack."""

    missing_entities: tuple[str, ...] = ()
    missing_terms: tuple[str, ...] = ()
    wrong_type: str = ""
    held_years: tuple[str, ...] = ()
    """The years the closest document does name (said beside a year it lacks)."""


def shortfall(q: Question, scored: list[Scored], doc_words: dict[str, frozenset[str]]) -> Shortfall:
    if not scored:
        return Shortfall()
    best = scored[0]
    words = doc_words.get(best.unit.doc_id, best.unit.raw_words)
    missing_entities = tuple(e for e in q.entities if not _has_entity(e, words))
    missing_terms = tuple(
        t.word
        for t in q.terms
        if t.stem not in best.unit.stems
        and not any(t.stem in s.unit.stems for s in scored[:3] if s.unit.passage_id == best.unit.passage_id)
    )
    wrong = q.kind if q.kind and best.features.type_miss else ""
    years = tuple(sorted(w for w in words if re.fullmatch(r"(?:19[5-9]|20[0-9])[0-9]", w)))
    return Shortfall(missing_entities, missing_terms, wrong, years)


def explain(short: Shortfall, titles: list[str]) -> str:
    gaps: list[str] = []
    years = [e for e in short.missing_entities if re.fullmatch(r"\d{4}", e)]
    others = [e for e in short.missing_entities if e not in years]
    if others:
        gaps.append(f"they do not mention {', '.join(others)}")
    if years:
        held = f"they cover {', '.join(short.held_years)}" if short.held_years else "they name no year"
        gaps.append(f"{held}, not {', '.join(years)}")
    if short.missing_terms:
        gaps.append(f"no sentence of theirs says anything about {', '.join(repr(t) for t in short.missing_terms)}")
    if short.wrong_type:
        wanted = {
            "number": "a figure",
            "frequency": "how often",
            "duration": "how long",
            "date": "a date",
            "superlative": "a comparison",
            "code": "a status code",
            "version": "a version",
        }[short.wrong_type]
        gaps.append(f"none of their sentences gives {wanted} for what is asked")
    closest = "; ".join(dict.fromkeys(titles)) or "none"
    detail = "; ".join(gaps) if gaps else "no sentence of theirs answers it"
    return (
        "I cannot answer this from the documents I hold: the closest ones "
        f"({closest}) are near it but do not contain the answer: {detail}."
    )


# --- enumerations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    doc_id: str
    heading: str
    units: list[UnitRecord] = field(default_factory=list)


def heading_match(q: Question, heading: str) -> float:
    """IDF-weighted share of the question's terms in a section's heading (the qualifier that picks
    "economic" over "social" statements)."""
    head = set(text.terms(heading))
    total = sum(t.idf for t in q.terms) or 1.0
    return sum(t.idf for t in q.terms if t.stem in head) / total


def enumerate_sections(q: Question, sections: list[Section], best_doc: str, tolerance: float = 0.05) -> list[Section]:
    """The sections of the best document whose heading matches the question best (all that tie);
    the first section holding the best unit when no heading matches."""
    mine = [s for s in sections if s.doc_id == best_doc and s.units]
    if not mine:
        return []
    scores = [heading_match(q, s.heading) for s in mine]
    top = max(scores)
    if top <= 0:
        return []
    return [s for s, sc in zip(mine, scores, strict=True) if sc >= top - tolerance]


def item_texts(units: list[UnitRecord]) -> list[str]:
    """The items as written: the sentences of one list item (one line of its passage) joined."""
    out: list[str] = []
    seen: dict[tuple[str, int], int] = {}
    for u in units:
        key = (u.passage_id, u.line)
        if u.kind == "item" and key in seen:
            out[seen[key]] = f"{out[seen[key]]} {u.text}"
        else:
            seen[key] = len(out)
            out.append(u.text)
    return out


def enumerate_items(q: Question, units: list[UnitRecord]) -> list[UnitRecord]:
    """Of the chosen sections' units, the items of the kind asked: when the question's terms split
    them (some items name "economic", others do not), those naming any of the splitting terms."""
    items = [u for u in units if not u.text.upper().startswith(text.SAMPLE_LABEL)]
    splitting = [t for t in q.terms if 0 < sum(t.stem in u.unit_stems for u in items) < len(items)]
    if splitting:
        items = [u for u in items if any(t.stem in u.unit_stems for t in splitting)]
    return items
