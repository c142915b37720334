"""The inverted-file kernels (kernels/postings.py) against plain numpy: list ranking, query-aware
pruning and the full-precision SPANN / IVF scans (replicated rows, masks, budgets)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecdb.kernels import postings

_PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPS
@given(st.integers(1, 300), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_nearest_lists_are_the_smallest_in_order(n: int, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 20, n).astype(np.float32)  # many ties: they must break by list id
    out_l = np.empty(min(count, n), np.int64)
    out_d = np.empty(min(count, n), np.float32)
    assert postings.nearest_lists(dist, out_l, out_d) == out_l.shape[0]
    want = np.lexsort((np.arange(n), dist))[: out_l.shape[0]]
    np.testing.assert_array_equal(out_l, want)
    np.testing.assert_array_equal(out_d, dist[want])


def _pruned_reference(order_d: np.ndarray, n_order: int, max_lists: int, eps: float, selectivity: float,
                      factor: int) -> int:
    if n_order == 0:
        return 0
    d1 = float(order_d[0])
    limit = math.inf if eps == math.inf else d1 + eps * abs(d1)
    kept = int(np.count_nonzero(order_d[1 : min(max_lists, n_order)] <= limit)) + 1
    if selectivity < 1.0:
        kept = min(n_order, math.ceil(kept / max(selectivity, 1.0 / factor)))
    return kept


@_PROPS
@given(st.integers(0, 30), st.integers(0, 5), st.integers(1, 40),
       st.sampled_from([0.0, 0.3, 1.0, math.inf]), st.sampled_from([1.0, 0.5, 0.01]), st.integers(0, 2**32 - 1))
def test_pruned_count_matches_the_rule(n_order: int, padding: int, max_lists: int, eps: float,
                                       selectivity: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = np.sort(rng.normal(size=n_order).astype(np.float32))
    if n_order and rng.random() < 0.3:
        d -= d[0]  # the query sits on its nearest centroid: d1 = 0 (eps = inf must still probe all)
    order = np.concatenate([rng.permutation(n_order), np.full(padding, -1)]).astype(np.int64)
    order_d = np.concatenate([d, np.full(padding, np.inf, np.float32)]).astype(np.float32)
    got = postings.pruned_count(order, order_d, max_lists, eps, selectivity, 8)
    assert got == _pruned_reference(d, n_order, max_lists, eps, selectivity, 8)
    if eps == math.inf and selectivity == 1.0:
        assert got == min(max_lists, n_order)


def _posting_lists(rng: np.random.Generator, n: int, n_lists: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row in one list, about a third of them replicated into a second one."""
    members = [[] for _ in range(n_lists)]
    for r in range(n):
        for lst in rng.choice(n_lists, size=min(n_lists, 1 + (rng.random() < 0.35)), replace=False):
            members[lst].append(r)
    start = np.zeros(n_lists + 1, np.int64)
    start[1:] = np.cumsum([len(m) for m in members])
    rows = np.array([r for m in members for r in m], dtype=np.int64)
    return rows, start


@_PROPS
@given(st.integers(1, 120), st.integers(1, 12), st.integers(1, 12), st.sampled_from([postings.L2, postings.IP]),
       st.booleans(), st.integers(1, 15), st.integers(0, 2**32 - 1))
def test_spann_query_equals_brute_force_over_the_probed_lists(n: int, n_lists: int, dim: int, metric: int,
                                                              filtered: bool, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    q = rng.normal(size=dim).astype(np.float32)
    rows, start = _posting_lists(rng, n, n_lists)
    recs = np.empty((rows.shape[0], dim + 1), np.float32)
    recs[:, 1:] = x[rows]
    ids = recs.view(np.uint32)
    ids[:, 0] = rows.astype(np.uint32)
    order = rng.permutation(n_lists).astype(np.int64)
    order_d = np.sort(rng.random(n_lists).astype(np.float32))
    mask = rng.random(n) < 0.5 if filtered else np.zeros(0, bool)
    selectivity = float(mask.mean()) if filtered else 1.0
    max_lists = int(rng.integers(1, n_lists + 1))
    out_d = np.empty(k, np.float32)
    out_i = np.empty(k, np.int64)
    probed, read, scored = postings.spann_query(q, order, order_d, max_lists, 1.0, selectivity, 8, recs, ids,
                                                start, np.iinfo(np.int64).max, metric, mask, filtered, 0.5,
                                                out_d, out_i)
    seen = np.unique(np.concatenate([rows[start[lst] : start[lst + 1]] for lst in order[:probed]]))
    if filtered:
        seen = seen[mask[seen]]
    exact = ((x[seen] - q) ** 2).sum(1) if metric == postings.L2 else -(x[seen] @ q)
    best = np.lexsort((seen, exact))[:k]
    got = out_i[out_i >= 0]
    assert len(set(got.tolist())) == got.shape[0]  # a replicated row comes back once
    np.testing.assert_array_equal(np.sort(got), np.sort(seen[best]))
    np.testing.assert_allclose(out_d[: got.shape[0]], 0.5 * exact[best], rtol=1e-4, atol=1e-4)
    assert (out_i[got.shape[0] :] == -1).all() and np.isinf(out_d[got.shape[0] :]).all()
    probed_rows = np.concatenate([rows[start[lst] : start[lst + 1]] for lst in order[:probed]])
    assert read == probed_rows.shape[0]
    assert scored == (int(mask[probed_rows].sum()) if filtered else read)  # replicas scored once per list
    n_min = postings.pruned_count(order, order_d, max_lists, 1.0, selectivity, 8)
    assert probed == n_min if not filtered else probed >= n_min  # a filter probes on until k are found


@_PROPS
@given(st.integers(1, 100), st.integers(1, 10), st.integers(1, 9), st.sampled_from([0, 1, 2]),
       st.integers(0, 2**32 - 1))
def test_ivf_scan_equals_brute_force(n: int, n_lists: int, dim: int, metric: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    q = rng.normal(size=dim).astype(np.float32)
    rows = rng.permutation(n).astype(np.int64)
    start = np.concatenate([[0], np.sort(rng.integers(0, n + 1, n_lists - 1)), [n]]).astype(np.int64)
    order = rng.permutation(n_lists).astype(np.int64)
    n_min = int(rng.integers(1, n_lists + 1))
    k = 7
    hd = np.empty(k, np.float32)
    hk = np.empty(k, np.int64)
    size, probed, _, _ = postings.scan_offsets(q, x, rows, start, order, n_min, n_lists, np.iinfo(np.int64).max,
                                               metric, np.zeros(0, bool), False, k, hd, hk)
    postings.heap_sort_out(hd, hk, size)
    seen = np.concatenate([rows[start[lst] : start[lst + 1]] for lst in order[:probed]])
    if metric == 0:
        exact = ((x[seen] - q) ** 2).sum(1)
    elif metric == 1:
        exact = -(x[seen] @ q)
    else:
        exact = 1.0 - (x[seen] @ q) / (np.linalg.norm(x[seen], axis=1) * np.linalg.norm(q))
    best = np.lexsort((seen, exact))[:k]
    np.testing.assert_allclose(hd[:size], exact[best], rtol=1e-4, atol=1e-4)
    # rows clearly inside the top k must be found; which of a tie at the boundary wins is rounding
    sure = seen[best][exact[best] < exact[best][-1] - 1e-4] if size else seen[:0]
    assert set(sure.tolist()) <= set(hk[:size].tolist()) and size == best.shape[0]
