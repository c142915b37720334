"""numba kernels for compressed codes: binary (Hamming), bit-plane inner products, PQ ADC, 4-bit fast scan.

Layouts and formulas are those of ``kernels.reference``. Nothing here validates its arguments
(``kernels.dispatch`` does); all are plain njit functions, callable from other njit code.
Popcounts go through LLVM's ``ctpop`` intrinsic, which is one ``popcnt`` instruction on x86 and
vectorizes (nibble-table shuffles) when LLVM widens the loop.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

FAST = {"reassoc", "contract", "nsz", "arcp"}


@intrinsic
def _ctpop_u64(typingctx, x):  # type: ignore[no-untyped-def]
    """llvm.ctpop.i64 on a uint64 (numba has no popcount of its own)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return types.uint64(types.uint64), codegen


@njit(cache=True, nogil=True)
def popcount64(x: np.uint64) -> np.uint64:
    """Number of set bits of one uint64 word."""
    return _ctpop_u64(x)


@njit(cache=True, nogil=True)
def hamming_words(a: np.ndarray, b: np.ndarray) -> int:
    """Hamming distance of two (w,) uint64 packed codes."""
    acc = np.uint64(0)
    for i in range(a.shape[0]):
        acc += _ctpop_u64(a[i] ^ b[i])
    return np.int64(acc)


@njit(cache=True, nogil=True)
def hamming_into(query_code: np.ndarray, codes: np.ndarray, out: np.ndarray) -> None:
    """query_code (w,) uint64, codes (n, w) uint64 -> out (n,) int32."""
    for i in range(codes.shape[0]):
        out[i] = hamming_words(query_code, codes[i])


@njit(cache=True, nogil=True)
def bitplane_ip_sym_into(
    query_planes: np.ndarray,
    codes: np.ndarray,
    query_weights: np.ndarray,
    code_weights: np.ndarray,
    dim: int,
    out: np.ndarray,
) -> None:
    """query_planes (uq, w), codes (n, u, w) uint64, weights (uq,)/(u,) float32 -> out (n,) float32
    ``-sum_ij qw[i] cw[j] (dim - 2 popcount(q_i ^ x_j))``, summed in float64 like the reference."""
    uq = query_planes.shape[0]
    n, u, _ = codes.shape
    # The weight products are per query, not per row: hoist them.
    wprod = np.empty((uq, u), dtype=np.float64)
    for a in range(uq):
        for b in range(u):
            wprod[a, b] = np.float64(query_weights[a]) * np.float64(code_weights[b])
    fdim = np.float64(dim)
    for r in range(n):
        row = codes[r]
        total = 0.0
        for a in range(uq):
            qa = query_planes[a]
            for b in range(u):
                ham = hamming_words(qa, row[b])
                total += wprod[a, b] * (fdim - 2.0 * np.float64(ham))
        out[r] = np.float32(-total)


@njit(cache=True, nogil=True)
def bitplane_ip_asym_into(
    lut: np.ndarray, code_bytes: np.ndarray, code_weights: np.ndarray, query_sum: float, out: np.ndarray
) -> None:
    """lut (w*8, 256) float32, codes (n, u, w) uint64 viewed as (n, u, w*8) uint8, code_weights (u,)
    -> out (n,) float32 ``-sum_j cw[j] (2 S_j - query_sum)``.

    Four scalar chains per plane and no fastmath: with reassociation LLVM turns the table loop
    into AVX2 gathers, several times slower than plain loads on AMD (3-5x measured here).
    """
    n, u, nb = code_bytes.shape
    nb4 = nb - nb % 4
    qs = np.float64(query_sum)
    for r in range(n):
        total = 0.0
        for j in range(u):
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            a2 = np.float32(0.0)
            a3 = np.float32(0.0)
            for b in range(0, nb4, 4):
                a0 += lut[b, code_bytes[r, j, b]]
                a1 += lut[b + 1, code_bytes[r, j, b + 1]]
                a2 += lut[b + 2, code_bytes[r, j, b + 2]]
                a3 += lut[b + 3, code_bytes[r, j, b + 3]]
            for b in range(nb4, nb):
                a0 += lut[b, code_bytes[r, j, b]]
            s = np.float64((a0 + a1) + (a2 + a3))
            total += np.float64(code_weights[j]) * (2.0 * s - qs)
        out[r] = np.float32(-total)


