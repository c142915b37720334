"""The quantizer contract: train, encode, decode, query tables, code size, memory.

Codes are always ``(n, code_size)`` uint8 rows so the engine can store them as one fixed-size
binary column whatever the quantizer; each quantizer views them as it needs (bit planes, nibbles).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np


class Quantizer(ABC):
    """Compresses (n, d) float32 vectors into fixed-size codes and scores queries against them."""

    kind: ClassVar[str]

    def __init__(self, dim: int, metric: str) -> None:
        self.dim = dim
        self.metric = metric

    @abstractmethod
    def train(self, sample: np.ndarray) -> None:
        """Fit the model on ``sample`` (n, d) float32. Raises ``ValueError`` when it cannot."""

    @property
    @abstractmethod
    def is_trained(self) -> bool:
        """Whether ``encode`` may be called."""

    @property
    @abstractmethod
    def code_size(self) -> int:
        """Bytes per encoded vector."""

    @abstractmethod
    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, d) float32 -> (n, code_size) uint8."""

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) uint8 -> (n, d) float32 approximation."""

    @abstractmethod
    def prepare(self, query: np.ndarray) -> Any:
        """Per-query state for scans (lookup tables, the query's own code...). query: (d,) float32."""

    @abstractmethod
    def distances(self, prepared: Any, codes: np.ndarray) -> np.ndarray:
        """Approximate distances (smaller is closer) from a prepared query to codes (n, code_size) -> (n,)."""

    def distances_at(self, prepared: Any, codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Approximate distances to ``codes[offsets]`` (the graph's access pattern) -> (len(offsets),)."""
        return self.distances(prepared, codes[offsets])

    def scan_layout(self, codes: np.ndarray) -> Any:
        """Codes rearranged once per segment for ``scan`` (default: the stored codes themselves)."""
        return codes

    def scan(self, prepared: Any, layout: Any) -> np.ndarray:
        """Approximate distances (n,) to every row of a ``scan_layout``. May trade a little precision
        for speed (fast-scan tables) compared with ``distances``: callers re-rank its shortlist."""
        return self.distances(prepared, layout)

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Bytes the trained model holds in memory (codebooks, transforms), not the codes."""

    @abstractmethod
    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, named arrays) for persistence with the collection."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Quantizer:
        """Inverse of ``to_arrays``."""
