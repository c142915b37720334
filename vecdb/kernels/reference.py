"""Numpy oracles for every kernel: slow, obvious, and the definition of what the fast ones compute.

This module is the kernel contract. The C (``vecdb._native``) and numba backends compute the same
functions with the same signatures; tests compare them against these to float tolerance.

Conventions
-----------
* Distances are "smaller is closer": l2 = squared euclidean, ip = -dot, cosine = 1 - cos
  (a zero-norm vector has cosine distance 1).
* Binary codes are packed little-endian into uint64 words: dimension ``i`` is bit ``i % 64`` of
  word ``i // 64``; viewed as bytes, byte ``B`` holds dimensions ``8B .. 8B+7``. Padding bits are 0.
  A set bit means +1 and a clear bit -1, so for two sign vectors ``<a, b> = dim - 2 * hamming``.
* Multi-bit (bit-plane) codes: ``codes[i, j]`` is plane ``j`` of row ``i``; row ``i`` decodes to
  ``sum_j weights[j] * s_j`` where ``s_j`` is the +-1 vector of plane ``j``.
* 4-bit PQ fast-scan layout: rows grouped in blocks of 32; ``packed[b, j, t]`` holds, for block
  ``b`` and sub-quantizer ``j``, the code of row ``32b + t`` in its low nibble and of row
  ``32b + 16 + t`` in its high nibble (missing rows of the last block are 0).
* Top-k: ascending distance, ties broken by the smaller index; NaN and masked-out entries are never
  selected; rows that cannot be filled are padded with index -1 and distance +inf.
"""

from __future__ import annotations

import numpy as np

from vecdb.types import check_metric

FASTSCAN_BLOCK = 32


