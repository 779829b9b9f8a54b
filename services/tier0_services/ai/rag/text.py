"""Text utilities shared by chunking, BM25, routing and the reader (pure).

Documents are markdown written by anyone: prose, bullet lists, tables, code blocks under
headings. `chunk` turns a note into passages (what retrieval ranks and citations quote); inside a
passage every line is one readable unit source: a prose paragraph (split into sentences by
`units`), a list item (`- ` kept as its mark), a table row (`header: cell; ...`) or a code line.
So the reader can answer from the one sentence, item or row that answers, and an enumeration can
return every item of a list whatever the prose around it.
"""

import re
from dataclasses import dataclass
from typing import Literal

_WORD = re.compile(r"[a-z0-9]+(?:[.'_-][a-z0-9]+)*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"(`])")
_ABBREVIATION = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|approx|no|fig)\.$", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_HTML = re.compile(r"<!--.*?-->|<[^>]+>", re.DOTALL)
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
ITEM_MARK = "- "
"""How a list item or table row starts inside a passage line."""
MAX_CODE_LINES = 12
UnitKind = Literal["sentence", "item", "code"]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """A light plural fold: `incidents` -> `incident`, `policies` -> `policy`."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


_CASED_WORD = re.compile(r"[A-Za-z0-9]+(?:[.'_-][A-Za-z0-9]+)*")
_IDENTIFIER = re.compile(r"[._-]|[a-z][A-Z]")
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def terms(text: str) -> list[str]:
    """Content words for BM25 and coverage (stopwords out, plurals folded). An identifier counts
    whole and by its parts: `spec.failover.mode`, `failureThreshold` and `TIER0_AI_PROVIDER` are
    also "failover" and "mode", "failure" and "threshold", "provider", as prose says them."""
    out: list[str] = []
    for match in _CASED_WORD.finditer(text):
        raw = match.group(0)
        word = raw.lower()
        if word not in STOPWORDS and len(word) >= 2:
            out.append(stem(word))
        if _IDENTIFIER.search(raw):
            parts = [p.lower() for p in _PART.findall(raw)]
            if len(parts) > 1:
                out.extend(stem(p) for p in parts if p not in STOPWORDS and len(p) >= 2)
    return out


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for part in _SENTENCE.split(text.strip()):
        part = part.strip()
        if not part:
            continue
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def plain(line: str) -> str:
    """Markdown inline markup out: links keep their text, emphasis and code marks go."""
    line = _LINK.sub(r"\1", line)
    line = _HTML.sub("", line)
    line = re.sub(r"(\*\*|__|`)", "", line)
    line = re.sub(r"(?<!\w)[*_](\S[^*_]*\S|\S)[*_](?!\w)", r"\1", line)
    return line.strip()


def _cells(row: str) -> list[str]:
    """A table row's cells; an escaped pipe (`Automatic\\|Manual`) is part of its cell."""
    inner = row.strip().removeprefix("|")
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [plain(c.replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", inner)]


@dataclass(frozen=True)
class Unit:
    """One readable piece of a passage: a sentence of prose, a list item / table row, or a line
    of code, with the heading it sits under."""

    heading: str
    text: str
    kind: UnitKind
    line: int
    """Which line of the passage it comes from (sentences of one paragraph or item share it)."""


def _heading_of(passage_text: str) -> tuple[str, str]:
    """(heading, body) of a passage (`Heading: body`); the heading is '' when there is none. A
    heading holds no ": " (`chunk` writes it so) and no sentence end; it may hold a dotted name
    (`spec.failover`)."""
    head, sep, body = passage_text.partition(": ")
    if (
        sep
        and head
        and len(head) <= 100
        and "\n" not in head
        and not head.startswith(ITEM_MARK)
        and not re.search(r"[.!?](?:\s|$)", head)
    ):
        return head, body
    return "", passage_text


def units(passage_text: str) -> list[Unit]:
    heading, body = _heading_of(passage_text)
    out: list[Unit] = []
    for n, line in enumerate(body.split("\n")):
        line = line.strip()
        if not line or line.upper().startswith(SAMPLE_LABEL):
            continue
        if line.startswith(ITEM_MARK):
            # A long item reads sentence by sentence too; its sentences share the item's line.
            out.extend(Unit(heading, s, "item", n) for s in sentences(line[len(ITEM_MARK) :].strip()))
        elif line.startswith("$ "):
            out.append(Unit(heading, line[2:].strip(), "code", n))
        else:
            out.extend(Unit(heading, s, "sentence", n) for s in sentences(line))
    return out


def _blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """(heading path, kind, lines) blocks of a markdown note: a paragraph, a list, a table or a
    code block each; `kind` is prose, list or code."""
    blocks: list[tuple[str, str, list[str]]] = []
    headings: list[tuple[int, str]] = []
    current: list[str] = []
    kind = "prose"
    header: list[str] = []
    in_code = False

    def heading() -> str:
        names = [h for _, h in headings[-2:]]
        return " - ".join(names)

    def flush() -> None:
        nonlocal current, kind, header
        if current:
            blocks.append((heading(), kind, current))
        current, kind, header = [], "prose", []

    for raw in text.splitlines():
        if _FENCE.match(raw):
            if in_code:
                flush()
                in_code = False
            else:
                flush()
                in_code, kind = True, "code"
            continue
        if in_code:
            if raw.strip() and len(current) < MAX_CODE_LINES:
                current.append(f"$ {raw.strip()}")
            continue
        line = raw.rstrip()
        if not line.strip():
            flush()
            continue
        stripped = line.strip()
        if stripped.startswith("#"):
            flush()
            level = len(stripped) - len(stripped.lstrip("#"))
            # ": " in a heading would end it inside a passage (`Heading: body`).
            name = plain(stripped.lstrip("#").strip()).replace(": ", " - ")
            headings = [(lvl, h) for lvl, h in headings if lvl < level] + [(level, name)]
            continue
        if stripped.startswith("|"):
            if kind != "table":
                flush()
                kind = "table"
            if _TABLE_RULE.match(stripped):
                continue
            cells = _cells(stripped)
            if not header:
                header = cells
                continue
            pairs = [f"{h}: {c}" if h else c for h, c in zip(header, cells, strict=False) if c]
            current.append(ITEM_MARK + "; ".join(pairs))
            continue
        if _BULLET.match(line):
            if kind != "list":
                flush()
                kind = "list"
            current.append(ITEM_MARK + plain(_BULLET.sub("", line)))
            continue
        if kind in {"list", "table"} and raw[:1].isspace() and current:
            current[-1] = f"{current[-1]} {plain(stripped)}"  # a list item's continuation line
            continue
        if kind in {"list", "table"}:
            flush()
        current.append(plain(stripped))
    flush()
    out: list[tuple[str, str, list[str]]] = []
    for head, block_kind, lines in blocks:
        if block_kind == "prose":
            lines = [" ".join(lines)]
        out.append((head, "list" if block_kind == "table" else block_kind, lines))
    return out


_META_LINE = re.compile(r"^[A-Za-z][\w-]{0,30}:\s+\S")


def without_front_matter(text: str) -> str:
    """The note without its metadata: a `---` YAML block, or the `key: value` lines (`tags:`,
    `source:`, `author:`) that open it under its title, are about the document, not sentences of
    it (an answer quoting "tags: operator, failover" answers nothing)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and lines[i].strip() == "---":
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "---"), None)
        if end is not None:
            return "\n".join(lines[:i] + lines[end + 1 :])
    if i < len(lines) and lines[i].lstrip().startswith("# "):
        i += 1
    start = i
    while i < len(lines) and _META_LINE.match(lines[i]) and not lines[i].lstrip().startswith(("|", "-", "*")):
        i += 1
    if i > start and (i == len(lines) or not lines[i].strip()):
        return "\n".join(lines[:start] + lines[i:])
    return text


def chunk(text: str, max_chars: int = 700) -> list[str]:
    """Split a note into passages: each paragraph, list, table or code block under its heading
    (`Heading: ...`), one unit source per line, long blocks cut at sentence or item ends; its
    front matter left out."""
    passages: list[str] = []
    for heading, _, lines in _blocks(without_front_matter(text)):
        if lines and lines[0].upper().startswith(SAMPLE_LABEL):
            continue  # the label says what the note is; the citation's `source` carries it
        prefix = f"{heading}: " if heading else ""
        pieces: list[str] = []
        for line in lines:
            if line.startswith((ITEM_MARK, "$ ")):
                pieces.append(line)
            else:
                pieces.extend(sentences(line))
        current: list[str] = []
        size = 0
        for piece in pieces:
            if current and len(prefix) + size + len(piece) + 1 > max_chars:
                passages.append(prefix + _join(current))
                current, size = [], 0
            current.append(piece)
            size += len(piece) + 1
        if current:
            passages.append(prefix + _join(current))
    return passages


def _join(pieces: list[str]) -> str:
    """Sentences of prose on one line; items and code lines on their own."""
    out = ""
    for piece in pieces:
        if not out:
            out = piece
        elif piece.startswith((ITEM_MARK, "$ ")) or out.endswith("\n") or _last_line(out).startswith((ITEM_MARK, "$ ")):
            out = f"{out}\n{piece}"
        else:
            out = f"{out} {piece}"
    return out


def _last_line(text: str) -> str:
    return text.rsplit("\n", 1)[-1]
