"""Scalar quantization: one byte per dimension (per-dimension affine ranges) or fp16."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels
from vecdb.quant.base import Quantizer
from vecdb.types import check_metric

_F16_MAX = float(np.finfo(np.float16).max)


class ScalarQuantizer(Quantizer):
    """8-bit codes ``decoded = offset + scale * code`` per dimension, or fp16 (``bits=16``).

    clip: fraction of the sample trimmed at each end of every dimension's range (0 = min/max). A small
    value (e.g. 1e-3) spends the 256 levels on the bulk of the data; outliers saturate at the ends.
    """

    kind: ClassVar[str] = "sq"

    def __init__(self, dim: int, metric: str, bits: int = 8, clip: float = 0.0) -> None:
        super().__init__(dim, check_metric(metric))
        if bits not in (8, 16):
            raise ValueError(f"SQ bits must be 8 or 16, got {bits}")
        if not 0.0 <= clip < 0.5:
            raise ValueError(f"SQ clip must be in [0, 0.5), got {clip}")
        if dim < 1:
            raise ValueError(f"SQ dim must be >= 1, got {dim}")
        self.bits = bits
        self.clip = clip
        self.scale: np.ndarray | None = None  # (d,) float32
        self.offset: np.ndarray | None = None  # (d,) float32
        if bits == 16:  # fp16 needs no training
            self.scale = np.ones(dim, dtype=np.float32)
            self.offset = np.zeros(dim, dtype=np.float32)

    def train(self, sample: np.ndarray) -> None:
        """Per-dimension ranges from ``sample`` (n, d) float32 (nothing to learn for fp16)."""
        x = self._check(sample)
        if x.shape[0] == 0:
            raise ValueError("SQ training needs at least one row")
        if self.bits == 16:
            return
        if self.clip > 0.0:
            lo, hi = np.quantile(x, [self.clip, 1.0 - self.clip], axis=0)
        else:
            lo, hi = x.min(axis=0), x.max(axis=0)
        # A constant dimension gets scale 0: every code decodes to that constant exactly.
        self.offset = lo.astype(np.float32)
        self.scale = ((hi - lo) / 255.0).astype(np.float32)

    @property
    def is_trained(self) -> bool:
        return self.scale is not None

    @property
    def code_size(self) -> int:
        return self.dim * (2 if self.bits == 16 else 1)

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, d) float32 -> (n, d) uint8 codes, or (n, 2d) bytes of fp16 values."""
        x = self._check(vectors)
        scale, offset = self._ranges()
        if self.bits == 16:
            half = np.clip(x, -_F16_MAX, _F16_MAX).astype(np.float16)
            return np.ascontiguousarray(half).view(np.uint8).reshape(x.shape[0], self.code_size)
        safe = np.where(scale > 0, scale, 1.0)
        q = np.rint((x - offset[None, :]) / safe[None, :])
        return np.clip(q, 0, 255).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) uint8 -> (n, d) float32."""
        codes = self._check_codes(codes)
        if self.bits == 16:
            return self._halves(codes).astype(np.float32)
        scale, offset = self._ranges()
        return offset[None, :] + scale[None, :] * codes.astype(np.float32)

    def prepare(self, query: np.ndarray) -> np.ndarray:
        """The query itself, (d,) float32 contiguous: SQ scans are asymmetric."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query has dimension {q.shape[0]}, quantizer expects {self.dim}")
        return q

    def distances(self, prepared: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Distances (n,) float32 from the fp32 query to the decoded codes, through the kernels."""
        codes = self._check_codes(codes)
        if self.bits == 16:
            return kernels.distances_f16(prepared, self._halves(codes), self.metric)
        scale, offset = self._ranges()
        return kernels.distances_sq8(prepared, codes, scale, offset, self.metric)

    @property
    def nbytes(self) -> int:
        return 0 if self.scale is None or self.offset is None else self.scale.nbytes + self.offset.nbytes

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        scale, offset = self._ranges()
        meta = {"kind": self.kind, "dim": self.dim, "metric": self.metric, "bits": self.bits,
                "clip": self.clip}
        return meta, {"scale": scale.copy(), "offset": offset.copy()}

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ScalarQuantizer:
        q = cls(int(meta["dim"]), str(meta["metric"]), bits=int(meta["bits"]), clip=float(meta["clip"]))
        q.scale = np.ascontiguousarray(arrays["scale"], dtype=np.float32)
        q.offset = np.ascontiguousarray(arrays["offset"], dtype=np.float32)
        if q.scale.shape != (q.dim,) or q.offset.shape != (q.dim,):
            raise ValueError(f"SQ arrays do not match dim {q.dim}")
        return q

    # -- helpers --------------------------------------------------------------------------------

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got shape {x.shape}")
        return x

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != self.code_size:
            raise ValueError(f"expected (n, {self.code_size}) uint8 codes, got {codes.dtype} {codes.shape}")
        return codes

    def _halves(self, codes: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(codes).view(np.float16).reshape(codes.shape[0], self.dim)

    def _ranges(self) -> tuple[np.ndarray, np.ndarray]:
        if self.scale is None or self.offset is None:
            raise ValueError("SQ quantizer is not trained: call train() first")
        return self.scale, self.offset
