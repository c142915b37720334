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
