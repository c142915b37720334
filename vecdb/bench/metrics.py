"""Quality and speed measures of one run: recall by the ann-benchmarks rule, latency percentiles, Pareto."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# ann-benchmarks counts a returned neighbour as correct when its distance is within this of the
# k-th true distance, so exact ties at the boundary do not penalise a correct answer.
RECALL_EPSILON = 1e-3


def recall_per_query(true_distances: np.ndarray, found_distances: np.ndarray, k: int,
                     epsilon: float = RECALL_EPSILON) -> np.ndarray:
    """Fraction of the ``k`` found neighbours whose distance <= k-th true distance + ``epsilon``.

    true_distances: (q, >=k) sorted ascending; found_distances: (q, k') with k' <= k, inf for padding.
    Returns (q,) float64.
    """
    if true_distances.shape[1] < k:
        raise ValueError(f"ground truth has {true_distances.shape[1]} neighbours per query, need k={k}")
    threshold = true_distances[:, k - 1].astype(np.float64) + epsilon
    found = np.asarray(found_distances, dtype=np.float64)[:, :k]
    return (found <= threshold[:, None]).sum(axis=1) / float(k)


def latency_stats(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean and p50/p95/p99 of per-query (or per-batch) latencies, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"mean_ms": float("nan"), "p50_ms": float("nan"), "p95_ms": float("nan"),
                "p99_ms": float("nan")}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"mean_ms": float(ms.mean()), "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def pareto_frontier(recall: Sequence[float], qps: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both recall and QPS, by increasing recall."""
    r = np.asarray(recall, dtype=np.float64)
    s = np.asarray(qps, dtype=np.float64)
    order = np.lexsort((-s, -r))  # recall descending, then QPS descending
    keep: list[int] = []
    best = -np.inf
    for i in order:
        if s[i] > best:  # faster than everything with at least this recall
            keep.append(int(i))
            best = s[i]
    return keep[::-1]


def qps_at_recall(recall: Sequence[float], qps: Sequence[float], threshold: float) -> float | None:
    """Highest QPS among points with recall >= ``threshold`` (None when none reaches it)."""
    best = None
    for r, s in zip(recall, qps, strict=True):
        if r >= threshold and (best is None or s > best):
            best = float(s)
    return best
