"""Exact search: every allowed row is scored, in blocks so memory stays bounded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels

# Rows scored per block: bounds the (q, block) distance matrix to ~q * 256 KiB.
BLOCK_ROWS = 65536
# Up to this many queries, a selective mask is served by gathering distances in place; above it,
# copying the matching rows once and using BLAS over the batch wins.
GATHER_MAX_QUERIES = 3


def exact_search(
    queries: np.ndarray,
    vectors: np.ndarray,
    metric: str,
    k: int,
    allowed: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``queries`` (q, d) float32 over ``vectors`` (n, d) float32.

    allowed: (n,) bool mask of rows that may be returned (None = all). When few rows are allowed
    they are gathered first, so a selective filter costs in proportion to what it keeps; ``rows``
    (the mask's offsets, ascending) saves finding them when the caller already has them.
    Returns (offsets (q, k) int64 padded -1, distances (q, k) float32 padded +inf).
    """
    q = queries.shape[0]
    n = vectors.shape[0]
    if allowed is not None and n:
        rows = np.flatnonzero(allowed) if rows is None else rows
        if rows.size == 0:
            return np.full((q, k), -1, np.int64), np.full((q, k), np.inf, np.float32)
        if rows.size < n // 2 and q <= GATHER_MAX_QUERIES:
            # Few queries: score the matching rows in place (no copy of them per call).
            return _exact_at(queries, vectors, rows, metric, k)
        if rows.size < n // 2:
            offsets, dists = exact_search(queries, np.ascontiguousarray(vectors[rows]), metric, k)
            return np.where(offsets >= 0, rows[np.maximum(offsets, 0)], -1), dists
    best_ids: list[np.ndarray] = []
    best_d: list[np.ndarray] = []
    for start in range(0, max(n, 1), BLOCK_ROWS):
        block = vectors[start : start + BLOCK_ROWS]
        if block.shape[0] == 0:
            break
        dist = kernels.distances_many(queries, block, metric)
        mask = None if allowed is None else allowed[start : start + block.shape[0]]
        idx, d = kernels.topk(dist, k, mask)
        best_ids.append(np.where(idx >= 0, idx + start, -1))
        best_d.append(d)
    if not best_ids:
        return np.full((q, k), -1, np.int64), np.full((q, k), np.inf, np.float32)
    if len(best_ids) == 1:
        return best_ids[0], best_d[0]
    return kernels.merge_topk(best_ids, best_d, k)


def _exact_at(queries: np.ndarray, vectors: np.ndarray, rows: np.ndarray, metric: str, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
    if queries.shape[0] == 1:  # one query, as most callers send: no output arrays to fill row by row
        ids, dists = kernels.topk_at(queries[0], vectors, rows, k, metric)
        return ids.reshape(1, k), dists.reshape(1, k)
    out_ids = np.empty((queries.shape[0], k), np.int64)
    out_d = np.empty((queries.shape[0], k), np.float32)
    for r in range(queries.shape[0]):
        out_ids[r], out_d[r] = kernels.topk_at(queries[r], vectors, rows, k, metric)
    return out_ids, out_d


class FlatIndex:
    """The trivial index: nothing to build, exact answers. Kept for the uniform segment interface."""

    kind: ClassVar[str] = "flat"

    def __init__(self, vectors: np.ndarray, metric: str) -> None:
        self.vectors = vectors
        self.metric = metric

    @classmethod
    def build(cls, vectors: np.ndarray, metric: str, config: Any = None, *, quantizer: Any = None,
              progress: bool = False) -> FlatIndex:
        return cls(vectors, metric)

    def search(self, queries: np.ndarray, k: int, params: Mapping[str, Any],
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(queries, self.vectors, self.metric, k, allowed)

    @property
    def nbytes(self) -> int:
        return 0
