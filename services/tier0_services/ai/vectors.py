"""Pure vector-search logic: exact top-k in numpy, and the RediSearch KNN commands and replies.

Both search paths read the same stored float32 vectors (`embedding` field of a HASH), so they
return the same neighbours; the numpy path is what runs on plain Redis, the FT path when the
RediSearch module is loaded. Scores are cosine similarities in both (RediSearch's COSINE distance
is `1 - cos`).
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tier0_services.ai.providers import Vectors

EMBEDDING_FIELD = "embedding"
DISTANCE_ALIAS = "vector_distance"
_TAG_SPECIAL = re.compile(r"([^A-Za-z0-9_])")


def to_bytes(vector: npt.NDArray[np.float32]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> npt.NDArray[np.float32]:
    return np.frombuffer(blob, dtype="<f4")


def top_k(
    matrix: Vectors, query: npt.NDArray[np.float32], k: int, mask: npt.NDArray[np.bool_] | None = None
) -> list[tuple[int, float]]:
    """Exact cosine top-k over L2-normalised rows: (row, score) best first; ties by row order."""
    if matrix.shape[0] == 0 or k <= 0:
        return []
    scores = matrix @ np.asarray(query, dtype=np.float32)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    n = int(np.count_nonzero(np.isfinite(scores)))
    k = min(k, n)
    if k == 0:
        return []
    if k < scores.shape[0]:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(scores.shape[0])
    best = sorted(part.tolist(), key=lambda i: (-float(scores[i]), i))[:k]
    return [(i, float(scores[i])) for i in best]


def escape_tag(value: str) -> str:
    """RediSearch TAG value escaping: every character but letters, digits and `_` gets a backslash."""
    return _TAG_SPECIAL.sub(r"\\\1", value)


def filter_expression(filters: Mapping[str, str | None]) -> str:
    parts = [f"@{name}:{{{escape_tag(value)}}}" for name, value in sorted(filters.items()) if value]
    return " ".join(parts) if parts else "*"


@dataclass(frozen=True)
class IndexSchema:
    """What decides whether an existing index still fits: vector dimension and model filter."""

    dim: int
    filter: str | None


def model_filter(model: str) -> str:
    """FT.CREATE FILTER expression indexing only the HASHes of one embedding model."""
    return f'@model=="{model}"'


def create_index_command(
    index: str, prefix: str, dim: int, tag_fields: Sequence[str], filter_expr: str | None = None
) -> list[str]:
    """FT.CREATE over HASHes under `prefix`: a FLAT (exact) cosine FLOAT32 vector field plus TAG
    fields, optionally only the HASHes matching `filter_expr`."""
    cmd = ["FT.CREATE", index, "ON", "HASH", "PREFIX", "1", prefix]
    if filter_expr:
        cmd += ["FILTER", filter_expr]
    cmd += ["SCHEMA"]
    cmd += [EMBEDDING_FIELD, "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(dim)]
    cmd += ["DISTANCE_METRIC", "COSINE"]
    for name in tag_fields:
        cmd += [name, "TAG"]
    return cmd


def knn_command(
    index: str, query: npt.NDArray[np.float32], k: int, filters: Mapping[str, str | None]
) -> list[str | bytes]:
    """FT.SEARCH for the k nearest under the filters (DIALECT 2 for the KNN syntax and PARAMS)."""
    expr = f"({filter_expression(filters)})=>[KNN {k} @{EMBEDDING_FIELD} $vec AS {DISTANCE_ALIAS}]"
    return [
        "FT.SEARCH",
        index,
        expr,
        "PARAMS",
        "2",
        "vec",
        to_bytes(query),
        "SORTBY",
        DISTANCE_ALIAS,
        "ASC",
        "RETURN",
        "1",
        DISTANCE_ALIAS,
        "LIMIT",
        "0",
        str(k),
        "DIALECT",
        "2",
    ]


def parse_knn_reply(reply: Sequence[object], prefix: str) -> list[tuple[str, float]]:
    """RESP2 FT.SEARCH reply `[total, key, [field, value, ...], ...]` -> (id, cosine) best first."""
    out: list[tuple[str, float]] = []
    items = list(reply[1:])
    for key, fields in zip(items[0::2], items[1::2], strict=False):
        name = key.decode() if isinstance(key, bytes) else str(key)
        values = list(fields) if isinstance(fields, list | tuple) else []
        pairs = dict(zip(values[0::2], values[1::2], strict=False))
        distance = pairs.get(DISTANCE_ALIAS.encode(), pairs.get(DISTANCE_ALIAS))
        if distance is None:
            continue
        text = distance.decode() if isinstance(distance, bytes) else str(distance)
        out.append((name.removeprefix(prefix), 1.0 - float(text)))
    return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: object) -> dict[str, object]:
    items = list(flat) if isinstance(flat, list | tuple) else []
    return {_text(k): v for k, v in zip(items[0::2], items[1::2], strict=False)}


def parse_index_schema(info: object) -> IndexSchema | None:
    """The vector dimension and FILTER of an `FT.INFO` reply (RESP2 flat lists); None without a
    vector field."""
    top = _pairs(info)
    definition = _pairs(top.get("index_definition"))
    raw_filter = definition.get("filter")
    for attribute in top.get("attributes") or []:  # type: ignore[attr-defined]
        fields = _pairs(attribute)
        if _text(fields.get("type", "")) == "VECTOR":
            dim = fields.get("dim")
            if dim is None:
                return None
            return IndexSchema(dim=int(_text(dim)), filter=_text(raw_filter) if raw_filter else None)
    return None


def is_indexing(info: object) -> bool:
    """True while RediSearch is still indexing existing HASHes (after FT.CREATE)."""
    top = _pairs(info)
    return _text(top.get("indexing", "0")) not in {"0", "0.0"}


def is_unknown_index(exc: Exception) -> bool:
    text = str(exc).lower()
    return "unknown index" in text or "no such index" in text
