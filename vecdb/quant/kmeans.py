"""k-means for codebooks: faiss.Kmeans with a fixed seed, plus our own blocked nearest-centroid assignment."""

from __future__ import annotations

import numpy as np

# Rows scored per block in ``assign``: bounds the (block, k) distance matrix to a few MB.
_ASSIGN_BLOCK = 8192


def kmeans(x: np.ndarray, k: int, niter: int = 20, seed: int = 0) -> np.ndarray:
    """Cluster ``x`` (n, d) float32 into ``k`` centroids -> (k, d) float32.

    Fewer distinct rows than ``k`` is a sane fallback rather than an error: the distinct rows become
    centroids and the remaining slots repeat them, so every row is still encoded exactly and codes stay
    in range. Raises ``ValueError`` on an empty sample or non-finite values.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"k-means needs a non-empty (n, d) sample, got shape {x.shape}")
    if k < 1:
        raise ValueError(f"k-means needs k >= 1, got {k}")
    if not np.isfinite(x).all():
        raise ValueError("k-means sample contains NaN or infinite values")
    distinct = np.unique(x, axis=0)
    if distinct.shape[0] <= k:
        reps = np.resize(np.arange(distinct.shape[0]), k)
        return np.ascontiguousarray(distinct[reps])
    import faiss  # deferred: importing faiss costs ~0.3 s and only training needs it

    km = faiss.Kmeans(
        x.shape[1], k, niter=niter, seed=seed, verbose=False,
        # faiss subsamples to max_points_per_centroid * k rows by default; keep that, seeded.
        max_points_per_centroid=256, min_points_per_centroid=1,
    )
    km.train(x)
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared l2, ties to the smaller index) per row -> (n,) int64."""
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    c_norms = (c * c).sum(1)
    out = np.empty(x.shape[0], dtype=np.int64)
    for start in range(0, x.shape[0], _ASSIGN_BLOCK):
        block = x[start : start + _ASSIGN_BLOCK]
        # ||x||^2 is constant per row, so argmin of ||c||^2 - 2 x.c is the nearest centroid.
        scores = c_norms[None, :] - 2.0 * (block @ c.T)
        out[start : start + block.shape[0]] = np.argmin(scores, axis=1)
    return out
