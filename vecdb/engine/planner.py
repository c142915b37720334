"""The search planner: per segment, from the filter's row mask, pick how to search.

Strategies (``res.stats["plans"]`` names the one each segment used):

* ``exact``: score only the matching rows (gathered) — when few rows match, this is both exact and
  cheaper than any traversal;
* ``<index>-filtered``: the index traverses through non-matching rows and returns only matching
  ones (HNSW ACORN-style / IVF extra probes) — for moderately selective filters;
* ``<index>``: plain index search with the mask checked on the way out — when almost all rows match.

Whatever the strategy, the planner guarantees ``min(k, matching)`` results: an index answer that
comes back short is redone exactly over the matching rows (``+fallback``), never silently under-filled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from vecdb.index.flat import exact_search

# An exact scan of the matching rows reads matching * d floats; below this many it beats a
# filtered traversal (measured in docs/filtered.md: ~2 ms of scan on this class of machine).
EXACT_MAX_FLOATS = 2_000_000
# Below this fraction of matching rows an exact scan is chosen whatever its size: a filtered graph
# walk wastes almost all its distance computations on rows it must skip.
EXACT_MAX_SELECTIVITY = 0.01
# Above this fraction the filter is applied as a plain post-filter by the index.
POST_FILTER_SELECTIVITY = 0.9


class SegmentPlan(NamedTuple):
    """What the planner chose for one segment (a NamedTuple: built on every query, so kept cheap)."""

    strategy: str
    matching: int
    selectivity: float


def choose(index: Any, n_rows: int, matching: int, filtered: bool, params: Mapping[str, Any],
           dim: int = 1) -> SegmentPlan:
    """Pick the strategy for one segment with ``matching`` allowed rows out of ``n_rows``.

    ``params["plan"]`` ("exact" | "index") overrides the choice, for benchmarks and tuning.
    """
    selectivity = matching / n_rows if n_rows else 0.0
    forced = params.get("plan")
    if index is None or params.get("exact") or forced == "exact":
        return SegmentPlan("exact", matching, selectivity)
    if forced == "index":
        return SegmentPlan(f"{index.kind}-filtered" if filtered else index.kind, matching, selectivity)
    if filtered and (matching * dim <= EXACT_MAX_FLOATS or selectivity <= EXACT_MAX_SELECTIVITY):
        return SegmentPlan("exact", matching, selectivity)
    if filtered and selectivity < POST_FILTER_SELECTIVITY:
        return SegmentPlan(f"{index.kind}-filtered", matching, selectivity)
    return SegmentPlan(index.kind, matching, selectivity)


def all_filled(offsets: np.ndarray, want: int) -> bool:
    """Whether every query got ``want`` results. Results are sorted with the padding (-1) last, so
    column want-1 tells; a scalar read for one query keeps the per-call path cheap."""
    if offsets.shape[0] == 1:
        return offsets.item(0, want - 1) >= 0
    return bool(offsets[:, want - 1].min() >= 0)


def run(
    plan: SegmentPlan,
    index: Any,
    vectors: np.ndarray,
    metric: str,
    queries: np.ndarray,
    k: int,
    params: Mapping[str, Any],
    allowed: np.ndarray | None,
    index_stats: list[dict[str, Any]] | None = None,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Execute ``plan``; returns (offsets, distances, strategy actually used). When ``index_stats``
    is a list and the index can report per-query statistics, they are appended to it. ``rows``:
    the offsets ``allowed`` allows, when the caller has them (an exact plan then skips the pass)."""
    if plan.strategy == "exact":
        offsets, dists = exact_search(queries, vectors, metric, k, allowed, rows)
        return offsets, dists, "exact"
    if index_stats is not None and hasattr(index, "search_with_stats"):
        offsets, dists, stats = index.search_with_stats(queries, k, params, allowed)
        index_stats.append(stats)
    else:
        offsets, dists = index.search(queries, k, params, allowed)
    want = min(k, plan.matching)
    # Results are sorted with the padding last, so column want-1 says whether every row is filled.
    if want and not all_filled(offsets, want):
        # The traversal could not reach enough matching rows: answer exactly instead.
        offsets, dists = exact_search(queries, vectors, metric, k, allowed, rows)
        return offsets, dists, plan.strategy + "+fallback"
    return offsets, dists, plan.strategy
