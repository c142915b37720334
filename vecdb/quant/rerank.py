"""Exact re-scoring of quantized candidates with the full vectors (which may be memory-mapped)."""

from __future__ import annotations

import numpy as np

from vecdb import kernels
from vecdb.types import check_metric


def rerank(
    query: np.ndarray, candidate_offsets: np.ndarray, vectors: np.ndarray, metric: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k among candidates.

    query: (d,) float32, candidate_offsets: (c,) int64 rows of ``vectors`` (n, d) float32 (an np.memmap
    is fine; only the candidate rows are read) -> (offsets (k,) int64, distances (k,) float32), ascending,
    ties to the smaller offset, padded with -1 / +inf when there are fewer than k distinct candidates.
    Negative offsets (the padding of an upstream top-k) are ignored.
    """
    check_metric(metric)
    if k < 1:
        raise ValueError(f"rerank needs k >= 1, got {k}")
    q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
    if vectors.ndim != 2 or vectors.shape[1] != q.shape[0]:
        raise ValueError(f"query has dimension {q.shape[0]}, vectors have shape {vectors.shape}")
    offs = np.asarray(candidate_offsets, dtype=np.int64).reshape(-1)
    # Sorted, de-duplicated offsets: reads of a memory map walk the file forwards, and ties resolve
    # to the smaller offset because topk breaks ties by position.
    offs = np.unique(offs[offs >= 0])
    if offs.size and offs[-1] >= vectors.shape[0]:
        raise ValueError(f"candidate offset {int(offs[-1])} is out of range for {vectors.shape[0]} rows")
    if offs.size == 0:
        return np.full(k, -1, dtype=np.int64), np.full(k, np.inf, dtype=np.float32)
    dist = kernels.distances_at(q, vectors, offs, metric)
    pos, best = kernels.topk(dist, k)
    out = np.where(pos >= 0, offs[np.maximum(pos, 0)], -1).astype(np.int64)
    return out, best.astype(np.float32)