@njit(cache=True, nogil=True, fastmath=FAST)
def pq_adc_into(lut: np.ndarray, codes: np.ndarray, out: np.ndarray) -> None:
    """lut (m, ksub) float32, codes (n, m) uint8 (each < ksub, trusted) -> out (n,) float32."""
    n, m = codes.shape
    for i in range(n):
        acc = np.float32(0.0)
        for j in range(m):
            acc += lut[j, codes[i, j]]
        out[i] = acc


@njit(cache=True, nogil=True)
def pq4_fastscan_into(lut_u8: np.ndarray, packed: np.ndarray, n: int, out: np.ndarray) -> None:
    """lut_u8 (m, 16) uint8, packed (ceil(n/32), m, 16) fast-scan layout -> out (n,) uint16.

    Without SIMD shuffles in numba, this walks each block column by column: byte t of every
    sub-quantizer holds rows t (low nibble) and t + 16 (high nibble), so two register
    accumulators finish two rows per pass while the block (m * 16 bytes) stays in L1.
    int32 sums truncated to 16 bits equal the reference's wrapping uint16 sums.
    """
    nblocks, m, _ = packed.shape
    lut = np.empty((m, 16), dtype=np.int32)  # widened once: no per-lookup zero extension
    for j in range(m):
        for c in range(16):
            lut[j, c] = lut_u8[j, c]
    for blk in range(nblocks):
        block = packed[blk]
        base = blk * 32
        for t in range(16):
            lo = 0
            hi = 0
            for j in range(m):
                byte = np.int32(block[j, t])
                lo += lut[j, byte & 15]
                hi += lut[j, byte >> 4]
            if base + t < n:
                out[base + t] = np.uint16(lo & 0xFFFF)
            if base + 16 + t < n:
                out[base + 16 + t] = np.uint16(hi & 0xFFFF)


@njit(cache=True, nogil=True)
def binarize_into(y: np.ndarray, alphas: np.ndarray, signs: np.ndarray, recon: np.ndarray) -> None:
    """``reference.binarize`` element by element: y (n, D) float32, alphas (u,) float32 -> signs
    (n, u, D) bool, recon (n, D) float32. The same float32 additions in the same order per element,
    so the result is bit-identical; one pass instead of five array passes per plane."""
    n, dim = y.shape
    u = alphas.shape[0]
    for r in range(n):
        for j in range(dim):
            resid = y[r, j]
            rec = np.float32(0.0)
            for t in range(u):
                positive = resid >= 0
                signs[r, t, j] = positive
                step = alphas[t] if positive else -alphas[t]
                rec += step
                resid -= step
            recon[r, j] = rec


