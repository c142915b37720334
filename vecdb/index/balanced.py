"""Balanced hierarchical clustering and boundary replication: the posting lists of a SPANN index.

``balanced_clusters`` splits the rows recursively. Each split runs seeded k-means (faiss) on the
rows of one node and then re-assigns them under a capacity constraint (``kernels.postings.
balanced_assign``), alternating capacity-constrained assignment and centroid updates a few
times: SPANN's multi-constraint balanced clustering with the balance term as a hard cap. The
number of children per node is chosen so that the tree is even (every level splits by about the
same factor) and the last split uses cap = ceil(m / k) <= target, so **every leaf holds at most
``target`` rows**. The leaves are the posting lists; their centroids are the row means.

``replicate`` adds boundary rows to up to ``replicas`` lists (RNG-pruned, see the kernel) with a
per-list room of ``room * target`` extra rows, so a posting list stays a bounded read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vecdb.kernels import postings

# Children per split, at most: keeps the (m, k) distance matrix of a split small and the tree shallow.
MAX_BRANCH = 64
# Capacity-constrained assignment / centroid update rounds per split.
BALANCE_ROUNDS = 3
# Upper splits allow this much imbalance (their children are split again anyway).
UPPER_SLACK = 1.1
# A row considers its few nearest centroids first; past those it takes any non-full one.
PREFERRED = 8
_BLOCK = 16384


def sq_dists(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared l2 distances (m, d) x (k, d) -> (m, k) float32, via one GEMM (clipped at 0)."""
    out = (x * x).sum(1)[:, None] - 2.0 * (x @ c.T)
    out += (c * c).sum(1)[None, :]
    return np.maximum(out, 0.0).astype(np.float32, copy=False)


def train_kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Seeded faiss k-means of ``x`` (m, d) float32 on at most 128 * k rows -> (k, d) float32."""
    import faiss  # deferred: importing faiss is slow and only builds need it

    km = faiss.Kmeans(x.shape[1], k, niter=12, seed=seed, verbose=False, max_points_per_centroid=128,
                      min_points_per_centroid=1)
    # One thread: a split trains on at most 128 * k rows, where OpenMP start-up and spinning cost
    # far more than they save (measured 30x slower on a loaded 2-core machine).
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        km.train(x)
    finally:
        faiss.omp_set_num_threads(threads)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def _means(x: np.ndarray, labels: np.ndarray, k: int, old: np.ndarray) -> np.ndarray:
    """Per-label row means (k, d); an empty label keeps its old centroid."""
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    _sum_sorted(x, labels, sums)
    counts = np.bincount(labels, minlength=k)
    out = old.copy()
    nz = counts > 0
    out[nz] = (sums[nz] / counts[nz, None]).astype(np.float32)
    return out


def _sum_sorted(x: np.ndarray, labels: np.ndarray, sums: np.ndarray) -> None:
    order = np.argsort(labels, kind="stable")
    lab = labels[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    sums[lab[starts]] = np.add.reduceat(x[order].astype(np.float64), starts, axis=0)


def balanced_split(x: np.ndarray, k: int, cap: int, seed: int) -> np.ndarray:
    """Split rows ``x`` (m, d) float32 into ``k`` clusters of at most ``cap`` rows -> labels (m,) int64."""
    m = x.shape[0]
    if k <= 1:
        return np.zeros(m, dtype=np.int64)
    if m <= k:
        return np.arange(m, dtype=np.int64)
    c = train_kmeans(x, k, seed)
    labels = np.zeros(m, dtype=np.int64)
    for _ in range(BALANCE_ROUNDS):
        labels = postings.balanced_assign(sq_dists(x, c), cap, PREFERRED)
        c = _means(x, labels, k, c)
    return labels


def _children(m: int, target: int) -> tuple[int, int]:
    """(k, cap) for a node of m > target rows: an even tree, the last level capped at target."""
    leaves = math.ceil(m / target)
    if leaves <= MAX_BRANCH:
        return leaves, math.ceil(m / leaves)
    levels = math.ceil(math.log(leaves) / math.log(MAX_BRANCH))
    k = min(MAX_BRANCH, math.ceil(leaves ** (1.0 / levels)))
    return k, math.ceil(m / k * UPPER_SLACK)


def balanced_clusters(x: np.ndarray, target: int, seed: int = 0, bar: Any = None) -> np.ndarray:
    """Leaf label per row of ``x`` (n, d) float32, every leaf at most ``target`` rows -> (n,) int64.

    ``bar``: an optional tqdm bar advanced by the rows of each finished leaf.
    """
    if target < 1:
        raise ValueError(f"target list size must be >= 1, got {target}")
    n = x.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    stack = [np.arange(n, dtype=np.int64)]
    next_label = 0
    step = 0
    while stack:
        rows = stack.pop()
        if rows.shape[0] <= target:
            labels[rows] = next_label
            next_label += 1
            if bar is not None:
                bar.update(rows.shape[0])
            continue
        k, cap = _children(rows.shape[0], target)
        sub = balanced_split(np.ascontiguousarray(x[rows]), k, cap, seed + step)
        step += 1
        for c in range(k):
            part = rows[sub == c]
            if part.shape[0]:
                stack.append(part)
    return labels


def centroids_of(x: np.ndarray, labels: np.ndarray, n_lists: int) -> np.ndarray:
    """Mean of each list's rows (n_lists, d) float32 (every list is non-empty)."""
    return _means(x, labels, n_lists, np.zeros((n_lists, x.shape[1]), np.float32))


