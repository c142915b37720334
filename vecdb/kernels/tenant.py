"""numba loops of the multi-tenant clustering-tree index (``vecdb.index.tenant``).

A tenant's sub-tree is three arrays: ``t_nodes`` (s,) int32 sorted ids of the tree nodes that hold
at least one of its rows, ``t_start`` (s+1,) int32 and ``t_rows`` (r,) uint32 (its row offsets
grouped by leaf, so node ``t_nodes[j]`` owns ``t_rows[t_start[j]:t_start[j+1]]``; internal nodes own
an empty range). Children of a tree node are contiguous ids ``first_child .. first_child+n_children``,
so a node's children inside the tenant's sub-tree are one slice of ``t_nodes``, found by two binary
searches: the descent never looks at a node the tenant has no row under.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vecdb.kernels.distance import distance_f32
from vecdb.kernels.selection import heap_push


@njit(cache=True, nogil=True)
def _lower_bound(a: np.ndarray, lo: int, hi: int, value: int) -> int:
    """First index in a[lo:hi] (sorted) with a[i] >= value."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _score_range(
    query: np.ndarray, vectors: np.ndarray, t_rows: np.ndarray, lo: int, hi: int, metric: int,
    mask: np.ndarray, filtered: bool, out_d: np.ndarray, out_i: np.ndarray, size: int,
) -> tuple[int, int]:
    """Offer rows t_rows[lo:hi] to the bounded result heap; returns (heap size, rows scored)."""
    scored = 0
    n_mask = mask.shape[0]
    for j in range(lo, hi):
        row = np.intp(t_rows[j])
        if filtered and (row >= n_mask or not mask[row]):
            continue
        d = distance_f32(query, vectors[row], metric)
        size = heap_push(out_d, out_i, size, d, row)
        scored += 1
    return size, scored


@njit(cache=True, nogil=True)
def tenant_exact_into(
    query: np.ndarray, vectors: np.ndarray, t_rows: np.ndarray, metric: int, mask: np.ndarray,
    filtered: bool, out_d: np.ndarray, out_i: np.ndarray,
) -> tuple[int, int]:
    """Score every row of a tenant. out_d/out_i: (k,) result heap. -> (heap size, rows scored)."""
    return _score_range(query, vectors, t_rows, 0, t_rows.shape[0], metric, mask, filtered, out_d, out_i, 0)


@njit(cache=True, nogil=True)
def tenant_search_into(
    query: np.ndarray, route: np.ndarray, vectors: np.ndarray, centroids: np.ndarray,
    first_child: np.ndarray, n_children: np.ndarray, t_nodes: np.ndarray, t_start: np.ndarray,
    t_rows: np.ndarray, metric: int, route_metric: int, mask: np.ndarray, filtered: bool,
    beam: int, nprobe: int, ef: int, out_d: np.ndarray, out_i: np.ndarray,
) -> tuple[int, int, int]:
    """Descend one tenant's sub-tree level by level, expanding the ``beam`` internal nodes whose
    centroids are nearest to ``route`` (the query in routing space) and collecting every leaf met;
    then open the collected leaves nearest first, scoring the tenant's rows in them with ``query``
    against ``vectors`` (n, d), until ``nprobe`` leaves were opened and ``ef`` rows scored.
    A level-wise beam, not one best-first heap: centroids of big internal nodes lie nearer the
    data's middle than leaf centroids, so a single heap would drain one branch's leaves before it
    looked at the next branch. out_d/out_i: (k,) result heap. -> (heap size, leaves, rows scored)."""
    s = t_nodes.shape[0]
    if s == 0:
        return 0, 0, 0
    cur = np.empty(s, dtype=np.int64)
    nxt_d = np.empty(s, dtype=np.float32)
    nxt_j = np.empty(s, dtype=np.int64)
    leaf_d = np.empty(s, dtype=np.float32)
    leaf_j = np.empty(s, dtype=np.int64)
    cur[0] = 0  # t_nodes[0] is the root (node 0): every non-empty sub-tree contains it
    ncur = 1
    nleaf = 0
    if n_children[0] == 0:
        leaf_d[0] = 0.0
        leaf_j[0] = 0
        nleaf = 1
        ncur = 0
    while ncur > 0:
        nnext = 0
        for a in range(ncur):
            j = cur[a]
            node = t_nodes[j]
            fc = first_child[node]
            lo = _lower_bound(t_nodes, j + 1, s, fc)
            hi = _lower_bound(t_nodes, lo, s, fc + n_children[node])
            for c in range(lo, hi):
                d = distance_f32(route, centroids[t_nodes[c]], route_metric)
                if n_children[t_nodes[c]] == 0:
                    leaf_d[nleaf] = d
                    leaf_j[nleaf] = c
                    nleaf += 1
                else:
                    nxt_d[nnext] = d
                    nxt_j[nnext] = c
                    nnext += 1
        if nnext <= beam:
            for a in range(nnext):
                cur[a] = nxt_j[a]
            ncur = nnext
        else:
            order = np.argsort(nxt_d[:nnext])
            for a in range(beam):
                cur[a] = nxt_j[order[a]]
            ncur = beam
    order = np.argsort(leaf_d[:nleaf])
    size = 0
    leaves = 0
    scored = 0
    for a in range(nleaf):
        j = leaf_j[order[a]]
        size, got = _score_range(query, vectors, t_rows, t_start[j], t_start[j + 1], metric, mask, filtered,
                                 out_d, out_i, size)
        scored += got
        leaves += 1
        if leaves >= nprobe and scored >= ef:
            break
    return size, leaves, scored


@njit(cache=True, nogil=True)
def descend(
    route: np.ndarray, centroids: np.ndarray, first_child: np.ndarray, n_children: np.ndarray, route_metric: int
) -> np.ndarray:
    """Greedy descent of the whole tree: the leaf each row of ``route`` (m, d) falls in -> (m,) int32."""
    m = route.shape[0]
    out = np.empty(m, dtype=np.int32)
    for i in range(m):
        node = 0
        while n_children[node] > 0:
            fc = first_child[node]
            best = fc
            best_d = np.inf
            for c in range(fc, fc + n_children[node]):
                d = distance_f32(route[i], centroids[c], route_metric)
                if d < best_d:
                    best_d = d
                    best = c
            node = best
        out[i] = node
    return out
