"""vecdb._native.HnswSearcher, the single-call path for one unfiltered query, against the numba
path (kernels.graph.search_one) and against exact search; and what it declines."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from vecdb.config import HNSW
from vecdb.index.hnsw import HNSWIndex
from vecdb.kernels import dispatch, reference

native = pytest.importorskip("vecdb._native")

N, D, K = 1_500, 21, 10


def _data(metric: str, seed: int = 3) -> tuple[HNSWIndex, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    q = rng.normal(size=(40, D)).astype(np.float32)
    return HNSWIndex.build(x, metric, HNSW(m=8, ef_construction=64)), x, q


def _numba_one(index: HNSWIndex, q: np.ndarray, ef: int) -> tuple[np.ndarray, np.ndarray]:
    dispatch.reload("numba")
    try:
        assert index.search_one(q, K, ef) is None  # no C module: no single-call path
        return index.search(q, K, {"ef": ef})
    finally:
        dispatch.reload()


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_matches_the_numba_path_and_maps_ids(metric: str) -> None:
    index, _, q = _data(metric)
    ids = np.arange(N, dtype=np.int64) * 7 + 100
    agree = 0
    for i in range(q.shape[0]):
        ref_off, ref_d = _numba_one(index, q[i : i + 1], 32)
        found = index.search_one(q[i : i + 1], K, 32, ids)
        assert found is not None
        got_ids, got_d, filled = found
        assert got_ids.shape == (1, K) and got_ids.dtype == np.int64 and got_d.dtype == np.float32
        assert filled == K
        assert np.all(np.diff(got_d[0]) >= 0), "results must be ascending by distance"
        np.testing.assert_allclose(got_d, ref_d, rtol=1e-5, atol=1e-5)
        agree += set(got_ids[0]) == set(ids[ref_off[0]])
        offsets, _, _ = index.search_one(q[i], K, 32)  # a (d,) query, offsets without ids
        assert set(offsets[0]) == set(ref_off[0])
    assert agree == q.shape[0]


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_a_wide_beam_is_exact(metric: str) -> None:
    index, x, q = _data(metric, seed=5)
    rows = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    for i in range(10):
        want_off, want_d = reference.topk(reference.distances(q[i], rows, metric), K)
        got_off, got_d, _ = index.search_one(q[i : i + 1], K, N)
        assert list(got_off[0]) == list(want_off)
        np.testing.assert_allclose(got_d[0], want_d, rtol=1e-4, atol=1e-4)


def test_a_mask_keeps_results_to_allowed_rows() -> None:
    """Only allowed rows come back (rows past a short mask count as disallowed), as many as are
    allowed when fewer than k, and the same as the numba path's."""
    index, _, q = _data("ip")
    allowed = np.zeros(N // 2, dtype=bool)  # rows N/2.. are past its end
    allowed[::7] = True
    for i in range(10):
        offsets, dists, filled = index.search_one(q[i], K, 48, None, allowed)
        assert filled == K and np.all(allowed[offsets[0]])
        dispatch.reload("numba")
        try:
            ref_off, ref_d = index.search(q[i : i + 1], K, {"ef": 48}, allowed)
        finally:
            dispatch.reload()
        np.testing.assert_allclose(dists, ref_d, rtol=1e-5, atol=1e-5)
        assert set(offsets[0]) == set(ref_off[0])
    three = np.zeros(N, dtype=bool)
    three[[5, 500, 1000]] = True
    offsets, dists, filled = index.search_one(q[0], K, 16, None, three)
    assert filled == 3 and sorted(offsets[0, :3]) == [5, 500, 1000] and np.all(offsets[0, 3:] == -1)


def test_k_beyond_the_graph_pads() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8)).astype(np.float32)
    index = HNSWIndex.build(x, "l2", HNSW(m=4, ef_construction=16))
    ids, dists, filled = index.search_one(x[:1], 50, 100)
    assert filled == 30
    assert ids[0, 0] == 0 and dists[0, 0] == 0.0
    assert np.all(ids[0, 30:] == -1) and np.all(np.isinf(dists[0, 30:]))
    assert sorted(ids[0, :30]) == list(range(30))


@pytest.mark.parametrize(
    "query, k, ef",
    [
        (np.zeros((1, D), np.float64), K, 32),  # dtype
        (np.zeros((1, D + 1), np.float32), K, 32),  # dimension
        (np.zeros((2, D), np.float32), K, 32),  # two queries
        (np.zeros((1, 2 * D), np.float32)[:, ::2], K, 32),  # strided
        ([0.0] * D, K, 32),  # not an array
        (np.full((1, D), np.nan, np.float32), K, 32),
        (np.full((1, D), np.inf, np.float32), K, 32),
        (np.zeros((1, D), np.float32), 0, 32),
        (np.zeros((1, D), np.float32), True, 32),
        (np.zeros((1, D), np.float32), np.int64(10), 32),
        (np.zeros((1, D), np.float32), 10_001, 32),
        (np.zeros((1, D), np.float32), K, 0),
        (np.zeros((1, D), np.float32), K, 100_001),
        (np.zeros((1, D), np.float32), K, 3.0),
    ],
)
def test_declines_what_the_general_path_must_check(query: object, k: object, ef: object) -> None:
    index, _, _ = _data("l2")
    assert index.search_one(query, k, ef) is None


def test_quantized_and_empty_graphs_have_no_single_call_path() -> None:
    from vecdb.quant.scalar import ScalarQuantizer

    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    sq = ScalarQuantizer(16, "l2")
    sq.train(x)
    assert HNSWIndex.build(x, "l2", HNSW(m=8, ef_construction=32), quantizer=sq).search_one(x[:1], 5, 20) is None
    assert HNSWIndex(16, "l2", 8, 32).search_one(x[:1], 5, 20) is None


