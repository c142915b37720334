"""numba kernels for floating-point distances (fp32, fp16, sq8 rows against an fp32 query).

Every function computes what ``kernels.reference`` defines, with metric codes from
``vecdb.types.METRIC_CODES`` (0 = l2, 1 = ip, 2 = cosine). None of them validates its
arguments: ``kernels.dispatch`` does that once per call. The scalar-pair helpers
(``l2_f32``, ``dot_f32``, ``distance_f32``) and the ``*_into`` kernels are plain njit functions,
so graph and index code can call them from inside its own ``@njit`` loops.

Accumulators are float32 with reassociation allowed (so LLVM vectorizes the reductions into
several SIMD partial sums); cosine combines its three sums in float64. NaN/inf semantics are
kept (no ``nnan``/``ninf`` flags) because the cosine zero-norm rule relies on comparisons.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Rows ahead that the gather prefetches: enough to cover DRAM latency for a few-KB row.
PREFETCH_AHEAD = 4

# Reassociation lets LLVM split a reduction into SIMD lanes; contract allows FMA. Both stay
# within the 1e-4 relative tolerance the reference tests use.
FAST = {"reassoc", "contract", "nsz", "arcp"}

L2, IP, COSINE = 0, 1, 2


@njit(cache=True, nogil=True, fastmath=FAST)
def l2_f32(a: np.ndarray, b: np.ndarray) -> float:
    """Squared euclidean distance of two (d,) float32 vectors."""
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        t = a[i] - b[i]
        acc += t * t
    return acc


@njit(cache=True, nogil=True, fastmath=FAST)
def dot_f32(a: np.ndarray, b: np.ndarray) -> float:
    """Dot product of two (d,) float32 vectors."""
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


@njit(cache=True, nogil=True, fastmath=FAST)
def _dot_norms(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    dot = np.float32(0.0)
    aa = np.float32(0.0)
    bb = np.float32(0.0)
    for i in range(a.shape[0]):
        dot += a[i] * b[i]
        aa += a[i] * a[i]
        bb += b[i] * b[i]
    return dot, aa, bb


@njit(cache=True, nogil=True)
def _cosine_from_sums(dot: float, aa: float, bb: float) -> np.float32:
    # float64 so the product of the two norms neither overflows nor loses the small angles.
    denom = np.sqrt(np.float64(aa)) * np.sqrt(np.float64(bb))
    if denom > 0.0:  # False for 0 and NaN: both give distance 1, as the reference does
        return np.float32(1.0 - np.float64(dot) / denom)
    return np.float32(1.0)


@njit(cache=True, nogil=True)
def cosine_f32(a: np.ndarray, b: np.ndarray) -> np.float32:
    """Cosine distance ``1 - cos(a, b)`` of two (d,) float32 vectors; 1 when a norm is 0."""
    dot, aa, bb = _dot_norms(a, b)
    return _cosine_from_sums(dot, aa, bb)


@njit(cache=True, nogil=True)
def distance_f32(a: np.ndarray, b: np.ndarray, metric: int) -> np.float32:
    """Distance of two (d,) float32 vectors for a metric code (0 l2, 1 ip, 2 cosine)."""
    if metric == L2:
        return np.float32(l2_f32(a, b))
    if metric == IP:
        return np.float32(-dot_f32(a, b))
    return cosine_f32(a, b)


@njit(cache=True, nogil=True, fastmath=FAST)
def _row_norm_sq(a: np.ndarray) -> float:
    acc = np.float32(0.0)
    for i in range(a.shape[0]):
        acc += a[i] * a[i]
    return acc


@njit(cache=True, nogil=True)
def distances_f32_into(query: np.ndarray, rows: np.ndarray, metric: int, out: np.ndarray) -> None:
    """query (d,) float32, rows (n, d) float32 -> out (n,) float32."""
    n = rows.shape[0]
    if metric == L2:
        for i in range(n):
            out[i] = l2_f32(query, rows[i])
    elif metric == IP:
        for i in range(n):
            out[i] = -dot_f32(query, rows[i])
    else:
        qq = _row_norm_sq(query)  # once per call, not once per row
        for i in range(n):
            row = rows[i]
            out[i] = _cosine_from_sums(dot_f32(query, row), qq, _row_norm_sq(row))


@intrinsic
def prefetch_row(typingctx, rows, i):  # type: ignore[no-untyped-def]
    """Hint the CPU to fetch every cache line of ``rows[i]`` (any array, first axis ``i``).

    For gathers over random rows (graph search): the hardware prefetcher cannot guess the next
    row, so we name it a few rows ahead. A hint only: it never faults, even out of range.
    """
    if not isinstance(rows, types.Array) or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        stride = cgutils.unpack_tuple(builder, ary.strides)[0]
        start = builder.mul(context.cast(builder, args[1], signature.args[1], types.intp), stride)
        i8p = ir.IntType(8).as_pointer()
        base = builder.bitcast(ary.data, i8p)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        step = ir.Constant(start.type, 64)
        with cgutils.for_range_slice(builder, start, builder.add(start, stride), step) as (off, _):
            # read access, high temporal locality, data cache
            builder.call(fn, [builder.gep(base, [off]), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(rows, i), codegen


@njit(cache=True, nogil=True)
def distances_f32_at_into(
    query: np.ndarray, rows: np.ndarray, offsets: np.ndarray, metric: int, out: np.ndarray
) -> None:
    """query (d,), rows (N, d) float32, offsets (m,) int64 (trusted in range) -> out (m,) float32."""
    m = offsets.shape[0]
    for i in range(min(PREFETCH_AHEAD, m)):
        prefetch_row(rows, offsets[i])
    qq = _row_norm_sq(query) if metric == COSINE else np.float32(0.0)
    for i in range(m):
        if i + PREFETCH_AHEAD < m:
            prefetch_row(rows, offsets[i + PREFETCH_AHEAD])
        row = rows[offsets[i]]
        if metric == L2:
            out[i] = l2_f32(query, row)
        elif metric == IP:
            out[i] = -dot_f32(query, row)
        else:
            out[i] = _cosine_from_sums(dot_f32(query, row), qq, _row_norm_sq(row))


@intrinsic
def half_bits_to_f32(typingctx, h):  # type: ignore[no-untyped-def]
    """Exact binary16 (given as its uint16 bits) -> float32, as LLVM's ``fpext half``.

    numba has no scalar float16 type, so this reinterprets the bits in LLVM IR; with F16C it
    is one ``vcvtph2ps`` per 8 values. Without F16C LLVM would need a runtime helper that the
    JIT may lack, so the dispatch uses ``f16_table`` on such CPUs instead.
    """
    if h != types.uint16:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


@njit(cache=True, nogil=True, fastmath=FAST)
def _f16c_l2(query: np.ndarray, bits: np.ndarray) -> float:
    acc = np.float32(0.0)
    for i in range(query.shape[0]):
        t = query[i] - half_bits_to_f32(bits[i])
        acc += t * t
    return acc


@njit(cache=True, nogil=True, fastmath=FAST)
def _f16c_sums(query: np.ndarray, bits: np.ndarray) -> tuple[float, float]:
    dot = np.float32(0.0)
    xx = np.float32(0.0)
    for i in range(query.shape[0]):
        x = half_bits_to_f32(bits[i])
        dot += query[i] * x
        xx += x * x
    return dot, xx


@njit(cache=True, nogil=True)
def distances_f16_into(query: np.ndarray, rows_bits: np.ndarray, metric: int, out: np.ndarray) -> None:
    """query (d,) float32, rows (n, d) float16 viewed as uint16 -> out (n,) float32 (needs F16C)."""
    n = rows_bits.shape[0]
    if metric == L2:
        for i in range(n):
            out[i] = _f16c_l2(query, rows_bits[i])
        return
    qq = _row_norm_sq(query)
    for i in range(n):
        dot, xx = _f16c_sums(query, rows_bits[i])
        out[i] = -dot if metric == IP else _cosine_from_sums(dot, qq, xx)


def f16_table() -> np.ndarray:
    """(65536,) float32: the exact float32 value of every binary16 bit pattern (inf/NaN kept).

    The portable fp16 path decodes through this table (256 KiB, cache resident); built once.
    """
    global _F16_TABLE
    if _F16_TABLE is None:
        _F16_TABLE = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    return _F16_TABLE


_F16_TABLE: np.ndarray | None = None


@njit(cache=True, nogil=True, fastmath=FAST)
def _f16_l2(query: np.ndarray, bits: np.ndarray, table: np.ndarray) -> float:
    acc = np.float32(0.0)
    for i in range(query.shape[0]):
        t = query[i] - table[bits[i]]
        acc += t * t
    return acc


@njit(cache=True, nogil=True, fastmath=FAST)
def _f16_sums(query: np.ndarray, bits: np.ndarray, table: np.ndarray) -> tuple[float, float]:
    dot = np.float32(0.0)
    xx = np.float32(0.0)
    for i in range(query.shape[0]):
        x = table[bits[i]]
        dot += query[i] * x
        xx += x * x
    return dot, xx


@njit(cache=True, nogil=True)
def distances_f16_table_into(
    query: np.ndarray, rows_bits: np.ndarray, table: np.ndarray, metric: int, out: np.ndarray
) -> None:
    """query (d,) float32, rows (n, d) float16 viewed as uint16, table = ``f16_table()``
    -> out (n,) float32 (any CPU)."""
    n = rows_bits.shape[0]
    if metric == L2:
        for i in range(n):
            out[i] = _f16_l2(query, rows_bits[i], table)
        return
    qq = _row_norm_sq(query)
    for i in range(n):
        dot, xx = _f16_sums(query, rows_bits[i], table)
        out[i] = -dot if metric == IP else _cosine_from_sums(dot, qq, xx)


@njit(cache=True, nogil=True, fastmath=FAST)
def _sq8_l2(query: np.ndarray, code: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> float:
    acc = np.float32(0.0)
    for i in range(query.shape[0]):
        t = query[i] - (offset[i] + scale[i] * np.float32(code[i]))
        acc += t * t
    return acc


@njit(cache=True, nogil=True, fastmath=FAST)
def _sq8_sums(
    query: np.ndarray, code: np.ndarray, scale: np.ndarray, offset: np.ndarray
) -> tuple[float, float]:
    dot = np.float32(0.0)
    xx = np.float32(0.0)
    for i in range(query.shape[0]):
        x = offset[i] + scale[i] * np.float32(code[i])
        dot += query[i] * x
        xx += x * x
    return dot, xx


@njit(cache=True, nogil=True)
def distances_sq8_into(
    query: np.ndarray, codes: np.ndarray, scale: np.ndarray, offset: np.ndarray, metric: int, out: np.ndarray
) -> None:
    """query (d,) float32, codes (n, d) uint8, scale/offset (d,) float32 -> out (n,) float32,
    each row decoded as ``offset + scale * code`` on the fly."""
    n = codes.shape[0]
    if metric == L2:
        for i in range(n):
            out[i] = _sq8_l2(query, codes[i], scale, offset)
        return
    qq = _row_norm_sq(query)
    for i in range(n):
        dot, xx = _sq8_sums(query, codes[i], scale, offset)
        out[i] = -dot if metric == IP else _cosine_from_sums(dot, qq, xx)