def distances(query: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """query: (d,) float32, rows: (n, d) float32 -> (n,) float32 distances."""
    return distances_many(query[None, :], rows, metric)[0]


def distances_many(queries: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """queries: (q, d), rows: (n, d) float32 -> (q, n) float32 distances, computed in float64."""
    check_metric(metric)
    q = queries.astype(np.float64)
    x = rows.astype(np.float64)
    dot = q @ x.T
    if metric == "ip":
        out = -dot
    elif metric == "l2":
        out = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * dot
        out = np.maximum(out, 0.0)
    else:
        qn = np.sqrt((q * q).sum(1))[:, None]
        xn = np.sqrt((x * x).sum(1))[None, :]
        denom = qn * xn
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(denom > 0, dot / np.where(denom > 0, denom, 1.0), 0.0)
        out = 1.0 - cos
    return out.astype(np.float32)


def distances_at(query: np.ndarray, rows: np.ndarray, offsets: np.ndarray, metric: str) -> np.ndarray:
    """Distances from query (d,) to rows[offsets] (the graph's access pattern) -> (len(offsets),)."""
    return distances(query, rows[np.asarray(offsets, dtype=np.int64)], metric)


def topk_at(query: np.ndarray, rows: np.ndarray, offsets: np.ndarray, k: int, metric: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of rows[offsets] nearest to query (d,) -> (row offsets (k,) int64, distances (k,)),
    ascending, ties by position in offsets, NaN skipped, padded -1 / +inf."""
    offs = np.asarray(offsets, dtype=np.int64)
    pos, dist = topk(distances_at(query, rows, offs, metric), k)
    picked = offs[np.maximum(pos, 0)] if offs.size else np.zeros(k, np.int64)
    return np.where(pos >= 0, picked, -1), dist


def distances_f16(query: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """query: (d,) float32, rows: (n, d) float16 -> (n,) float32."""
    return distances(query, rows.astype(np.float32), metric)


def decode_sq8(codes: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """codes: (n, d) uint8 -> (n, d) float32 ``offset + scale * code`` per dimension."""
    return (offset[None, :].astype(np.float64) + scale[None, :] * codes.astype(np.float64)).astype(np.float32)


def distances_sq8(
    query: np.ndarray, codes: np.ndarray, scale: np.ndarray, offset: np.ndarray, metric: str
) -> np.ndarray:
    """Asymmetric distance from an fp32 query (d,) to 8-bit scalar codes (n, d) uint8 -> (n,)."""
    return distances(query, decode_sq8(codes, scale, offset), metric)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """bits: (n, d) bool -> (n, ceil(d / 64)) uint64, little-endian, zero padding."""
    n, d = bits.shape
    words = (d + 63) // 64
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    out = np.zeros((n, words * 8), dtype=np.uint8)
    out[:, : packed.shape[1]] = packed
    return out.view(np.uint64).reshape(n, words)


def unpack_bits(codes: np.ndarray, dim: int) -> np.ndarray:
    """codes: (n, w) uint64 -> (n, dim) bool (inverse of ``pack_bits``)."""
    as_bytes = np.ascontiguousarray(codes).view(np.uint8).reshape(codes.shape[0], -1)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :dim].astype(bool)


def _popcount(words: np.ndarray) -> np.ndarray:
    as_bytes = np.ascontiguousarray(words).view(np.uint8)
    # An explicit last dimension (not -1): reshaping an empty batch cannot infer one.
    counts = np.unpackbits(as_bytes, axis=-1).reshape(*words.shape[:-1], words.shape[-1] * 64).sum(-1)
    return counts.astype(np.int64)


def hamming(query_code: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """query_code: (w,) uint64, codes: (n, w) uint64 -> (n,) int32 Hamming distances."""
    return _popcount(codes ^ query_code[None, :]).astype(np.int32)


def bitplane_ip_sym(
    query_planes: np.ndarray,
    codes: np.ndarray,
    query_weights: np.ndarray,
    code_weights: np.ndarray,
    dim: int,
) -> np.ndarray:
    """Symmetric (code-to-code) distance between multi-bit codes: minus the weighted inner product.

    query_planes: (uq, w) uint64, codes: (n, u, w) uint64, query_weights: (uq,), code_weights: (u,)
    float32, dim: true dimension -> (n,) float32 equal to
    ``-sum_i sum_j qw[i] * cw[j] * (dim - 2 * popcount(q_i ^ x_j))``.
    """
    n, u, _ = codes.shape
    total = np.zeros(n, dtype=np.float64)
    for i in range(query_planes.shape[0]):
        for j in range(u):
            ham = _popcount(codes[:, j, :] ^ query_planes[i][None, :])
            total += float(query_weights[i]) * float(code_weights[j]) * (dim - 2.0 * ham)
    return (-total).astype(np.float32)


def bitplane_lut(query: np.ndarray) -> np.ndarray:
    """query: (d,) float32 -> (ceil(d/64)*8, 256) float32 table: lut[B, byte] = sum of query dims
    8B+b for every bit b set in byte (dims past d count 0)."""
    d = query.shape[0]
    nbytes = ((d + 63) // 64) * 8
    padded = np.zeros(nbytes * 8, dtype=np.float64)
    padded[:d] = query
    bits = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.float64)  # (256, 8)
    return (padded.reshape(nbytes, 8) @ bits.T).astype(np.float32)


def bitplane_ip_asym(lut: np.ndarray, codes: np.ndarray, code_weights: np.ndarray, query_sum: float) -> np.ndarray:
    """Asymmetric distance, fp32 query vs multi-bit codes, through ``bitplane_lut``.

    lut: (w*8, 256) float32, codes: (n, u, w) uint64, code_weights: (u,), query_sum: sum of the
    query -> (n,) float32 equal to ``-sum_j cw[j] * <query, s_j>`` where ``<q, s> = 2 * S - query_sum``
    and ``S`` is the lut sum over the code's bytes.
    """
    n, u, w = codes.shape
    as_bytes = np.ascontiguousarray(codes).view(np.uint8).reshape(n, u, w * 8)
    total = np.zeros(n, dtype=np.float64)
    cols = np.arange(w * 8)
    for j in range(u):
        s = lut[cols[None, :], as_bytes[:, j, :]].astype(np.float64).sum(1)
        total += float(code_weights[j]) * (2.0 * s - float(query_sum))
    return (-total).astype(np.float32)


def binarize(y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Recurrent residual binarization: plane t is the sign of y minus planes 0..t-1's reconstruction.

    y: (n, D) float32, alphas: (u,) float32 -> (signs (n, u, D) bool, True = +1; reconstruction
    (n, D) float32, the sum of alphas[t] * sign_t). Zero counts as +1 (the kernels' "set bit = +1").
    """
    resid = np.array(y, dtype=np.float32)
    recon = np.zeros_like(resid)
    signs = np.empty((y.shape[0], len(alphas), y.shape[1]), dtype=bool)
    for t, alpha in enumerate(alphas):
        plane = resid >= 0
        signs[:, t] = plane
        step = np.where(plane, np.float32(alpha), np.float32(-alpha))
        recon += step
        resid -= step
    return signs, recon


def binarize_rescaled(y: np.ndarray, alphas: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``binarize`` with a per-row grid scale: for each row, the planes of y against ``alphas * s``
    for the s in ``scales`` whose reconstruction points closest to y (largest cosine; the first
    on ties). The per-row scale itself is not returned: the reconstruction is in units of
    ``alphas`` (sum of alphas[t] * sign_t), and BEBR's per-row factor absorbs the scale, so only the
    direction matters (extended RaBitQ picks its per-vector grid the same way)."""
    y = np.asarray(y, dtype=np.float32)
    alphas = np.asarray(alphas, dtype=np.float32)
    best = np.full(y.shape[0], -np.inf)
    signs = np.zeros((y.shape[0], len(alphas), y.shape[1]), dtype=bool)
    for s in np.asarray(scales, dtype=np.float32):
        cand, _ = binarize(y, (alphas * s).astype(np.float32))
        recon = _plane_sum(cand, alphas).astype(np.float64)
        norms = np.sqrt((recon * recon).sum(1))
        score = (recon * y).sum(1) / np.where(norms > 0, norms, 1.0)
        better = score > best
        signs[better], best[better] = cand[better], score[better]
    return signs, _plane_sum(signs, alphas)


def fastscan_affine(
    sums: np.ndarray, row_scale: np.ndarray, row_shift: np.ndarray, mul: float, add: float, const: float
) -> np.ndarray:
    """Per-row distances from fast-scan sums: ``(sums * mul + add) * row_scale + row_shift + const``,
    float32 in that order. sums (n,) uint16; row_scale, row_shift (n,) float32 -> (n,) float32."""
    out = np.asarray(sums).astype(np.float32) * np.float32(mul)
    out += np.float32(add)
    out *= row_scale
    out += row_shift
    out += np.float32(const)
    return out


def _plane_sum(signs: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """sum_t alphas[t] * (+-1) per element, float32, accumulated in plane order as binarize does."""
    out = np.zeros((signs.shape[0], signs.shape[2]), dtype=np.float32)
    for t, alpha in enumerate(alphas):
        out += np.where(signs[:, t], np.float32(alpha), np.float32(-alpha))
    return out


def bitplane_decode(planes: np.ndarray, weights: np.ndarray, dim: int) -> np.ndarray:
    """One multi-bit code back to values: planes (u, w) uint64, weights (u,) -> (dim,) float32
    ``sum_j weights[j] * (2 * bit_j - 1)``; a symmetric query becomes an asymmetric one this way,
    since ``<decode(q), decode(x)>`` is the sum ``bitplane_ip_sym`` negates."""
    bits = unpack_bits(np.ascontiguousarray(planes, dtype=np.uint64), dim).astype(np.float64)  # (u, dim)
    return (np.asarray(weights, dtype=np.float64) @ (2.0 * bits - 1.0)).astype(np.float32)


def bitplane_fastscan_pack(planes: np.ndarray, dim: int) -> np.ndarray:
    """Bit-plane codes (n, u, w) uint64 -> the 4-bit fast-scan layout (``pq4_pack``) of n rows with
    m = u * ceil(dim / 4) sub-quantizers: sub-quantizer ``j * G + g`` holds dims 4g..4g+3 of plane j
    as one nibble (bit t = dim 4g + t), G = ceil(dim / 4)."""
    n, u, w = planes.shape
    groups = (dim + 3) // 4
    as_bytes = np.ascontiguousarray(planes, dtype=np.uint64).view(np.uint8).reshape(n, u, w * 8)
    nibbles = np.stack([as_bytes & 0x0F, as_bytes >> 4], axis=-1).reshape(n, u, w * 16)[:, :, :groups]
    return pq4_pack(np.ascontiguousarray(nibbles).reshape(n, u * groups))


def bitplane_fastscan_lut(query: np.ndarray, code_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """query (d,) float32, code_weights (u,) -> (lut (u * G, 16) float32, offset) for codes in
    ``bitplane_fastscan_pack``'s layout, with ``offset + sum of looked-up entries`` equal to
    ``bitplane_ip_asym``'s distance ``-sum_j cw[j] * (2 * S_j - query_sum)``: entry (j*G+g, c) is
    ``-2 * cw[j] * (sum of query dims 4g+t for every bit t set in c)``."""
    q = np.asarray(query, dtype=np.float64)
    cw = np.asarray(code_weights, dtype=np.float64)
    groups = (q.shape[0] + 3) // 4
    padded = np.zeros(groups * 4, dtype=np.float64)
    padded[: q.shape[0]] = q
    sums = padded.reshape(groups, 4) @ _NIBBLE_BITS_T  # (G, 16): query mass under each nibble value
    lut = np.multiply.outer(-2.0 * cw, sums).reshape(cw.shape[0] * groups, 16)
    return lut.astype(np.float32), float(q.sum() * cw.sum())


# (4, 16): bit t of nibble value c, for bitplane_fastscan_lut
_NIBBLE_BITS_T = ((np.arange(16)[None, :] >> np.arange(4)[:, None]) & 1).astype(np.float64)


def pq_adc(lut: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """lut: (m, ksub) float32, codes: (n, m) uint8 -> (n,) float32 ``sum_j lut[j, codes[i, j]]``."""
    m = lut.shape[0]
    return lut[np.arange(m)[None, :], codes.astype(np.int64)].astype(np.float64).sum(1).astype(np.float32)


def pq4_pack(codes: np.ndarray) -> np.ndarray:
    """codes: (n, m) uint8 with values < 16 -> (ceil(n/32), m, 16) uint8 fast-scan layout."""
    n, m = codes.shape
    nblocks = (n + FASTSCAN_BLOCK - 1) // FASTSCAN_BLOCK
    padded = np.zeros((nblocks * FASTSCAN_BLOCK, m), dtype=np.uint8)
    padded[:n] = codes
    blocks = padded.reshape(nblocks, FASTSCAN_BLOCK, m)
    low = blocks[:, :16, :] & 0x0F
    high = blocks[:, 16:, :] & 0x0F
    return np.ascontiguousarray(((high << 4) | low).transpose(0, 2, 1))


def pq4_unpack(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of ``pq4_pack``: (nblocks, m, 16) uint8 -> (n, m) uint8."""
    nblocks, m, _ = packed.shape
    low = packed & 0x0F
    high = packed >> 4
    rows = np.concatenate([low, high], axis=2).transpose(0, 2, 1).reshape(nblocks * FASTSCAN_BLOCK, m)
    return np.ascontiguousarray(rows[:n])


def quantize_lut(lut: np.ndarray) -> tuple[np.ndarray, float, float]:
    """lut: (m, 16) float32 -> (lut_u8 (m, 16) uint8, scale, bias) with
    ``lut[j, c] ~= bias_j + scale * lut_u8[j, c]`` and ``sum_j lut ~= bias + scale * sum_j lut_u8``.

    One scale for all sub-quantizers (so sums stay comparable), chosen so that the largest
    possible sum of m entries fits 65535 without saturating a uint16 accumulator.
    """
    lut = lut.astype(np.float64)
    mins = lut.min(axis=1)
    shifted = lut - mins[:, None]  # >= 0 exactly; its maximum is the widest sub-quantizer's span
    m = lut.shape[0]
    top = max(float(shifted.max()), 1e-30)
    levels = min(255.0, float(65535 // m))
    scale = top / levels
    q = np.rint(shifted / scale, out=shifted)  # in [0, levels]: no clipping needed
    return q.astype(np.uint8), float(scale), float(mins.sum())


def pq4_fastscan(lut_u8: np.ndarray, packed: np.ndarray, n: int) -> np.ndarray:
    """lut_u8: (m, 16) uint8, packed: fast-scan layout of n rows -> (n,) uint16 sums of lut entries."""
    codes = pq4_unpack(packed, n)
    m = lut_u8.shape[0]
    return lut_u8[np.arange(m)[None, :], codes.astype(np.int64)].astype(np.int64).sum(1).astype(np.uint16)


def pq4_fastscan_topk(
    lut_u8: np.ndarray, packed: np.ndarray, n: int, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``topk`` of ``pq4_fastscan``'s sums: (indices (k,) int64, sums (k,) float32)."""
    return topk(pq4_fastscan(lut_u8, packed, n).astype(np.float32), k, mask)


def topk(distances_: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """distances: (n,) or (q, n) float32, mask: (n,) or (q, n) bool of allowed entries (None = all)
    -> (indices int64, distances float32), each (k,) or (q, k)."""
    d2 = np.atleast_2d(np.asarray(distances_, dtype=np.float32))
    q = d2.shape[0]
    allowed = ~np.isnan(d2)
    if mask is not None:
        allowed &= np.broadcast_to(np.asarray(mask, dtype=bool), d2.shape)
    idx = np.full((q, k), -1, dtype=np.int64)
    out = np.full((q, k), np.inf, dtype=np.float32)
    for r in range(q):
        cand = np.flatnonzero(allowed[r])
        order = cand[np.lexsort((cand, d2[r, cand]))][:k]
        idx[r, : len(order)] = order
        out[r, : len(order)] = d2[r, order]
    if np.ndim(distances_) == 1:
        return idx[0], out[0]
    return idx, out


def merge_topk(
    ids: list[np.ndarray], dists: list[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-part top-k lists: ids[i]/dists[i] are (q, k_i) (id -1 = empty) -> (q, k) each,
    ascending distance, ties by the smaller id, padded -1 / +inf."""
    all_ids = np.concatenate([np.asarray(a, dtype=np.int64) for a in ids], axis=1)
    all_d = np.concatenate([np.asarray(a, dtype=np.float32) for a in dists], axis=1)
    q = all_ids.shape[0]
    out_ids = np.full((q, k), -1, dtype=np.int64)
    out_d = np.full((q, k), np.inf, dtype=np.float32)
    for r in range(q):
        valid = np.flatnonzero(all_ids[r] >= 0)
        order = valid[np.lexsort((all_ids[r, valid], all_d[r, valid]))][:k]
        out_ids[r, : len(order)] = all_ids[r, order]
        out_d[r, : len(order)] = all_d[r, order]
    return out_ids, out_d
