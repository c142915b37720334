"""The index contract: what every ANN index over one sealed segment must do.

An index sees a segment as arrays: ``vectors`` (n, d) float32 (usually memory-mapped from the
segment's Arrow file) and internal row ``offsets`` 0..n-1. It knows nothing of ids, files or the
WAL: the engine maps offsets to the user's int64 ids, passes deletions as an ``allowed`` mask, and
persists an index through ``to_arrays`` / ``from_arrays`` in a checksummed file of its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np


class VectorIndex(ABC):
    """An ANN index over the rows of one sealed segment."""

    kind: ClassVar[str]

    @classmethod
    @abstractmethod
    def build(
        cls,
        vectors: np.ndarray,
        metric: str,
        config: Any,
        *,
        quantizer: Any = None,
        progress: bool = False,
    ) -> VectorIndex:
        """Build over ``vectors`` (n, d) float32 with ``metric`` and the index ``config`` dataclass.

        ``quantizer`` is a trained ``vecdb.quant.base.Quantizer`` or None (full precision).
        """

    @abstractmethod
    def search(
        self,
        queries: np.ndarray,
        k: int,
        params: Mapping[str, Any],
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """queries: (q, d) float32 -> (offsets (q, k) int64 padded -1, distances (q, k) float32 padded +inf).

        ``params`` holds per-query knobs (ef, nprobe, rerank...); never stored on the index.
        ``allowed``: (n,) bool of rows that may be returned (deletions, filters); None = all.
        """

    def search_one(self, query: Any, k: Any, ef: Any, ids: np.ndarray | None = None,
                   allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int] | None:
        """A single-call path for one query: (ids (1, k), distances (1, k), filled), or
        None when the index has none or does not take these inputs (see ``HNSWIndex.search_one``);
        callers then use ``search``. By default there is none."""
        return None

    @abstractmethod
    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, named arrays) that ``from_arrays`` turns back into this index."""

    @classmethod
    @abstractmethod
    def from_arrays(
        cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], vectors: np.ndarray, quantizer: Any = None
    ) -> VectorIndex:
        """Rebuild from ``to_arrays`` output (arrays may be read-only memory maps) and the segment's vectors."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes this index holds in memory beyond the segment's vectors."""