def test_constructor_checks_the_graph_arrays() -> None:
    index, x, _ = _data("l2")
    g = index._g
    args = [g.trav, g.links0, g.counts0, g.up_off, g.links_up, g.counts_up, g.entry, g.max_level, g.n, "l2"]
    with pytest.raises(TypeError, match="links0 must be a int32"):
        native.HnswSearcher(*args[:1], g.links0.astype(np.int64), *args[2:])
    with pytest.raises(ValueError, match="do not cover n"):
        native.HnswSearcher(*args[:8], g.n + 1, "l2")
    with pytest.raises(ValueError, match="metric"):
        native.HnswSearcher(*args[:9], "hamming")
    searcher = native.HnswSearcher(*args)
    with pytest.raises(TypeError, match="5 positional"):
        searcher(x[:1], K, 32, None)
    with pytest.raises(TypeError, match="ids must be"):
        searcher(x[:1], K, 32, np.arange(N, dtype=np.int32), None)
    with pytest.raises(TypeError, match="allowed must be"):
        searcher(x[:1], K, 32, None, np.ones(N, np.int64))


def test_candidate_heap_overflow_is_retried_with_room() -> None:
    """A hand-made graph whose walk at ef 1 queues 127 candidates, past the first heap's 64: the
    searcher reruns with room for every node and still finds the nearest."""
    n = 129
    rows = (1000.0 - np.arange(n, dtype=np.float32)).reshape(n, 1)  # node i at x = 1000 - i
    links0 = np.full((n, 64), -1, np.int32)
    counts0 = np.zeros(n, np.int32)
    links0[0] = np.arange(1, 65)  # each row lists nodes ever closer to the query at 0
    links0[64] = np.arange(65, 129)
    counts0[[0, 64]] = 64
    up_off = np.full(n, -1, np.int32)
    links_up, counts_up = np.zeros((0, 8), np.int32), np.zeros(0, np.int32)
    searcher = native.HnswSearcher(rows, links0, counts0, up_off, links_up, counts_up, 0, 0, n, "l2")
    ids, dists, filled = searcher(np.zeros(1, np.float32), 1, 1, None, None)
    assert filled == 1 and ids[0, 0] == 128 and dists[0, 0] == pytest.approx(872.0**2)


def test_threads_search_concurrently_with_their_own_visited_sets() -> None:
    index, _, q = _data("cosine")
    want = [index.search_one(q[i], K, 40)[0] for i in range(q.shape[0])]
    failures: list[int] = []

    def worker() -> None:
        for _ in range(20):
            for i in range(q.shape[0]):
                if not np.array_equal(index.search_one(q[i], K, 40)[0], want[i]):
                    failures.append(i)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_visited_tags_survive_wrapping() -> None:
    """70,000 queries on one thread pass the 16-bit tag's 65,535 values: the set is cleared and
    results stay those of the first pass."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    index = HNSWIndex.build(x, "l2", HNSW(m=4, ef_construction=16))
    q = x[:10] + 0.01
    want = [index.search_one(q[i], 5, 10)[0] for i in range(10)]
    for t in range(70_000):
        got = index.search_one(q[t % 10], 5, 10)[0]
        if t % 997 == 0 or t > 65_000:
            assert np.array_equal(got, want[t % 10])


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_topk_at_one_matches_the_reference(metric: str) -> None:
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(400, 19)).astype(np.float32)
    offsets = np.sort(rng.choice(400, 60, replace=False)).astype(np.int64)
    ids = np.arange(400, dtype=np.int64) * 3 + 1
    for _ in range(5):
        q = rng.normal(size=19).astype(np.float32)
        want_off, want_d = reference.topk_at(q, rows, offsets, K, metric)
        got_ids, got_d, filled = dispatch.topk_at_one(q.reshape(1, -1), rows, offsets, K, metric, ids)
        assert filled == K and got_ids.shape == (1, K) and got_d.shape == (1, K)
        assert list(got_ids[0]) == list(ids[want_off])
        np.testing.assert_allclose(got_d[0], want_d, rtol=1e-5, atol=1e-5)
    few = offsets[:3]  # fewer rows than k: padded
    got_off, got_d, filled = dispatch.topk_at_one(q, rows, few, K, metric, None)
    assert filled == 3 and sorted(got_off[0, :3]) == sorted(few) and np.all(got_off[0, 3:] == -1)
    assert np.all(np.isinf(got_d[0, 3:]))


def test_topk_at_one_declines_odd_queries_and_rejects_bad_rows() -> None:
    rows = np.ones((50, 6), np.float32)
    offsets = np.arange(10, dtype=np.int64)
    for query, k in [(np.ones(6, np.float64), K), (np.ones(7, np.float32), K), (np.full(6, np.nan, np.float32), K),
                     (np.ones((2, 6), np.float32), K), (np.ones(6, np.float32), 0), (np.ones(6, np.float32), 1.0)]:
        assert dispatch.topk_at_one(query, rows, offsets, k, "l2", None) is None
    with pytest.raises(IndexError, match="out of range"):
        dispatch.topk_at_one(np.ones(6, np.float32), rows, np.array([3, 50], np.int64), K, "l2", None)
    with pytest.raises(TypeError, match="offsets must be"):
        dispatch.topk_at_one(np.ones(6, np.float32), rows, offsets.astype(np.int32), K, "l2", None)
    with pytest.raises(TypeError, match="ids must be"):
        dispatch.topk_at_one(np.ones(6, np.float32), rows, offsets, K, "l2", np.arange(10, dtype=np.int64))