def nearest_lists(
    x: np.ndarray, centroids: np.ndarray, t: int, metric: str, nav: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The t nearest centroids per row -> (lists (n, t) int64, distances (n, t) float32), ascending.

    metric "l2" (squared) or "ip" (-dot); ``nav`` (an HNSWIndex over the centroids) answers
    approximately instead of the blocked exact scan when there are many centroids.
    """
    t = min(t, centroids.shape[0])
    if nav is not None:
        return nav.search(x, t, {"ef": max(2 * t, 48)})
    n = x.shape[0]
    out_l = np.empty((n, t), dtype=np.int64)
    out_d = np.empty((n, t), dtype=np.float32)
    for s in range(0, n, _BLOCK):
        blk = x[s : s + _BLOCK]
        d = sq_dists(blk, centroids) if metric == "l2" else -(blk @ centroids.T)
        full = np.tile(np.arange(t), (blk.shape[0], 1))
        part = np.argpartition(d, t - 1, axis=1)[:, :t] if t < d.shape[1] else full
        pd = np.take_along_axis(d, part, axis=1)
        o = np.argsort(pd, axis=1, kind="stable")
        out_l[s : s + blk.shape[0]] = np.take_along_axis(part, o, axis=1)
        out_d[s : s + blk.shape[0]] = np.take_along_axis(pd, o, axis=1)
    return out_l, out_d


def replicate(
    x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, replicas: int, closure_eps: float, cap: int,
    metric: str, nav: Any = None, rng_factor: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Posting lists with boundary replication, CSR style.

    x (n, d) float32, centroids (L, d), labels (n,) primary list. A row joins up to ``replicas - 1``
    more lists (see ``postings.rng_replicas``, also for ``rng_factor``); a list takes replicas only
    while it holds fewer than ``cap`` rows, the rows nearest their boundary first.
    -> (list_start (L+1,) int64, members (N,) int64 row offsets grouped by list, ascending within one).
    """
    n_lists = centroids.shape[0]
    code = postings.L2 if metric == "l2" else postings.IP
    pairs_l = [labels]
    pairs_r = [np.arange(x.shape[0], dtype=np.int64)]
    if replicas > 1 and n_lists > 1:
        cand, cand_d = nearest_lists(x, centroids, min(2 * replicas, 16), metric, nav)
        extra, ratio = postings.rng_replicas(x, centroids, labels, np.ascontiguousarray(cand, np.int64),
                                             np.ascontiguousarray(cand_d, np.float32), replicas,
                                             float(closure_eps), code, float(rng_factor))
        ok = extra >= 0
        prop_l = extra[ok]
        prop_r = np.nonzero(ok)[0].astype(np.int64)
        counts = np.bincount(labels, minlength=n_lists).astype(np.int64)
        accept = postings.accept_within_capacity(prop_l, np.argsort(ratio[ok], kind="stable"), counts, cap)
        pairs_l.append(prop_l[accept])
        pairs_r.append(prop_r[accept])
    lists = np.concatenate(pairs_l)
    rows = np.concatenate(pairs_r)
    order = np.lexsort((rows, lists))
    members = rows[order]
    list_start = np.zeros(n_lists + 1, dtype=np.int64)
    np.cumsum(np.bincount(lists, minlength=n_lists), out=list_start[1:])
    return list_start, members