@njit(cache=True, nogil=True)
def binarize_rescaled_into(
    y: np.ndarray, alphas: np.ndarray, scales: np.ndarray, signs: np.ndarray, recon: np.ndarray
) -> None:
    """``reference.binarize_rescaled``: per row, code y against every grid scale, score each by the
    cosine between y and the reconstruction (in units of alphas, float32 in plane order, as the
    reference forms it), then write the planes of the best. Decisions take the reference's float32
    steps; the per-plane loops over dimensions are branch-free selects, so they vectorize. (The final
    pass repeats the trial loop with the sign stores: storing signs in every trial, to skip it, made
    the kernel 2.5x slower.)"""
    n, dim = y.shape
    u = alphas.shape[0]
    resid = np.empty(dim, dtype=np.float32)
    rec = np.empty(dim, dtype=np.float32)
    for r in range(n):
        row = y[r]
        best_score = -np.inf
        best = 0
        for si in range(scales.shape[0]):
            resid[:] = row
            rec[:] = 0.0
            for t in range(u):
                step = alphas[t] * scales[si]
                weight = alphas[t]
                for j in range(dim):
                    positive = resid[j] >= 0
                    resid[j] -= step if positive else -step
                    rec[j] += weight if positive else -weight
            dot = 0.0
            norm2 = 0.0
            for j in range(dim):
                dot += np.float64(rec[j]) * np.float64(row[j])
                norm2 += np.float64(rec[j]) * np.float64(rec[j])
            score = dot / np.sqrt(norm2) if norm2 > 0 else dot
            if score > best_score:
                best_score = score
                best = si
        resid[:] = row
        rec[:] = 0.0
        for t in range(u):
            step = alphas[t] * scales[best]
            weight = alphas[t]
            for j in range(dim):
                positive = resid[j] >= 0
                signs[r, t, j] = positive
                resid[j] -= step if positive else -step
                rec[j] += weight if positive else -weight
        recon[r] = rec


@njit(cache=True, nogil=True)
def fastscan_affine_into(
    sums: np.ndarray, row_scale: np.ndarray, row_shift: np.ndarray, mul: np.float32, add: np.float32,
    const: np.float32, out: np.ndarray,
) -> None:
    """``reference.fastscan_affine`` in one pass (the same float32 operations in the same order), so
    a scan's epilogue reads each row's factors once instead of five array passes."""
    for i in range(sums.shape[0]):
        v = np.float32(sums[i]) * mul
        v += add
        v *= row_scale[i]
        v += row_shift[i]
        v += const
        out[i] = v


@njit(cache=True, nogil=True)
def bitplane_fastscan_lut_into(query: np.ndarray, code_weights: np.ndarray, lut: np.ndarray) -> float:
    """``reference.bitplane_fastscan_lut`` into lut (u * G, 16) float32; returns the offset. Nibble
    sums in float64 as the reference's matrix product forms them (dims 4g..4g+3, in order)."""
    d = query.shape[0]
    groups = (d + 3) // 4
    sums = np.zeros((groups, 16), dtype=np.float64)
    for g in range(groups):
        for c in range(16):
            acc = 0.0
            for t in range(4):
                if (c >> t) & 1 and 4 * g + t < d:
                    acc += np.float64(query[4 * g + t])
            sums[g, c] = acc
    q_sum = 0.0
    for i in range(d):
        q_sum += np.float64(query[i])
    cw_sum = 0.0
    for j in range(code_weights.shape[0]):
        f = -2.0 * np.float64(code_weights[j])
        cw_sum += np.float64(code_weights[j])
        for g in range(groups):
            for c in range(16):
                lut[j * groups + g, c] = np.float32(f * sums[g, c])
    return q_sum * cw_sum


@njit(cache=True, nogil=True)
def quantize_lut_into(lut: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """``reference.quantize_lut``: lut (m, 16) float32 -> out (m, 16) uint8; returns (scale, bias)."""
    m = lut.shape[0]
    mins = np.empty(m, dtype=np.float64)
    top = 0.0
    for j in range(m):
        lo = np.float64(lut[j, 0])
        for c in range(1, 16):
            lo = min(lo, np.float64(lut[j, c]))
        mins[j] = lo
        for c in range(16):
            top = max(top, np.float64(lut[j, c]) - lo)
    top = max(top, 1e-30)
    levels = min(255.0, float(65535 // m))
    scale = top / levels
    bias = 0.0
    for j in range(m):
        bias += mins[j]
        for c in range(16):
            out[j, c] = np.uint8(np.rint((np.float64(lut[j, c]) - mins[j]) / scale))
    return scale, bias
