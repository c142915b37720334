"""Small value types shared by every layer: metrics and search results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Metric = Literal["l2", "ip", "cosine"]
METRICS: tuple[str, ...] = ("l2", "ip", "cosine")
# Integer codes used by the kernels (C and numba) for each metric.
METRIC_CODES: dict[str, int] = {"l2": 0, "ip": 1, "cosine": 2}


def check_metric(metric: str) -> str:
    """Return ``metric`` if it is one vecdb knows; raise ``ValueError`` naming the choices."""
    if metric not in METRIC_CODES:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    return metric


@dataclass
class SearchResult:
    """The answer to a batch of queries.

    ids: (n, k) int64, padded with -1 where fewer than k rows qualify.
    distances: (n, k) float32, padded with +inf; smaller is closer for every metric.
    attributes: optional pyarrow.Table with one row per (query, rank) in row-major order,
        holding the requested ``include`` columns (null where the id is -1).
    stats: per-batch metadata (plan chosen, candidates scored, whether k could be filled...).
    """

    ids: np.ndarray
    distances: np.ndarray
    attributes: Any = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to_arrow(self):
        """One row per (query, rank) hit, without padding: query, rank, id, distance + attributes."""
        import pyarrow as pa

        q, k = self.ids.shape
        keep = (self.ids >= 0).reshape(-1)
        table = pa.table(
            {
                "query": np.repeat(np.arange(q, dtype=np.int64), k)[keep],
                "rank": np.tile(np.arange(k, dtype=np.int32), q)[keep],
                "id": self.ids.reshape(-1)[keep],
                "distance": self.distances.reshape(-1)[keep],
            }
        )
        if self.attributes is not None:
            attrs = self.attributes.filter(pa.array(keep))
            for name in attrs.column_names:
                table = table.append_column(name, attrs.column(name))
        return table

    def to_pandas(self):
        """``to_arrow()`` as a pandas DataFrame."""
        return self.to_arrow().to_pandas()
