"""Does the evidence cover what the question names? (pure)

An answer is given only when the passages it cites mention every entity of the question (company
or other proper name, site, year, status code) and most of its content words; otherwise the
question is about something the documents do not hold ("BP's stock price" when they hold BP's
incident count, "Shell in 2019" when they hold BP in 2024) and the answer abstains, saying what the
closest documents do cover.
"""

import re
from dataclasses import dataclass

from tier0_services.ai.rag import text

MIN_TERM_COVERAGE = 0.5
GENERIC = frozenset(
    """many much number total count mean means meaning happen happens give find know information
    info detail details say says said kind kinds thing things way ways need needs use used
    figure figures value values happened report reported there here""".split()
)
_NAME = re.compile(r"\b[A-Z][A-Za-z0-9&]*(?:-[A-Za-z0-9]+)*\b")
_YEAR = re.compile(r"\b(19[5-9][0-9]|20[0-9][0-9])\b")
_CODE = re.compile(r"\b([1-5][0-9][0-9])\b")
_NOT_NAMES = frozenset(
    """what how which who whom whose when where why list give show tell describe summarize summarise
    explain is are was were do does did can could should would will i in on at for of the a an and
    or if please name any all our my me there this that these those enumerate according""".split()
)


@dataclass(frozen=True)
class Constraints:
    names: tuple[str, ...]
    years: tuple[str, ...]
    codes: tuple[str, ...]
    terms: tuple[str, ...]
    """Content words other than the entities above."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    missing_names: tuple[str, ...] = ()
    missing_years: tuple[str, ...] = ()
    missing_codes: tuple[str, ...] = ()
    missing_terms: tuple[str, ...] = ()


def _clean(question: str) -> str:
    return re.sub(r"['’]s\b", "", question)


def constraints(question: str) -> Constraints:
    q = _clean(question)
    names: list[str] = []
    start = len(q) - len(q.lstrip())
    for match in _NAME.finditer(q):
        token = match.group(0)
        if token.lower() in _NOT_NAMES:
            continue
        # A capital at the start of the question is grammar; elsewhere (or all caps) it is a name.
        if (token.isupper() and len(token) >= 2) or match.start() != start:
            names.append(token)
    years = tuple(dict.fromkeys(_YEAR.findall(q)))
    codes = tuple(c for c in dict.fromkeys(_CODE.findall(_YEAR.sub(" ", q))))
    entity_words = {w for name in names for w in text.words(name)} | set(years) | set(codes)
    terms = tuple(
        dict.fromkeys(
            t for t in text.terms(q) if t not in GENERIC and t not in entity_words and t.rstrip("s") not in entity_words
        )
    )
    return Constraints(tuple(dict.fromkeys(names)), years, codes, terms)


def _has_term(term: str, evidence_terms: set[str]) -> bool:
    if term in evidence_terms:
        return True
    # A light stem match: "inspections"/"inspection", "measured"/"measurement" share 5 letters.
    return len(term) >= 5 and any(e.startswith(term[:5]) for e in evidence_terms if len(e) >= 5)


def _has_name(name: str, evidence_words: set[str]) -> bool:
    if name.lower() in evidence_words:
        return True
    parts = [p for p in re.split(r"[-_.&]", name.lower()) if p]
    if not parts:
        return True
    # "WY-ALPHA" is "Wyoming Alpha" in prose: the distinctive part must be there.
    return all(p in evidence_words for p in parts if len(p) >= 3) and any(len(p) >= 3 for p in parts)


def check(c: Constraints, evidence: str, min_term_coverage: float = MIN_TERM_COVERAGE) -> Verdict:
    evidence_words = set(text.words(evidence))
    evidence_terms = set(text.terms(evidence))
    missing_names = tuple(n for n in c.names if not _has_name(n, evidence_words))
    missing_years = tuple(y for y in c.years if y not in evidence_words)
    missing_codes = tuple(code for code in c.codes if code not in evidence_words)
    uncovered = tuple(t for t in c.terms if not _has_term(t, evidence_terms))
    weak_terms = bool(c.terms) and (len(c.terms) - len(uncovered)) / len(c.terms) < min_term_coverage
    ok = not (missing_names or missing_years or missing_codes or weak_terms)
    return Verdict(ok, missing_names, missing_years, missing_codes, uncovered if weak_terms else ())


def covered_years(evidence: str) -> list[str]:
    return sorted(set(_YEAR.findall(evidence)))


def explain(v: Verdict, titles: list[str], evidence: str) -> str:
    """The abstention text: what the question asks that the closest documents do not cover."""
    gaps: list[str] = []
    if v.missing_names:
        gaps.append(f"they do not mention {', '.join(v.missing_names)}")
    if v.missing_years:
        years = covered_years(evidence)
        held = f"they cover {', '.join(years)}" if years else "they name no year"
        gaps.append(f"{held}, not {', '.join(v.missing_years)}")
    if v.missing_codes:
        gaps.append(f"they do not mention status {', '.join(v.missing_codes)}")
    if v.missing_terms:
        gaps.append(f"they say nothing about {', '.join(repr(t) for t in v.missing_terms)}")
    closest = "; ".join(dict.fromkeys(titles)) or "none"
    return (
        "I cannot answer this from the documents I hold: the closest ones "
        f"({closest}) do not cover it: {'; '.join(gaps)}."
    )
