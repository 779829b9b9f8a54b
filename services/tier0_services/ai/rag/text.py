"""Text utilities shared by chunking, BM25 and the extractive answerer (pure)."""

import re

_WORD = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])")
STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    get give had has have having he her here hers him his how i if in into is it its itself just
    me more most my no nor not of off on once only or other our out over own same she should so
    some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
    tell show list describe please occurred occur happened did many much""".split()
)


SAMPLE_LABEL = "SAMPLE DATA"
"""Paragraphs starting so label a sample note; they are not passages."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def terms(text: str) -> list[str]:
    """Content words for BM25 (stopwords out, a light plural fold: `incidents` -> `incident`)."""
    out = []
    for w in words(text):
        if w in STOPWORDS or len(w) < 2:
            continue
        if len(w) > 4 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def chunk(text: str, max_chars: int = 700) -> list[str]:
    """Split a note into passages: paragraphs (blank-line separated), each heading kept with the
    paragraphs under it, long paragraphs cut at sentence ends."""
    passages: list[str] = []
    heading = ""
    for raw in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in raw.splitlines() if line.strip()]
        while lines and lines[0].startswith("#"):
            heading = lines.pop(0).lstrip("#").strip()
        block = " ".join(lines)
        if not block:
            continue
        if block.upper().startswith(SAMPLE_LABEL):
            continue  # the label says what the note is; the citation's `source` carries it
        prefix = f"{heading}: " if heading else ""
        current = ""
        for sentence in sentences(block):
            if current and len(prefix) + len(current) + len(sentence) + 1 > max_chars:
                passages.append(prefix + current)
                current = ""
            current = f"{current} {sentence}".strip()
        if current:
            passages.append(prefix + current)
    return passages
