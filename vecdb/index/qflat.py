"""Compressed exact scan: score every row's code, keep the best ``k * rerank``, re-rank with full vectors.

This is what ``index=vecdb.Flat(), quantization=...`` builds per segment: a scan that reads
``code_size`` bytes per row instead of ``4 * d``, with the final order decided by the fp32 vectors
(memory-mapped from the segment, so only the candidates' pages are touched).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels
from vecdb.quant.base import Quantizer
from vecdb.quant.rerank import rerank

DEFAULT_RERANK = 4


class QuantizedFlatIndex:
    """Codes of one segment plus the quantizer that scores them."""

    kind: ClassVar[str] = "qflat"

    def __init__(self, vectors: np.ndarray, metric: str, quantizer: Quantizer, codes: np.ndarray) -> None:
        self.vectors = vectors
        self.metric = metric
        self.quantizer = quantizer
        self.codes = codes
        # Rearranged once here (fast-scan blocks for 4-bit PQ and BEBR), not once per query.
        self.layout = quantizer.scan_layout(codes)

    @classmethod
    def build(cls, vectors: np.ndarray, metric: str, config: Any = None, *, quantizer: Quantizer | None = None,
              progress: bool = False) -> QuantizedFlatIndex:
        if quantizer is None or not quantizer.is_trained:
            raise ValueError("a quantized flat index needs a trained quantizer")
        codes = np.ascontiguousarray(quantizer.encode(np.asarray(vectors, dtype=np.float32)))
        return cls(vectors, metric, quantizer, codes)

    def search(self, queries: np.ndarray, k: int, params: Mapping[str, Any],
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        rerank_factor = int(params.get("rerank", DEFAULT_RERANK))
        q = queries.shape[0]
        out_ids = np.full((q, k), -1, np.int64)
        out_d = np.full((q, k), np.inf, np.float32)
        shortlist = k * max(rerank_factor, 1)
        for r in range(q):
            approx = self.quantizer.scan(self.quantizer.prepare(queries[r]), self.layout)
            cand, cand_d = kernels.topk(approx, shortlist, allowed)
            if rerank_factor <= 0:
                out_ids[r], out_d[r] = cand[:k], cand_d[:k]
                continue
            out_ids[r], out_d[r] = rerank(queries[r], cand, self.vectors, self.metric, k)
        return out_ids, out_d

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"kind": self.kind, "metric": self.metric}, {"codes": self.codes}

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray], vectors: np.ndarray,
                    quantizer: Quantizer | None = None) -> QuantizedFlatIndex:
        if quantizer is None:
            raise ValueError("a quantized flat index needs its quantizer")
        codes = arrays["codes"]
        if codes.shape != (vectors.shape[0], quantizer.code_size):
            raise ValueError(
                f"codes of shape {codes.shape} do not match {vectors.shape[0]} rows x {quantizer.code_size} bytes"
            )
        return cls(vectors, metric=str(meta.get("metric", "l2")), quantizer=quantizer, codes=codes)

    @property
    def nbytes(self) -> int:
        layout = 0 if self.layout is self.codes else int(self.layout.nbytes)
        return int(self.codes.nbytes + layout + self.quantizer.nbytes)
