"""Pure vector-search logic: exact top-k in numpy, and the RediSearch KNN commands and replies.

Both search paths read the same stored float32 vectors (`embedding` field of a HASH), so they
return the same neighbours; the numpy path is what runs on plain Redis, the FT path when the
RediSearch module is loaded. Scores are cosine similarities in both (RediSearch's COSINE distance
is `1 - cos`).
"""

import re
from collections.abc import Mapping, Sequence

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


def create_index_command(index: str, prefix: str, dim: int, tag_fields: Sequence[str]) -> list[str]:
    """FT.CREATE over HASHes under `prefix`: a FLAT cosine FLOAT32 vector field plus TAG fields."""
    cmd = ["FT.CREATE", index, "ON", "HASH", "PREFIX", "1", prefix, "SCHEMA"]
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
        "FT.SEARCH", index, expr,
        "PARAMS", "2", "vec", to_bytes(query),
        "SORTBY", DISTANCE_ALIAS, "ASC",
        "RETURN", "1", DISTANCE_ALIAS,
        "LIMIT", "0", str(k),
        "DIALECT", "2",
    ]  # fmt: skip


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
