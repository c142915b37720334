"""Dispatch of the compressed-code kernels (Hamming, bit planes, PQ ADC, 4-bit fast scan).

Same rules as ``kernels.dispatch`` (whose backend state this shares): validate once, allocate
the output, call C, else numba, else the numpy reference.
"""

from __future__ import annotations

import numpy as np

from vecdb.kernels import reference
from vecdb.kernels.dispatch import _mask_u8, state
from vecdb.kernels.validate import check_float, check_int, code_vector, float_array, small_float, stored


def hamming(query_code: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """query_code: (w,) uint64, codes: (n, w) uint64 -> (n,) int32 Hamming distances."""
    codes = stored(codes, "codes", np.uint64, 2)
    qc = code_vector(query_code, "query_code", np.uint64, (codes.shape[1],))
    out = np.empty(codes.shape[0], dtype=np.int32)
    if codes.shape[0] == 0:
        return out
    st = state()
    b = st.backend["hamming"]
    if b == "c":
        st.native.hamming(qc, codes, out)
    elif b == "numba":
        st.numba.codes.hamming_into(qc, codes, out)
    else:
        out[:] = reference.hamming(qc, codes)
    return out


def bitplane_ip_sym(
    query_planes: np.ndarray,
    codes: np.ndarray,
    query_weights: np.ndarray,
    code_weights: np.ndarray,
    dim: int,
) -> np.ndarray:
    """Minus the weighted inner product of multi-bit codes stored as bit planes.

    query_planes: (uq, w) uint64, codes: (n, u, w) uint64, query_weights: (uq,), code_weights:
    (u,) float32, dim: true dimension (<= 64 w) -> (n,) float32.
    """
    codes = stored(codes, "codes", np.uint64, 3)
    _, u, w = codes.shape
    qp = np.asarray(query_planes)
    if qp.ndim != 2:
        raise ValueError(f"query_planes must be 2-D (uq, w), got shape {qp.shape}")
    qp = code_vector(qp, "query_planes", np.uint64, (qp.shape[0], w))
    qw = small_float(query_weights, "query_weights", (qp.shape[0],))
    cw = small_float(code_weights, "code_weights", (u,))
    dim = check_int(dim, "dim", 1, 64 * w)
    out = np.empty(codes.shape[0], dtype=np.float32)
    if codes.shape[0] == 0:
        return out
    st = state()
    b = st.backend["bitplane_ip_sym"]
    if b == "c":
        st.native.bitplane_ip_sym(qp, codes, qw, cw, dim, out)
    elif b == "numba":
        st.numba.codes.bitplane_ip_sym_into(qp, codes, qw, cw, dim, out)
    else:
        out[:] = reference.bitplane_ip_sym(qp, codes, qw, cw, dim)
    return out


def bitplane_ip_asym(
    lut: np.ndarray, codes: np.ndarray, code_weights: np.ndarray, query_sum: float
) -> np.ndarray:
    """fp32 query (as ``bitplane_lut(query)`` (w*8, 256) and ``query_sum``) against multi-bit
    codes (n, u, w) uint64 with code_weights (u,) -> (n,) float32."""
    codes = stored(codes, "codes", np.uint64, 3)
    n, u, w = codes.shape
    table = small_float(lut, "lut", (w * 8, 256))
    cw = small_float(code_weights, "code_weights", (u,))
    qsum = check_float(query_sum, "query_sum")
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    st = state()
    b = st.backend["bitplane_ip_asym"]
    if b == "c":
        st.native.bitplane_ip_asym(table, codes, cw, qsum, out)
    elif b == "numba":
        st.numba.codes.bitplane_ip_asym_into(table, codes.view(np.uint8), cw, qsum, out)
    else:
        out[:] = reference.bitplane_ip_asym(table, codes, cw, qsum)
    return out


# ---------------------------------------------------------------------------------------------
# product quantization


def pq_adc(lut: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """lut: (m, ksub) float32 (ksub <= 256), codes: (n, m) uint8 -> (n,) float32 table sums."""
    codes = stored(codes, "codes", np.uint8, 2)
    n, m = codes.shape
    table = np.asarray(lut)
    if table.ndim != 2 or table.shape[0] != m or not 1 <= table.shape[1] <= 256:
        raise ValueError(f"lut must have shape ({m}, ksub) with 1 <= ksub <= 256, got {table.shape}")
    table = small_float(table, "lut", table.shape)
    out = np.empty(n, dtype=np.float32)
    if n == 0:
        return out
    # A code >= ksub would read past the table; only possible (and only checked) when ksub < 256.
    if table.shape[1] < 256 and int(codes.max()) >= table.shape[1]:
        raise ValueError(f"codes hold a value >= ksub = {table.shape[1]}")
    st = state()
    b = st.backend["pq_adc"]
    if b == "c":
        st.native.pq_adc(table, codes, out)
    elif b == "numba":
        st.numba.codes.pq_adc_into(table, codes, out)
    else:
        out[:] = reference.pq_adc(table, codes)
    return out


def pq4_fastscan(lut_u8: np.ndarray, packed: np.ndarray, n: int) -> np.ndarray:
    """lut_u8: (m, 16) uint8, packed: (ceil(n/32), m, 16) uint8 fast-scan layout of n rows
    -> (n,) uint16 sums (wrapping modulo 2^16, as the reference)."""
    table, packed, n = _fastscan_inputs(lut_u8, packed, n)
    out = np.empty(n, dtype=np.uint16)
    if n == 0:
        return out
    st = state()
    b = st.backend["pq4_fastscan"]
    if b == "c":
        st.native.pq4_fastscan(table, packed, n, out)
    elif b == "numba":
        st.numba.codes.pq4_fastscan_into(table, packed, n, out)
    else:
        out[:] = reference.pq4_fastscan(table, packed, n)
    return out


def _fastscan_inputs(lut_u8: np.ndarray, packed: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated (table, packed, n) of a 4-bit fast scan over n rows."""
    packed = stored(packed, "packed", np.uint8, 3)
    nblocks, m, width = packed.shape
    if width != 16:
        raise ValueError(f"packed must have shape (nblocks, m, 16), got {packed.shape}")
    n = check_int(n, "n", 0)
    if nblocks != (n + 31) // 32:
        raise ValueError(f"packed holds {nblocks} blocks of 32 rows; n = {n} needs {(n + 31) // 32}")
    return code_vector(lut_u8, "lut_u8", np.uint8, (m, 16)), packed, n


def pq4_fastscan_topk(
    lut_u8: np.ndarray, packed: np.ndarray, n: int, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``topk(pq4_fastscan(lut_u8, packed, n), k, mask)`` in one pass: (indices (k,) int64, sums
    (k,) float32), ascending, ties by index, padded -1 / +inf. The C kernel filters each chunk of
    sums while it is still in L1 and never writes the n sums out."""
    table, packed, n = _fastscan_inputs(lut_u8, packed, n)
    k = check_int(k, "k", 0)
    row_mask = None if mask is None else _mask_u8(mask, (n,))
    st = state()
    b = st.backend["pq4_fastscan_topk"]
    if b == "numpy":
        return reference.pq4_fastscan_topk(table, packed, n, k, None if row_mask is None else row_mask.view(np.bool_))
    out_idx = np.empty(k, dtype=np.int64)
    out_d = np.empty(k, dtype=np.float32)
    if b == "c":
        st.native.pq4_fastscan_topk(table, packed, n, k, row_mask, out_idx, out_d)
        return out_idx, out_d
    sums = np.empty(n, dtype=np.uint16)
    st.numba.codes.pq4_fastscan_into(table, packed, n, sums)
    use_mask = row_mask is not None
    st.numba.selection.topk_u16_into(sums, k, row_mask if use_mask else np.zeros(1, np.uint8), use_mask,
                                     out_idx, out_d)
    return out_idx, out_d


def binarize(
    y: np.ndarray, alphas: np.ndarray, scales: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Recurrent residual binarization (``reference.binarize``): y (n, D), alphas (u,) float32 ->
    (signs (n, u, D) bool, reconstruction (n, D) float32). With ``scales`` (s,) float32, each row
    is coded against ``alphas * s`` for its best s (``reference.binarize_rescaled``); the
    reconstruction stays in units of ``alphas``."""
    y = float_array(y, "y", 2)
    alphas = float_array(alphas, "alphas", 1)
    st = state()
    if scales is not None:
        scales = float_array(scales, "scales", 1)
        if not scales.size or (scales <= 0).any():
            raise ValueError("binarize scales must be a non-empty array of positive values")
    if st.backend["binarize"] == "numpy":
        return reference.binarize(y, alphas) if scales is None else reference.binarize_rescaled(y, alphas, scales)
    signs = np.empty((y.shape[0], alphas.shape[0], y.shape[1]), dtype=bool)
    recon = np.empty(y.shape, dtype=np.float32)
    if scales is None:
        st.numba.codes.binarize_into(y, alphas, signs, recon)
    else:
        st.numba.codes.binarize_rescaled_into(y, alphas, scales, signs, recon)
    return signs, recon


def bitplane_fastscan_lut(query: np.ndarray, code_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """The fast-scan table of a query against bit-plane codes (``reference.bitplane_fastscan_lut``):
    query (d,) float32, code_weights (u,) -> (lut (u * ceil(d / 4), 16) float32, offset)."""
    q = float_array(query, "query", 1)
    cw = float_array(code_weights, "code_weights", 1)
    st = state()
    if st.backend["bitplane_fastscan_lut"] == "numpy":
        return reference.bitplane_fastscan_lut(q, cw)
    lut = np.empty((cw.shape[0] * ((q.shape[0] + 3) // 4), 16), dtype=np.float32)
    offset = st.numba.codes.bitplane_fastscan_lut_into(q, cw, lut)
    return lut, float(offset)


def fastscan_affine(
    sums: np.ndarray, row_scale: np.ndarray, row_shift: np.ndarray, mul: float, add: float, const: float
) -> np.ndarray:
    """Distances from fast-scan sums with per-row factors (``reference.fastscan_affine``):
    ``(sums * mul + add) * row_scale + row_shift + const`` -> (n,) float32."""
    sums = stored(sums, "sums", np.uint16, 1)
    n = sums.shape[0]
    row_scale = small_float(row_scale, "row_scale", (n,))
    row_shift = small_float(row_shift, "row_shift", (n,))
    mul, add, const = (np.float32(check_float(v, name)) for v, name in ((mul, "mul"), (add, "add"), (const, "const")))
    st = state()
    if st.backend["fastscan_affine"] == "numpy":
        return reference.fastscan_affine(sums, row_scale, row_shift, mul, add, const)
    out = np.empty(n, dtype=np.float32)
    st.numba.codes.fastscan_affine_into(sums, row_scale, row_shift, mul, add, const, out)
    return out


def quantize_lut(lut: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A float32 (m, 16) table to uint8 with one scale and a bias (``reference.quantize_lut``)."""
    table = float_array(lut, "lut", 2)
    if table.shape[1] != 16 or table.shape[0] == 0:
        raise ValueError(f"lut must be (m, 16) with m >= 1, got shape {table.shape}")
    st = state()
    if st.backend["quantize_lut"] == "numpy":
        return reference.quantize_lut(table)
    out = np.empty(table.shape, dtype=np.uint8)
    scale, bias = st.numba.codes.quantize_lut_into(table, out)
    return out, float(scale), float(bias)
