"""The C HNSW traversal (vdb_hnsw_search, every SIMD level) against the numba traversal it replaces."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from vecdb.config import HNSW
from vecdb.index.hnsw import HNSWIndex
from vecdb.kernels import dispatch, graph
from vecdb.quant.scalar import ScalarQuantizer

native = pytest.importorskip("vecdb._native")

LEVELS = ("scalar", "avx2", "avx512")
N, D, NQ, K = 3_000, 37, 60, 10  # d = 37 leaves a tail after every SIMD width


@pytest.fixture(params=LEVELS)
def level(request: pytest.FixtureRequest) -> Iterator[str]:
    start = native.simd_level()
    if dispatch.set_simd_level(request.param) != request.param:
        dispatch.set_simd_level(start)
        pytest.skip(f"SIMD level {request.param} not supported by this CPU (or capped by VECDB_SIMD)")
    yield request.param
    dispatch.set_simd_level(start)


_INDEXES: dict[tuple[str, bool], tuple[HNSWIndex, np.ndarray]] = {}


def _index(metric: str, quantized: bool) -> tuple[HNSWIndex, np.ndarray]:
    key = (metric, quantized)
    if key not in _INDEXES:
        rng = np.random.default_rng(11)
        centers = rng.normal(scale=3.0, size=(20, D))
        x = (centers[rng.integers(0, 20, N)] + rng.normal(size=(N, D))).astype(np.float32)
        q = (centers[rng.integers(0, 20, NQ)] + rng.normal(size=(NQ, D))).astype(np.float32)
        quantizer = None
        if quantized:
            quantizer = ScalarQuantizer(D, metric)
            quantizer.train(x)
        _INDEXES[key] = (HNSWIndex.build(x, metric, HNSW(m=8, ef_construction=64), quantizer=quantizer), q)
    return _INDEXES[key]


def _numba_search(index: HNSWIndex, q: np.ndarray, params: dict, allowed: np.ndarray | None = None) -> tuple:
    dispatch.reload("numba")  # no C module: graph_search_pointer() is 0
    try:
        assert dispatch.graph_search_pointer() == 0
        return index.search(q, K, params, allowed)
    finally:
        dispatch.reload()


def _assert_same(c: tuple[np.ndarray, np.ndarray], ref: tuple[np.ndarray, np.ndarray]) -> None:
    """Same neighbours and distances, allowing the rare near-tie that float32 summation order flips."""
    same_rows = np.all(c[0] == ref[0], axis=1)
    assert same_rows.mean() >= 0.95, f"only {same_rows.mean():.2f} of the queries agree"
    np.testing.assert_allclose(c[1][same_rows], ref[1][same_rows], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("metric", "quantized"), [("l2", False), ("ip", False), ("cosine", False),
                                                   ("l2", True), ("ip", True)])
def test_c_traversal_matches_numba(level: str, metric: str, quantized: bool) -> None:
    index, q = _index(metric, quantized)
    params = {"ef": 40, "rerank": 3}
    ref = _numba_search(index, q, params)
    assert dispatch.graph_search_pointer() != 0
    _assert_same(index.search(q, K, params), ref)  # the batch (parallel) path
    single = [index.search(q[i : i + 1], K, params) for i in range(NQ)]  # the one-query path
    _assert_same((np.vstack([s[0] for s in single]), np.vstack([s[1] for s in single])), ref)


def test_selective_mask_regrows_the_candidate_heap(level: str) -> None:
    """1% of rows allowed and ef = 10: the first C attempts overflow their candidate heap (256
    entries, then 4x more each time); results stay allowed, complete and equal to numba's."""
    index, q = _index("l2", False)
    allowed = np.zeros(N, dtype=bool)
    allowed[np.random.default_rng(3).choice(N, N // 100, replace=False)] = True
    params = {"ef": 10}
    ids, dists = index.search(q, K, params, allowed)
    assert np.all(ids >= 0) and np.all(allowed[ids])
    assert np.all(np.diff(dists, axis=1) >= 0)
    ref = _numba_search(index, q, params, allowed)
    _assert_same((ids, dists), ref)
    single = [index.search(q[i : i + 1], K, params, allowed) for i in range(NQ)]  # the single-call path
    _assert_same((np.vstack([s[0] for s in single]), np.vstack([s[1] for s in single])), ref)


def test_call_native_accepts_only_arrays_and_integers() -> None:
    from numba import njit
    from numba.core.errors import TypingError

    @njit
    def bad(address: int) -> int:
        return graph.call_native(address, (1.5,))

    with pytest.raises((TypeError, TypingError), match="arrays and integers only"):
        bad(0)


def test_int8_query_traversal_distance_is_exact() -> None:
    """IP8: the query quantized to [-63, 63] within half a step, and the distance exactly
    -(step * integer dot product) of it with the uint8 codes (what the C traversal computes)."""
    rng = np.random.default_rng(21)
    qt = (rng.normal(size=D) * 40.0).astype(np.float32)
    qi, w = graph.quantize_query_i8(qt)
    assert qi.dtype == np.int8 and np.abs(qi).max() == graph.I8_LEVELS
    assert np.all(np.abs(qi.astype(np.float32) * w[0] - qt) <= w[0] * 0.5 + 1e-6)
    codes = rng.integers(0, 256, size=(50, D), dtype=np.uint8)
    for i in range(codes.shape[0]):
        exact = int(codes[i].astype(np.int64) @ qi.astype(np.int64))
        assert graph._dist(qi, w, codes, i, graph.IP8) == -(w[0] * np.float32(exact))
    zero, step = graph.quantize_query_i8(np.zeros(D, np.float32))
    assert not zero.any() and step[0] == 1.0


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_build_with_the_c_beam_matches_the_numba_build(metric: str) -> None:
    """The layer-0 beam of every insertion runs in C when the module is there: the graph must be the
    one the numba beam builds, up to the rare near-tie that float32 summation order flips."""
    rng = np.random.default_rng(31)
    x = rng.normal(size=(1500, D)).astype(np.float32)
    config = HNSW(m=8, ef_construction=48)
    assert dispatch.graph_search_pointer() != 0
    with_c = HNSWIndex.build(x, metric, config, seed=4)
    dispatch.reload("numba")
    try:
        with_numba = HNSWIndex.build(x, metric, config, seed=4)
    finally:
        dispatch.reload()
    a, b = with_c.to_arrays()[1], with_numba.to_arrays()[1]
    same = [set(a["links0"][i, : a["counts0"][i]]) == set(b["links0"][i, : b["counts0"][i]]) for i in range(1500)]
    assert np.mean(same) >= 0.95, f"only {np.mean(same):.2f} of the layer-0 rows agree"
    np.testing.assert_array_equal(a["levels"], b["levels"])


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_row_map_walks_a_graph_over_rows_of_a_shared_matrix(level: str, metric: str) -> None:
    """A graph over some rows of a shared matrix, walked through row_of (and row_scale = 1/|x| for
    cosine on raw rows), answers as the same graph over a gathered copy of those rows."""
    rng = np.random.default_rng(17)
    shared = rng.normal(scale=2.0, size=(4_000, D)).astype(np.float32)
    rows = np.sort(rng.choice(4_000, 1_200, replace=False))
    q = rng.normal(scale=2.0, size=(NQ, D)).astype(np.float32)
    index = HNSWIndex.build(np.ascontiguousarray(shared[rows]), metric, HNSW(m=8, ef_construction=64))
    g = index._g
    scale = (1.0 / np.linalg.norm(shared[rows], axis=1)).astype(np.float32) if metric == "cosine" else None
    mapped = native.HnswSearcher(shared, g.links0, g.counts0, g.up_off, g.links_up, g.counts_up, g.entry,
                                 g.max_level, g.n, metric, rows.astype(np.int32), scale)
    ids = np.arange(4_000, dtype=np.int64) + 10**6
    allowed = rng.random(1_200) < 0.5
    for mask in (None, allowed):
        ref = [index.search_one(q[i], K, 40, None, mask) for i in range(NQ)]
        got = [mapped(q[i], K, 40, ids, mask) for i in range(NQ)]
        ref_rows = np.vstack([rows[r[0][0]] + 10**6 for r in ref])
        got_rows = np.vstack([r[0][0] for r in got])
        if mask is not None:
            assert allowed[np.searchsorted(rows, got_rows - 10**6)].all()
        if metric == "cosine":  # the same ranking, up to float32 rounding of -dot/|x| vs -dot of unit rows
            _assert_same((got_rows, np.vstack([r[1][0] for r in got])), (ref_rows, np.vstack([r[1][0] for r in ref])))
        else:  # the same rows read in the same order: the same walk, bit for bit
            np.testing.assert_array_equal(got_rows, ref_rows)
            np.testing.assert_array_equal(np.vstack([r[1][0] for r in got]), np.vstack([r[1][0] for r in ref]))


def test_row_map_is_checked() -> None:
    rng = np.random.default_rng(2)
    shared = rng.normal(size=(50, D)).astype(np.float32)
    index = HNSWIndex.build(np.ascontiguousarray(shared[:20]), "l2", HNSW(m=4, ef_construction=16))
    g = index._g
    args = (shared, g.links0, g.counts0, g.up_off, g.links_up, g.counts_up, g.entry, g.max_level, g.n, "l2")
    with pytest.raises(ValueError, match="not a row of rows"):
        native.HnswSearcher(*args, np.arange(20, dtype=np.int32) + 40)
    with pytest.raises(ValueError, match="do not cover"):
        native.HnswSearcher(*args, np.arange(10, dtype=np.int32))
    with pytest.raises(ValueError, match="needs row_of"):
        native.HnswSearcher(*args, None, np.ones(20, np.float32))
    searcher = native.HnswSearcher(*args, np.arange(20, dtype=np.int32) * 2)
    with pytest.raises(TypeError, match="at least 50 ids"):  # ids map rows of the shared matrix
        searcher(shared[0], 3, 16, np.arange(20, dtype=np.int64), None)
    found, _, filled = searcher(shared[6], 3, 16, None, None)
    assert filled == 3 and found[0, 0] == 6  # node 3 is row 6, its own nearest
