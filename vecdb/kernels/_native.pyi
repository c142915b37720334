"""Type stubs for the C extension ``vecdb._native`` (built from native/; optional).

Every kernel validates dtype, ndim, shape and C-contiguity (TypeError for a wrong type or dtype,
ValueError for a wrong shape, layout or read-only ``out``), releases the GIL while it runs, and
writes into the caller's ``out``. Semantics are those of ``vecdb/kernels/reference.py``.
Metric codes: 0 = l2 (squared), 1 = ip (-dot), 2 = cosine (1 - cos; zero norm -> 1).
"""

import numpy as np
import numpy.typing as npt

def simd_level() -> str:
    """The active kernel level: "scalar", "avx2" or "avx512"."""

def set_simd_level(name: str) -> str:
    """Cap the level at ``name`` (scalar | avx2 | avx512); returns the level now active (the best the
    CPU supports at or below the cap). ValueError on an unknown name."""

def cpu_features() -> dict[str, bool]:
    """avx2, fma, f16c, popcnt, avx512f, avx512bw, avx512vl, avx512vpopcntdq as probed at import."""

def function_pointers() -> dict[str, int]:
    """Addresses of the active level's C kernels (signatures: native/include/vecdb_kernels.h) for
    ctypes / numba callers; valid for this process only, and the C functions check nothing."""

def distances_f32(
    query: npt.NDArray[np.float32], rows: npt.NDArray[np.float32], metric: int, out: npt.NDArray[np.float32]
) -> None:
    """query: (d,) float32, rows: (n, d) float32, out: (n,) float32."""

def distances_f32_at(
    query: npt.NDArray[np.float32],
    rows: npt.NDArray[np.float32],
    offsets: npt.NDArray[np.int64],
    metric: int,
    out: npt.NDArray[np.float32],
) -> None:
    """Distances to rows[offsets]: offsets (m,) int64 in [0, n) (IndexError otherwise), out (m,)."""

def topk_f32_at(
    query: npt.NDArray[np.float32],
    rows: npt.NDArray[np.float32],
    offsets: npt.NDArray[np.int64],
    metric: int,
    k: int,
    out_idx: npt.NDArray[np.int64],
    out_dist: npt.NDArray[np.float32],
) -> int:
    """The k nearest of rows[offsets]: out_idx (k,) gets row offsets, ascending (distance, position in
    offsets), NaN skipped, padded -1 / +inf; IndexError for an offset outside [0, n); returns the count."""

def distances_f16(
    query: npt.NDArray[np.float32], rows: npt.NDArray[np.float16], metric: int, out: npt.NDArray[np.float32]
) -> None:
    """query: (d,) float32, rows: (n, d) float16, out: (n,) float32."""

def distances_sq8(
    query: npt.NDArray[np.float32],
    codes: npt.NDArray[np.uint8],
    scale: npt.NDArray[np.float32],
    offset: npt.NDArray[np.float32],
    metric: int,
    out: npt.NDArray[np.float32],
) -> None:
    """codes: (n, d) uint8 decoded as offset + scale * code (scale, offset: (d,)), out: (n,)."""

def hamming(
    query_code: npt.NDArray[np.uint64], codes: npt.NDArray[np.uint64], out: npt.NDArray[np.int32]
) -> None:
    """query_code: (w,) uint64, codes: (n, w) uint64, out: (n,) int32."""

def bitplane_ip_sym(
    query_planes: npt.NDArray[np.uint64],
    codes: npt.NDArray[np.uint64],
    query_weights: npt.NDArray[np.float32],
    code_weights: npt.NDArray[np.float32],
    dim: int,
    out: npt.NDArray[np.float32],
) -> None:
    """query_planes: (uq, w), codes: (n, u, w) uint64, weights (uq,) / (u,) float32,
    0 <= dim <= 64*w, out: (n,) float32."""

def bitplane_ip_asym(
    lut: npt.NDArray[np.float32],
    codes: npt.NDArray[np.uint64],
    code_weights: npt.NDArray[np.float32],
    query_sum: float,
    out: npt.NDArray[np.float32],
) -> None:
    """lut: (w*8, 256) float32 (reference.bitplane_lut), codes: (n, u, w) uint64, out: (n,)."""

def pq_adc(lut: npt.NDArray[np.float32], codes: npt.NDArray[np.uint8], out: npt.NDArray[np.float32]) -> None:
    """lut: (m, ksub) float32 with ksub <= 256, codes: (n, m) uint8 all < ksub (ValueError
    otherwise), out: (n,) float32."""

def pq4_fastscan(
    lut_u8: npt.NDArray[np.uint8], packed: npt.NDArray[np.uint8], n: int, out: npt.NDArray[np.uint16]
) -> None:
    """lut_u8: (m, 16) uint8, packed: (nblocks, m, 16) uint8 fast-scan layout with
    nblocks >= ceil(n / 32), out: (n,) uint16 (sums wrap modulo 2**16)."""

def topk(
    distances: npt.NDArray[np.float32],
    k: int,
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None,
    out_idx: npt.NDArray[np.int64],
    out_dist: npt.NDArray[np.float32],
) -> int:
    """distances: (n,) float32, mask: (n,) or None, out_idx / out_dist: (k,). Ascending (distance,
    index), NaN and masked entries skipped, padded -1 / +inf; returns how many were filled."""
