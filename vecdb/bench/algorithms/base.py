"""The one interface every benchmarked system implements (vecdb, faiss, hnswlib)."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np


class Algorithm(abc.ABC):
    """An index under test: built once by ``fit``, then queried under several query arguments.

    metric: vecdb vocabulary (l2 | ip | cosine). ``threads`` is what the runner pinned; adapters with
    their own pools (hnswlib) apply it. Ids returned are train row numbers, -1 for padding.
    """

    system: str = "?"
    # Query-argument names this adapter understands; the runner drops the others (and so runs a
    # Flat baseline once instead of once per ef value).
    query_params: frozenset[str] = frozenset()

    def __init__(self, spec: str, metric: str, build_args: dict[str, Any] | None = None,
                 threads: int = 1) -> None:
        self.spec = spec
        self.metric = metric
        self.build_args = dict(build_args or {})
        self.threads = threads
        self.query_args: dict[str, Any] = {}
        self.filter_mask: np.ndarray | None = None
        self.filter_expr: str | None = None

    @property
    def label(self) -> str:
        """Name of the configuration on plots and tables, e.g. ``faiss(HNSW16)``."""
        extra = "".join(f",{k}={v}" for k, v in sorted(self.build_args.items()))
        return f"{self.system}({self.spec}{extra})"

    def prepare(self) -> None:  # noqa: B027  (optional hook)
        """Set-up that is not part of the build time (start a server, open a connection)."""

    @abc.abstractmethod
    def fit(self, train: np.ndarray, attributes: dict[str, np.ndarray] | None = None) -> None:
        """Build the index over ``train`` (n, d) float32; attributes are per-row columns for filters."""

    def set_query_arguments(self, **args: Any) -> None:
        """Apply query-time knobs (``ef``, ``nprobe``, ``rerank``...) for the following queries."""
        unknown = set(args) - self.query_params
        if unknown:
            raise ValueError(f"{self.label} does not take query arguments {sorted(unknown)}")
        self.query_args = dict(args)

    def set_filter(self, expr: str | None, mask: np.ndarray | None) -> None:
        """Restrict queries to rows where ``mask`` (n,) bool is true; ``expr`` says it as a filter."""
        self.filter_expr, self.filter_mask = expr, mask

    @abc.abstractmethod
    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        """Ids (k,) int64 of the nearest rows to one query ``q`` (d,) float32."""

    @abc.abstractmethod
    def batch_query(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Ids (n, k) int64 for a batch ``queries`` (n, d), using the pinned number of threads."""

    def build_params(self) -> dict[str, Any]:
        """The parameters the index was really built with, defaults included (recorded per row)."""
        return dict(self.build_args)

    def memory_bytes(self) -> int | None:
        """Index bytes the library reports (None: the runner falls back to the RSS delta)."""
        return None

    def disk_bytes(self) -> int | None:
        """Bytes on disk, for systems that persist their index."""
        return None

    def close(self) -> None:  # noqa: B027  (optional hook: most adapters hold nothing to release)
        """Release the index (and any temporary files)."""

    def __str__(self) -> str:
        return self.label


def pad_ids(ids: np.ndarray, k: int) -> np.ndarray:
    """(n, k') ids -> (n, k) int64, padded with -1 (libraries may return fewer than k)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.shape[1] >= k:
        return ids[:, :k]
    pad = np.full((ids.shape[0], k - ids.shape[1]), -1, dtype=np.int64)
    return np.hstack([ids, pad])
