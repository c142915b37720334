"""Product quantization: m sub-space codebooks, ADC lookup tables, 4-bit fast-scan, optional OPQ rotation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vecdb import kernels
from vecdb.quant.base import Quantizer
from vecdb.quant.kmeans import assign, kmeans
from vecdb.types import check_metric

# OPQ alternations run on a subsample with short k-means; the final codebooks use the full sample.
_OPQ_SAMPLE = 20000
_OPQ_KMEANS_ITERS = 8


@dataclass(frozen=True)
class PQQuery:
    """Per-query state: the float ADC table and, for 4-bit codes, its uint8 quantization.

    lut: (m, ksub) float32; const: added to every sum (1 for cosine, since cosine = 1 - ip);
    lut_u8/lut_scale/lut_bias: the fast-scan table, distance ~ lut_bias + lut_scale * sum + const.
    """

    lut: np.ndarray
    const: float
    lut_u8: np.ndarray | None = None
    lut_scale: float = 0.0
    lut_bias: float = 0.0


@dataclass(frozen=True)
class PQScanLayout:
    """4-bit codes of n rows in the fast-scan block layout (``fastscan_layout``)."""

    packed: np.ndarray
    n: int

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)


class ProductQuantizer(Quantizer):
    """PQ with ``m`` sub-quantizers of ``2**bits`` centroids (bits 8, or 4 for fast-scan).

    Dimensions are split into m groups whose sizes differ by at most one, each zero-padded to
    ``dsub = ceil(dim / m)``. Cosine works as ip on unit vectors (decode
    returns unit vectors). With ``opq=True`` an orthogonal rotation is learned by alternating k-means and
    Procrustes, and kept only when it lowers the reconstruction error on the training sample.
    Codes: 8-bit -> (n, m) uint8; 4-bit -> (n, ceil(m/2)) uint8, sub-quantizer 2j in the low nibble of
    byte j and 2j+1 in the high nibble (plain layout for random access; ``fastscan_layout`` for scans).
    """

    kind: ClassVar[str] = "pq"

    def __init__(
        self, dim: int, metric: str, m: int, bits: int = 8, opq: bool = False,
        seed: int = 0, niter: int = 20, opq_iters: int = 4,
    ) -> None:
        super().__init__(dim, check_metric(metric))
        if bits not in (4, 8):
            raise ValueError(f"PQ bits must be 4 or 8, got {bits}")
        if not 1 <= m <= max(dim, 1) or dim < 1:
            raise ValueError(f"PQ m must be in 1..dim ({dim}), got {m}")
        self.m, self.bits, self.opq, self.seed = m, bits, opq, seed
        self.niter, self.opq_iters = niter, opq_iters
        self.dsub = -(-dim // m)
        # Sub-space j takes the next dim // m (+1 for the first dim % m) dimensions, zero-padded to dsub:
        # slot -> source dimension, where ``dim`` points at an all-zero column.
        sizes = np.full(m, dim // m) + (np.arange(m) < dim % m)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        within = np.arange(self.dsub)[None, :]
        self._slots = np.where(within < sizes[:, None], starts[:, None] + within, dim).reshape(-1)
        self.ksub = 1 << bits
        self.codebooks: np.ndarray | None = None  # (m, ksub, dsub) float32
        self.rotation: np.ndarray | None = None  # (m*dsub, m*dsub) float32, applied as x @ R

    # -- training -------------------------------------------------------------------------------

    def train(self, sample: np.ndarray) -> None:
        """Codebooks (and the OPQ rotation) from ``sample`` (n, d) float32; n >= 1."""
        x = self._lift(self._check(sample))
        if x.shape[0] == 0:
            raise ValueError("PQ training needs at least one row")
        books = self._train_codebooks(x, self.niter)
        self.rotation = None
        if self.opq and x.shape[0] > 1:
            rot, rot_books = self._train_opq(x)
            if _recon_error(x @ rot, rot_books) < _recon_error(x, books):
                self.rotation, books = rot, rot_books
        self.codebooks = books

    def _train_codebooks(self, x: np.ndarray, niter: int) -> np.ndarray:
        books = np.empty((self.m, self.ksub, self.dsub), dtype=np.float32)
        for j in range(self.m):
            sub = x[:, j * self.dsub : (j + 1) * self.dsub]
            books[j] = kmeans(sub, self.ksub, niter=niter, seed=self.seed + j)
        return books

    def _train_opq(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Alternate codebooks and the orthogonal Procrustes rotation (OPQ, non-parametric)."""
        rng = np.random.default_rng(self.seed)
        xs = x if x.shape[0] <= _OPQ_SAMPLE else x[rng.choice(x.shape[0], _OPQ_SAMPLE, replace=False)]
        rot = np.eye(x.shape[1], dtype=np.float32)
        for _ in range(self.opq_iters):
            xr = xs @ rot
            books = self._train_codebooks(xr, _OPQ_KMEANS_ITERS)
            recon = _reconstruct(_assign_all(xr, books), books)
            # argmin_R ||xs R - recon|| over orthogonal R is U V^T from the SVD of xs^T recon.
            u, _, vt = np.linalg.svd(xs.T.astype(np.float64) @ recon.astype(np.float64))
            rot = (u @ vt).astype(np.float32)
        return rot, self._train_codebooks(x @ rot, self.niter)

    @property
    def is_trained(self) -> bool:
        return self.codebooks is not None

    @property
    def code_size(self) -> int:
        return self.m if self.bits == 8 else (self.m + 1) // 2

    # -- codes ----------------------------------------------------------------------------------

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, d) float32 -> (n, code_size) uint8."""
        books = self._books()
        return self._pack_plain(_assign_all(self._transform(self._check(vectors)), books))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) uint8 -> (n, d) float32 reconstruction (unit vectors for cosine)."""
        y = _reconstruct(self.plain_codes(codes), self._books())
        if self.rotation is not None:
            y = y @ self.rotation.T
        real = self._slots < self.dim
        out = np.empty((y.shape[0], self.dim), dtype=np.float32)
        out[:, self._slots[real]] = y[:, real]
        return out

    def plain_codes(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) stored codes -> (n, m) uint8, one centroid index per sub-quantizer."""
        codes = self._check_codes(codes)
        if self.bits == 8:
            return codes
        both = np.stack([codes & 0x0F, codes >> 4], axis=2).reshape(codes.shape[0], -1)
        return np.ascontiguousarray(both[:, : self.m])

    def fastscan_layout(self, codes: np.ndarray) -> np.ndarray:
        """4-bit codes -> the kernels' fast-scan block layout (ceil(n/32), m, 16) uint8."""
        if self.bits != 4:
            raise ValueError("the fast-scan layout exists only for 4-bit PQ")
        return kernels.pq4_pack(self.plain_codes(codes))

    def _pack_plain(self, plain: np.ndarray) -> np.ndarray:
        if self.bits == 8:
            return plain
        if self.m % 2:
            plain = np.concatenate([plain, np.zeros((plain.shape[0], 1), dtype=np.uint8)], axis=1)
        return np.ascontiguousarray(plain[:, 0::2] | (plain[:, 1::2] << 4))

    # -- search ---------------------------------------------------------------------------------

    def prepare(self, query: np.ndarray) -> PQQuery:
        """ADC tables for one query (d,) float32."""
        q = self._transform(np.asarray(query, dtype=np.float32).reshape(1, -1)).reshape(self.m, self.dsub)
        books = self._books()
        dots = np.einsum("jd,jkd->jk", q.astype(np.float64), books.astype(np.float64))
        if self.metric == "l2":
            norms = (books.astype(np.float64) ** 2).sum(2)
            lut = (q.astype(np.float64) ** 2).sum(1)[:, None] + norms - 2.0 * dots
            const = 0.0
        else:
            lut, const = -dots, 1.0 if self.metric == "cosine" else 0.0
        lut32 = lut.astype(np.float32)
        if self.bits == 8:
            return PQQuery(lut32, const)
        lut_u8, scale, bias = kernels.quantize_lut(lut32)
        return PQQuery(lut32, const, lut_u8, scale, bias)

    def distances(self, prepared: PQQuery, codes: np.ndarray) -> np.ndarray:
        """Exact ADC distances (n,) float32 from the float table (any code layout, random access)."""
        return kernels.pq_adc(prepared.lut, self.plain_codes(codes)) + np.float32(prepared.const)

    def scan_layout(self, codes: np.ndarray) -> np.ndarray | PQScanLayout:
        """4-bit codes go to the fast-scan layout; 8-bit codes are scanned as stored."""
        if self.bits != 4:
            return self._check_codes(codes)
        return PQScanLayout(self.fastscan_layout(codes), int(codes.shape[0]))

    def scan(self, prepared: PQQuery, layout: np.ndarray | PQScanLayout) -> np.ndarray:
        """Whole-segment scan: the fast scan for 4-bit codes (uint8 table), exact ADC for 8-bit."""
        if isinstance(layout, PQScanLayout):
            return self.fastscan(prepared, layout.packed, layout.n)
        return self.distances(prepared, layout)

    def fastscan(self, prepared: PQQuery, packed: np.ndarray, n: int) -> np.ndarray:
        """4-bit scan over ``fastscan_layout`` blocks of n rows with the uint8 table -> (n,) float32."""
        if prepared.lut_u8 is None:
            raise ValueError("fast-scan needs a 4-bit quantizer's prepared query")
        sums = kernels.pq4_fastscan(prepared.lut_u8, packed, n).astype(np.float32)
        return (prepared.lut_bias + prepared.const) + prepared.lut_scale * sums

    # -- persistence ----------------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        total = 0 if self.codebooks is None else self.codebooks.nbytes
        return total + (0 if self.rotation is None else self.rotation.nbytes)

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        books = self._books()
        meta = {
            "kind": self.kind, "dim": self.dim, "metric": self.metric, "m": self.m, "bits": self.bits,
            "opq": self.opq, "seed": self.seed, "niter": self.niter, "opq_iters": self.opq_iters,
        }
        arrays = {"codebooks": books.copy()}
        if self.rotation is not None:
            arrays["rotation"] = self.rotation.copy()
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> ProductQuantizer:
        q = cls(
            int(meta["dim"]), str(meta["metric"]), int(meta["m"]), bits=int(meta["bits"]),
            opq=bool(meta["opq"]), seed=int(meta["seed"]), niter=int(meta["niter"]),
            opq_iters=int(meta["opq_iters"]),
        )
        books = np.ascontiguousarray(arrays["codebooks"], dtype=np.float32)
        if books.shape != (q.m, q.ksub, q.dsub):
            raise ValueError(f"PQ codebooks have shape {books.shape}, expected {(q.m, q.ksub, q.dsub)}")
        q.codebooks = books
        if "rotation" in arrays:
            q.rotation = np.ascontiguousarray(arrays["rotation"], dtype=np.float32)
        return q

    # -- helpers --------------------------------------------------------------------------------

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("PQ input contains NaN or infinite values")
        return x

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != self.code_size:
            raise ValueError(f"expected (n, {self.code_size}) uint8 codes, got {codes.dtype} {codes.shape}")
        return codes

    def _lift(self, x: np.ndarray) -> np.ndarray:
        """Normalise (cosine) and spread the dimensions over the m zero-padded sub-spaces."""
        if self.metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.where(norms > 0, norms, 1.0)
        padded = np.concatenate([x, np.zeros((x.shape[0], 1), dtype=np.float32)], axis=1)
        return np.ascontiguousarray(padded[:, self._slots], dtype=np.float32)

    def _transform(self, x: np.ndarray) -> np.ndarray:
        x = self._lift(x)
        return x if self.rotation is None else x @ self.rotation

    def _books(self) -> np.ndarray:
        if self.codebooks is None:
            raise ValueError("PQ quantizer is not trained: call train() first")
        return self.codebooks


def _assign_all(x: np.ndarray, books: np.ndarray) -> np.ndarray:
    """(n, m*dsub) lifted vectors -> (n, m) uint8 nearest centroid per sub-space."""
    m, _, dsub = books.shape
    out = np.empty((x.shape[0], m), dtype=np.uint8)
    for j in range(m):
        out[:, j] = assign(x[:, j * dsub : (j + 1) * dsub], books[j])
    return out


def _reconstruct(plain: np.ndarray, books: np.ndarray) -> np.ndarray:
    m = books.shape[0]
    return np.concatenate([books[j][plain[:, j]] for j in range(m)], axis=1)


def _recon_error(x: np.ndarray, books: np.ndarray) -> float:
    return float(((x - _reconstruct(_assign_all(x, books), books)) ** 2).sum(1).mean())
