"""Vector search logic without Redis: exact numpy top-k, and the RediSearch commands (FT.CREATE,
the KNN FT.SEARCH with TAG filters and escaping) and reply parsing used when the module is loaded."""

import numpy as np
import pytest

from tier0_services.ai import vectors

pytestmark = pytest.mark.unit


def unit(rows: list[list[float]]) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float32)
    out: np.ndarray = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


def test_top_k_is_exact_and_respects_the_mask() -> None:
    rng = np.random.default_rng(1)
    matrix = unit(rng.normal(size=(500, 16)).tolist())
    query = matrix[42] + 0.01
    best = vectors.top_k(matrix, query.astype(np.float32), 5)
    brute = sorted(range(500), key=lambda i: -float(matrix[i] @ query))[:5]
    assert [i for i, _ in best] == brute and best[0][0] == 42
    mask = np.zeros(500, dtype=bool)
    mask[[3, 7, 9]] = True
    masked = vectors.top_k(matrix, query.astype(np.float32), 5, mask)
    assert sorted(i for i, _ in masked) == [3, 7, 9]
    assert vectors.top_k(matrix, query.astype(np.float32), 5, np.zeros(500, dtype=bool)) == []
    assert vectors.top_k(matrix[:0], query.astype(np.float32), 5) == []


def test_ties_break_by_row_order() -> None:
    matrix = unit([[1, 0], [1, 0], [0, 1]])
    assert [i for i, _ in vectors.top_k(matrix, np.array([1, 0], dtype=np.float32), 2)] == [0, 1]


def test_bytes_round_trip_is_little_endian_float32() -> None:
    v = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    blob = vectors.to_bytes(v)
    assert blob == b"\x00\x00\xc0?\x00\x00\x00\xc0\x00\x00\x80>"
    np.testing.assert_array_equal(vectors.from_bytes(blob), v)


def test_tag_escaping_and_filters() -> None:
    assert vectors.escape_tag("WY-ALPHA") == "WY\\-ALPHA"
    assert vectors.escape_tag("a b.c,d{e}") == "a\\ b\\.c\\,d\\{e\\}"
    assert vectors.filter_expression({}) == "*"
    assert vectors.filter_expression({"site_id": None, "device_type": ""}) == "*"
    expr = vectors.filter_expression({"site_id": "WY-ALPHA", "device_type": "turbine", "model": "m/1"})
    assert expr == "@device_type:{turbine} @model:{m\\/1} @site_id:{WY\\-ALPHA}"


def test_create_index_command() -> None:
    cmd = vectors.create_index_command("idx:images:384", "embedding:", 384, ("site_id", "device_type"))
    assert cmd == [
        "FT.CREATE",
        "idx:images:384",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "embedding:",
        "SCHEMA",
        "embedding",
        "VECTOR",
        "FLAT",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        "384",
        "DISTANCE_METRIC",
        "COSINE",
        "site_id",
        "TAG",
        "device_type",
        "TAG",
    ]


def test_knn_command() -> None:
    q = np.array([0.6, 0.8], dtype=np.float32)
    cmd = vectors.knn_command("idx:images:2", q, 3, {"site_id": "TX-BRAVO", "device_type": None})
    assert cmd == [
        "FT.SEARCH",
        "idx:images:2",
        "(@site_id:{TX\\-BRAVO})=>[KNN 3 @embedding $vec AS vector_distance]",
        "PARAMS",
        "2",
        "vec",
        vectors.to_bytes(q),
        "SORTBY",
        "vector_distance",
        "ASC",
        "RETURN",
        "1",
        "vector_distance",
        "LIMIT",
        "0",
        "3",
        "DIALECT",
        "2",
    ]
    unfiltered = vectors.knn_command("i", q, 1, {})
    assert unfiltered[2] == "(*)=>[KNN 1 @embedding $vec AS vector_distance]"


def test_parse_knn_reply_turns_distance_into_cosine() -> None:
    reply = [
        2,
        b"embedding:WY-ALPHA_turbine_Turbine1.png",
        [b"vector_distance", b"0.125"],
        b"embedding:TX-BRAVO_turbine_Turbine7.png",
        [b"vector_distance", b"0.5"],
    ]
    assert vectors.parse_knn_reply(reply, "embedding:") == [
        ("WY-ALPHA_turbine_Turbine1.png", 0.875),
        ("TX-BRAVO_turbine_Turbine7.png", 0.5),
    ]
    assert vectors.parse_knn_reply([0], "embedding:") == []
