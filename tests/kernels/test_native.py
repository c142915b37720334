"""The C extension vecdb._native against the numpy reference, at every SIMD level this CPU runs.

Each kernel test takes the ``level`` fixture, which activates one of scalar / avx2 / avx512 and
skips the levels the CPU lacks (or that VECDB_SIMD capped at import), so a run on an AVX-512 box
covers three implementations and the CI pass with VECDB_SIMD=scalar covers the serial floor.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecdb.kernels import reference as ref
from vecdb.types import METRIC_CODES

native = pytest.importorskip("vecdb._native")

LEVELS = ("scalar", "avx2", "avx512")
START_LEVEL = native.simd_level()
DIMS = (1, 3, 15, 16, 17, 97, 384, 1024)
NS = (0, 1, 7, 33, 100)
METRICS = ("l2", "ip", "cosine")
HYPOTHESIS = settings(max_examples=60, deadline=None, derandomize=True)


def _available_levels() -> list[str]:
    """Levels at or below the one active at import that this CPU supports."""
    found = []
    for name in LEVELS[: LEVELS.index(START_LEVEL) + 1]:
        if native.set_simd_level(name) == name:
            found.append(name)
    native.set_simd_level(START_LEVEL)
    return found


AVAILABLE = _available_levels()


@pytest.fixture(params=LEVELS)
def level(request):
    if request.param not in AVAILABLE:
        pytest.skip(f"SIMD level {request.param} not supported by this CPU (or capped by VECDB_SIMD)")
    native.set_simd_level(request.param)
    yield request.param
    native.set_simd_level(START_LEVEL)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([20251126, *key])


def _tolerance(metric: str, d: int) -> dict[str, float]:
    # float32 sums over d standard-normal terms: absolute error grows with d for l2/ip; cosine is
    # normalised to [0, 2].
    if metric == "cosine":
        return {"rtol": 1e-5, "atol": 2e-5}
    return {"rtol": 1e-5, "atol": 2e-5 * (d + 1)}


# ---- floating-point distances -------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_distances_f32_matches_reference(level, d):
    rng = _rng(1, d)
    for n in NS:
        q = rng.standard_normal(d, dtype=np.float32)
        x = rng.standard_normal((n, d), dtype=np.float32)
        for metric in METRICS:
            out = np.full(n, np.nan, dtype=np.float32)
            native.distances_f32(q, x, METRIC_CODES[metric], out)
            np.testing.assert_allclose(out, ref.distances(q, x, metric), **_tolerance(metric, d))


@pytest.mark.parametrize("d", DIMS)
def test_distances_f32_at_matches_reference(level, d):
    rng = _rng(2, d)
    x = rng.standard_normal((50, d), dtype=np.float32)
    q = rng.standard_normal(d, dtype=np.float32)
    for m in NS:
        offsets = rng.integers(0, 50, m).astype(np.int64)  # duplicates and any order allowed
        for metric in METRICS:
            out = np.full(m, np.nan, dtype=np.float32)
            native.distances_f32_at(q, x, offsets, METRIC_CODES[metric], out)
            np.testing.assert_allclose(out, ref.distances_at(q, x, offsets, metric), **_tolerance(metric, d))


@pytest.mark.parametrize("d", (3, 17, 384))  # d=1 cosine is all ties, ordered by rounding
def test_topk_f32_at_matches_reference(level, d):
    rng = _rng(21, d)
    x = rng.standard_normal((3000, d), dtype=np.float32)
    x[7] = x[9]  # a tie: the earlier position in offsets wins
    q = rng.standard_normal(d, dtype=np.float32)
    for m in (*NS, 1500):  # 1500 rows: past the stack buffer
        offsets = rng.permutation(3000)[:m].astype(np.int64)
        for k in (0, 1, 10, 64):
            for metric in METRICS:
                idx = np.full(k, 99, dtype=np.int64)
                dist = np.full(k, np.nan, dtype=np.float32)
                filled = native.topk_f32_at(q, x, offsets, METRIC_CODES[metric], k, idx, dist)
                want_idx, want_d = ref.topk_at(q, x, offsets, k, metric)
                assert filled == min(k, m)
                np.testing.assert_array_equal(idx, want_idx, err_msg=f"m={m} k={k} {metric}")
                np.testing.assert_allclose(dist, want_d, **_tolerance(metric, d))


@pytest.mark.parametrize("d", DIMS)
def test_distances_f16_matches_reference(level, d):
    rng = _rng(3, d)
    for n in NS:
        q = rng.standard_normal(d, dtype=np.float32)
        x = rng.standard_normal((n, d)).astype(np.float16)
        for metric in METRICS:
            out = np.full(n, np.nan, dtype=np.float32)
            native.distances_f16(q, x, METRIC_CODES[metric], out)
            np.testing.assert_allclose(out, ref.distances_f16(q, x, metric), **_tolerance(metric, d))


@pytest.mark.parametrize("d", (1, 8, 17))
def test_distances_f16_decodes_every_half_exactly(level, d):
    # Every one of the 65536 binary16 patterns (zeros, subnormals, inf, NaN) as a row of d copies;
    # a one-hot query makes the ip distance minus the decoded value (NaN where the reference is).
    halves = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    rows = np.ascontiguousarray(np.repeat(halves[:, None], d, axis=1))
    q = np.zeros(d, dtype=np.float32)
    q[0] = 1.0
    out = np.empty(len(rows), dtype=np.float32)
    native.distances_f16(q, rows, METRIC_CODES["ip"], out)
    with np.errstate(invalid="ignore"):  # the reference's float64 casts of NaN/inf warn
        want = ref.distances_f16(q, rows, "ip")
    np.testing.assert_array_equal(out, want)  # NaN == NaN here; 0.0 == -0.0
    if d == 1:
        finite = np.isfinite(halves)
        np.testing.assert_array_equal(out[finite], -halves[finite].astype(np.float32))


@pytest.mark.parametrize("d", DIMS)
def test_distances_sq8_matches_reference(level, d):
    rng = _rng(4, d)
    scale = (rng.random(d, dtype=np.float32) + 0.5) / 128.0
    offset = -rng.random(d, dtype=np.float32)
    for n in NS:
        q = rng.standard_normal(d, dtype=np.float32)
        codes = rng.integers(0, 256, (n, d), dtype=np.uint8)
        for metric in METRICS:
            out = np.full(n, np.nan, dtype=np.float32)
            native.distances_sq8(q, codes, scale, offset, METRIC_CODES[metric], out)
            want = ref.distances_sq8(q, codes, scale, offset, metric)
            np.testing.assert_allclose(out, want, **_tolerance(metric, d))


@pytest.mark.parametrize("d", (1, 7, 16, 33))
def test_distances_special_values(level, d):
    # Zero norms give cosine distance 1; NaN rows propagate through l2/ip and give 1 for cosine,
    # exactly as the reference's "divide only where the norm product is > 0". (vecdb rejects
    # non-finite vectors at write time; this pins down that the kernels never crash on them.)
    rng = _rng(5, d)
    x = rng.standard_normal((6, d), dtype=np.float32)
    x[1] = 0.0
    x[2, d // 2] = np.nan
    x[3, 0] = np.inf
    for q in (rng.standard_normal(d, dtype=np.float32), np.zeros(d, dtype=np.float32)):
        for metric in METRICS:
            out = np.empty(6, dtype=np.float32)
            native.distances_f32(q, x, METRIC_CODES[metric], out)
            with np.errstate(invalid="ignore"):
                want = ref.distances(q, x, metric)
            if metric == "l2":
                # The only documented difference: an infinite component gives l2 = inf here (sum of
                # squared differences) where the reference's expanded |q|^2+|x|^2-2qx gives inf-inf = NaN.
                assert out[3] == np.inf
                want[3] = np.inf
            np.testing.assert_allclose(out, want, equal_nan=True, **_tolerance(metric, d))
    out = np.empty(6, dtype=np.float32)
    native.distances_f32(np.zeros(d, dtype=np.float32), x, METRIC_CODES["cosine"], out)
    assert out[1] == 1.0 and out[0] == 1.0


def test_misaligned_inputs_are_handled(level):
    # Views starting one byte into a buffer: the kernels use unaligned loads throughout.
    d, n = 37, 9
    rng = _rng(6)
    x = rng.standard_normal((n, d), dtype=np.float32)
    q = rng.standard_normal(d, dtype=np.float32)
    raw = bytearray(x.nbytes + 1)
    xm = np.frombuffer(raw, dtype=np.float32, offset=1, count=n * d).reshape(n, d)
    xm[...] = x
    assert xm.ctypes.data % 4 != 0
    out = np.empty(n, dtype=np.float32)
    native.distances_f32(q, xm, METRIC_CODES["l2"], out)
    np.testing.assert_allclose(out, ref.distances(q, x, "l2"), **_tolerance("l2", d))


# ---- binary codes --------------------------------------------------------------------------


def _random_codes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 2**64, shape, dtype=np.uint64, endpoint=False)


@pytest.mark.parametrize("d", DIMS)
def test_hamming_matches_reference(level, d):
    rng = _rng(7, d)
    q = ref.pack_bits(rng.random((1, d)) < 0.5)[0]
    for n in NS:
        codes = ref.pack_bits(rng.random((n, d)) < 0.5)
        out = np.full(n, -1, dtype=np.int32)
        native.hamming(q, codes, out)
        if n:  # (the reference's popcount cannot reshape an empty batch)
            np.testing.assert_array_equal(out, ref.hamming(q, codes))
        assert out.shape == (n,)


@HYPOTHESIS
@given(
    w=st.integers(1, 20),
    n=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from(AVAILABLE),
)
def test_hamming_property(w, n, seed, level):
    # Independent oracle: Python's int.bit_count over every word, at full 64-bit range.
    rng = np.random.default_rng(seed)
    q = _random_codes(rng, (w,))
    codes = _random_codes(rng, (n, w))
    native.set_simd_level(level)
    try:
        out = np.empty(n, dtype=np.int32)
        native.hamming(q, codes, out)
    finally:
        native.set_simd_level(START_LEVEL)
    want = [sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(q, row, strict=True)) for row in codes]
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(out, ref.hamming(q, codes))


@pytest.mark.parametrize("d", DIMS)
def test_bitplane_sym_matches_reference(level, d):
    rng = _rng(8, d)
    w = (d + 63) // 64
    for n in NS:
        for u, uq in ((1, 1), (2, 4), (4, 4), (8, 1)):
            codes = np.stack([ref.pack_bits(rng.random((n, d)) < 0.5) for _ in range(u)], axis=1)
            codes = codes.reshape(n, u, w)
            qp = ref.pack_bits(rng.random((uq, d)) < 0.5)
            qw = rng.standard_normal(uq, dtype=np.float32)
            cw = rng.standard_normal(u, dtype=np.float32)
            out = np.full(n, np.nan, dtype=np.float32)
            native.bitplane_ip_sym(qp, codes, qw, cw, d, out)
            if n:
                # same float64 expression in the same order as the reference: bit-exact
                np.testing.assert_array_equal(out, ref.bitplane_ip_sym(qp, codes, qw, cw, d))


# Every width the C kernels specialise (1, 2, 4, 6, 8, 12, 16 words) and some they do not, on both
# sides of the 8-word switch to 512-bit popcounts.
CODE_WIDTHS = (1, 2, 3, 4, 6, 7, 8, 9, 12, 16, 20)


@pytest.mark.parametrize("w", CODE_WIDTHS)
def test_popcount_kernels_at_every_code_width(level, w):
    rng = _rng(11, w)
    n = 37
    q = _random_codes(rng, (w,))
    codes = _random_codes(rng, (n, w))
    out = np.empty(n, dtype=np.int32)
    native.hamming(q, codes, out)
    np.testing.assert_array_equal(out, ref.hamming(q, codes))
    for u, uq in ((1, 1), (3, 2)):
        planes = _random_codes(rng, (n, u, w))
        qp = _random_codes(rng, (uq, w))
        qw = rng.standard_normal(uq, dtype=np.float32)
        cw = rng.standard_normal(u, dtype=np.float32)
        sym = np.full(n, np.nan, dtype=np.float32)
        native.bitplane_ip_sym(qp, planes, qw, cw, 64 * w, sym)
        np.testing.assert_array_equal(sym, ref.bitplane_ip_sym(qp, planes, qw, cw, 64 * w))


@HYPOTHESIS
@given(
    dim=st.integers(1, 600),
    n=st.integers(1, 9),
    u=st.integers(1, 8),
    uq=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from(AVAILABLE),
)
def test_bitplane_property(dim, n, u, uq, seed, level):
    # Multi-bit codes of 1..8 planes, symmetric and asymmetric; the asymmetric one is also checked
    # against the decoded inner product -<query, sum_j cw_j s_j> it stands for.
    rng = np.random.default_rng(seed)
    w = (dim + 63) // 64
    bits = rng.random((n, u, dim)) < 0.5
    codes = ref.pack_bits(bits.reshape(n * u, dim)).reshape(n, u, w)
    qp = ref.pack_bits(rng.random((uq, dim)) < 0.5)
    qw = rng.standard_normal(uq).astype(np.float32)
    cw = rng.standard_normal(u).astype(np.float32)
    query = rng.standard_normal(dim).astype(np.float32)
    lut = ref.bitplane_lut(query)
    qsum = float(query.astype(np.float64).sum())
    native.set_simd_level(level)
    try:
        sym = np.empty(n, dtype=np.float32)
        native.bitplane_ip_sym(qp, codes, qw, cw, dim, sym)
        asym = np.empty(n, dtype=np.float32)
        native.bitplane_ip_asym(lut, codes, cw, qsum, asym)
    finally:
        native.set_simd_level(START_LEVEL)
    np.testing.assert_array_equal(sym, ref.bitplane_ip_sym(qp, codes, qw, cw, dim))
    np.testing.assert_allclose(asym, ref.bitplane_ip_asym(lut, codes, cw, qsum), rtol=1e-5, atol=1e-4 * dim)
    signs = np.where(bits, 1.0, -1.0)  # (n, u, dim)
    decoded = np.einsum("j,nji->ni", cw.astype(np.float64), signs)
    np.testing.assert_allclose(asym, -(decoded @ query.astype(np.float64)), rtol=1e-4, atol=1e-3 * dim)


@pytest.mark.parametrize("d", DIMS)
def test_bitplane_asym_matches_reference(level, d):
    rng = _rng(9, d)
    w = (d + 63) // 64
    query = rng.standard_normal(d, dtype=np.float32)
    lut = ref.bitplane_lut(query)
    qsum = float(query.sum())
    for n in NS:
        for u in (1, 3, 8):
            codes = _random_codes(rng, (n, u, w))
            if d % 64:  # padding bits must be zero in a valid code
                codes[..., -1] &= np.uint64((1 << (d % 64)) - 1)
            cw = rng.standard_normal(u, dtype=np.float32)
            out = np.full(n, np.nan, dtype=np.float32)
            native.bitplane_ip_asym(lut, codes, cw, qsum, out)
            want = ref.bitplane_ip_asym(lut, codes, cw, qsum)
            np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4 * d)


# ---- product quantization ------------------------------------------------------------------


@pytest.mark.parametrize("m", (1, 3, 7, 8, 16, 17, 48))
@pytest.mark.parametrize("ksub", (1, 16, 100, 256))
def test_pq_adc_matches_reference(level, m, ksub):
    rng = _rng(10, m, ksub)
    lut = rng.standard_normal((m, ksub), dtype=np.float32)
    for n in NS:
        codes = rng.integers(0, ksub, (n, m), dtype=np.uint8)
        out = np.full(n, np.nan, dtype=np.float32)
        native.pq_adc(lut, codes, out)
        np.testing.assert_allclose(out, ref.pq_adc(lut, codes), rtol=1e-5, atol=1e-5 * m)


@pytest.mark.parametrize("m", (1, 2, 3, 7, 8, 16, 17, 32, 64))
def test_pq4_fastscan_matches_reference(level, m):
    rng = _rng(11, m)
    lut_u8, _, _ = ref.quantize_lut(rng.standard_normal((m, 16)).astype(np.float32))
    for n in (*NS, 31, 32, 64, 65):
        codes = rng.integers(0, 16, (n, m), dtype=np.uint8)
        packed = ref.pq4_pack(codes)
        out = np.zeros(n, dtype=np.uint16)
        native.pq4_fastscan(lut_u8, packed, n, out)
        np.testing.assert_array_equal(out, ref.pq4_fastscan(lut_u8, packed, n))


def test_pq4_fastscan_wraps_like_reference(level):
    # 300 sub-quantizers of 255 overflow uint16; both sides wrap modulo 2^16.
    m, n = 301, 40
    rng = _rng(12)
    lut_u8 = rng.integers(200, 256, (m, 16), dtype=np.uint8)
    packed = ref.pq4_pack(rng.integers(0, 16, (n, m), dtype=np.uint8))
    out = np.empty(n, dtype=np.uint16)
    native.pq4_fastscan(lut_u8, packed, n, out)
    want = ref.pq4_fastscan(lut_u8, packed, n)
    np.testing.assert_array_equal(out, want)
    # and a packed array with spare blocks past n is fine
    spare = np.concatenate([packed, np.full((2, m, 16), 0xFF, dtype=np.uint8)])
    native.pq4_fastscan(lut_u8, spare, n, out)
    np.testing.assert_array_equal(out, want)


# ---- top-k ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", (*NS, 1000))
def test_topk_matches_reference(level, n):
    rng = _rng(13, n)
    # integers as floats: plenty of ties, broken by the smaller index; plus NaN, inf and -0.0
    dist = rng.integers(-20, 20, n).astype(np.float32)
    if n:
        dist[rng.random(n) < 0.1] = np.nan
        dist[rng.random(n) < 0.05] = np.inf
        dist[rng.random(n) < 0.05] = -0.0
    masks = [None, rng.random(n) < 0.6, (rng.random(n) < 0.3).astype(np.uint8) * 7]
    for mask in masks:
        for k in sorted({0, 1, 5, n, n + 3}):
            idx = np.zeros(k, dtype=np.int64)
            out = np.zeros(k, dtype=np.float32)
            filled = native.topk(dist, k, mask, idx, out)
            want_idx, want_d = ref.topk(dist, k, None if mask is None else mask.astype(bool))
            np.testing.assert_array_equal(idx, want_idx)
            np.testing.assert_array_equal(out, want_d)
            assert filled == int((want_idx >= 0).sum())


@HYPOTHESIS
@given(
    values=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=80),
    k=st.integers(0, 90),
    seed=st.integers(0, 2**32 - 1),
    level=st.sampled_from(AVAILABLE),
)
def test_topk_property(values, k, seed, level):
    dist = np.array(values, dtype=np.float32)
    mask = np.random.default_rng(seed).random(len(dist)) < 0.7
    idx = np.empty(k, dtype=np.int64)
    out = np.empty(k, dtype=np.float32)
    native.set_simd_level(level)
    try:
        filled = native.topk(dist, k, mask, idx, out)
    finally:
        native.set_simd_level(START_LEVEL)
    want_idx, want_d = ref.topk(dist, k, mask)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(out, want_d)
    assert filled == int((want_idx >= 0).sum())


# ---- bad input: clear TypeError / ValueError, never a crash -------------------------------


def _f32(*shape):
    return np.zeros(shape, dtype=np.float32)


def _u8(*shape):
    return np.zeros(shape, dtype=np.uint8)


def _i8(*shape):
    return np.zeros(shape, dtype=np.int8)


def _u16(*shape):
    return np.zeros(shape, dtype=np.uint16)


def _u64(*shape):
    return np.zeros(shape, dtype=np.uint64)


def _i64(*shape):
    return np.zeros(shape, dtype=np.int64)


def _readonly(n: int) -> np.ndarray:
    a = np.zeros(n, dtype=np.float32)
    a.setflags(write=False)
    return a


def _at(offsets, out):
    return native.distances_f32_at(_f32(4), _f32(2, 4), offsets, 0, out)


N = native
w1 = _f32(1)
BAD_CALLS = [
    # (id, exception, text the message must contain, call)
    ("query dtype", TypeError, "query", lambda: N.distances_f32(np.zeros(4), _f32(2, 4), 0, _f32(2))),
    ("rows list", TypeError, "rows", lambda: N.distances_f32(_f32(4), [[0.0] * 4] * 2, 0, _f32(2))),
    ("rows ndim", ValueError, "rows", lambda: N.distances_f32(_f32(4), _f32(8), 0, _f32(2))),
    ("dim mismatch", ValueError, "rows", lambda: N.distances_f32(_f32(4), _f32(2, 5), 0, _f32(2))),
    ("out too small", ValueError, "out", lambda: N.distances_f32(_f32(4), _f32(3, 4), 0, _f32(2))),
    ("out dtype", TypeError, "out", lambda: N.distances_f32(_f32(4), _f32(2, 4), 0, np.zeros(2))),
    ("strided", ValueError, "C-contiguous", lambda: N.distances_f32(_f32(4), _f32(2, 8)[:, ::2], 0, _f32(2))),
    ("read-only out", ValueError, "out", lambda: N.distances_f32(_f32(4), _f32(2, 4), 0, _readonly(2))),
    ("big-endian", TypeError, "query", lambda: N.distances_f32(np.zeros(4, ">f4"), _f32(2, 4), 0, _f32(2))),
    ("metric range", ValueError, "metric", lambda: N.distances_f32(_f32(4), _f32(2, 4), 3, _f32(2))),
    ("metric name", TypeError, "integer", lambda: N.distances_f32(_f32(4), _f32(2, 4), "l2", _f32(2))),
    ("offset < 0", IndexError, "offsets[1]", lambda: _at(np.array([0, -1]), _f32(2))),
    ("offset >= n", IndexError, "offsets[0]", lambda: _at(np.array([2]), _f32(1))),
    ("offsets i32", TypeError, "offsets", lambda: _at(np.zeros(1, np.int32), _f32(1))),
    ("topk_at offset", IndexError, "offsets[1]",
     lambda: N.topk_f32_at(_f32(4), _f32(2, 4), np.array([1, 2]), 0, 1, _i64(1), _f32(1))),
    ("topk_at k < 0", ValueError, "k", lambda: N.topk_f32_at(_f32(4), _f32(2, 4), _i64(1), 0, -1, _i64(0), _f32(0))),
    ("topk_at out", ValueError, "out_dist",
     lambda: N.topk_f32_at(_f32(4), _f32(2, 4), _i64(1), 0, 2, _i64(2), _f32(3))),
    ("f16 given f32", TypeError, "rows", lambda: N.distances_f16(_f32(4), _f32(2, 4), 0, _f32(2))),
    ("sq8 scale", ValueError, "scale", lambda: N.distances_sq8(_f32(4), _u8(2, 4), _f32(3), _f32(4), 0, _f32(2))),
    ("sq8 int8", TypeError, "codes", lambda: N.distances_sq8(_f32(4), _i8(2, 4), _f32(4), _f32(4), 0, _f32(2))),
    ("hamming int64", TypeError, "codes", lambda: N.hamming(_u64(2), _i64(3, 2), np.zeros(3, np.int32))),
    ("hamming out", TypeError, "out", lambda: N.hamming(_u64(2), _u64(3, 2), _i64(3))),
    ("hamming width", ValueError, "codes", lambda: N.hamming(_u64(2), _u64(3, 1), np.zeros(3, np.int32))),
    ("sym dim", ValueError, "dim", lambda: N.bitplane_ip_sym(_u64(1, 1), _u64(2, 1, 1), _f32(1), _f32(1), 65, _f32(2))),
    ("sym weights", ValueError, "code_weights", lambda: N.bitplane_ip_sym(_u64(1, 1), _u64(2, 2, 1), w1, w1, 9, w1)),
    ("asym lut", ValueError, "lut", lambda: N.bitplane_ip_asym(_f32(7, 256), _u64(2, 1, 1), _f32(1), 0.0, _f32(2))),
    ("adc range", ValueError, "codes[1, 0]", lambda: N.pq_adc(_f32(1, 16), np.array([[3], [16]], np.uint8), _f32(2))),
    ("adc ksub", ValueError, "ksub", lambda: N.pq_adc(_f32(1, 300), _u8(2, 1), _f32(2))),
    ("adc m", ValueError, "codes", lambda: N.pq_adc(_f32(2, 16), _u8(2, 3), _f32(2))),
    ("pq4 n > 32 blocks", ValueError, "n", lambda: N.pq4_fastscan(_u8(2, 16), _u8(1, 2, 16), 33, _u16(33))),
    ("pq4 n < 0", ValueError, "n", lambda: N.pq4_fastscan(_u8(2, 16), _u8(1, 2, 16), -1, _u16(0))),
    ("pq4 lut", ValueError, "lut_u8", lambda: N.pq4_fastscan(_u8(2, 8), _u8(1, 2, 16), 3, _u16(3))),
    ("pq4 out", TypeError, "out", lambda: N.pq4_fastscan(_u8(2, 16), _u8(1, 2, 16), 3, _u8(6).view(np.int16))),
    ("topk k < 0", ValueError, "k", lambda: N.topk(_f32(5), -1, None, _i64(0), _f32(0))),
    ("topk out_idx", ValueError, "out_idx", lambda: N.topk(_f32(5), 3, None, _i64(2), _f32(3))),
    ("topk mask len", ValueError, "mask", lambda: N.topk(_f32(5), 3, np.ones(4, bool), _i64(3), _f32(3))),
    ("topk mask i32", TypeError, "mask", lambda: N.topk(_f32(5), 3, np.ones(5, np.int32), _i64(3), _f32(3))),
    ("level name", ValueError, "sse", lambda: N.set_simd_level("sse")),
    ("level type", TypeError, "name", lambda: N.set_simd_level(2)),
]


@pytest.mark.parametrize("call", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_clear_error(call):
    _, exc, needle, fn = call
    with pytest.raises(exc) as info:
        fn()
    assert needle in str(info.value)


def test_out_is_not_written_on_error():
    out = np.full(2, 7.0, dtype=np.float32)
    with pytest.raises(IndexError):
        native.distances_f32_at(_f32(4), _f32(2, 4), np.array([0, 5]), 0, out)
    np.testing.assert_array_equal(out, [7.0, 7.0])


# ---- dispatch, threads, function pointers -------------------------------------------------


def test_levels_and_features_are_consistent():
    feats = native.cpu_features()
    expected = {"avx2", "fma", "f16c", "popcnt", "avx512f", "avx512bw", "avx512vl", "avx512vpopcntdq"}
    assert set(feats) == expected and all(isinstance(v, bool) for v in feats.values())
    can_avx2 = feats["avx2"] and feats["fma"] and feats["f16c"] and feats["popcnt"]
    can_512 = can_avx2 and feats["avx512f"] and feats["avx512bw"] and feats["avx512vl"]
    best = "avx512" if can_512 else "avx2" if can_avx2 else "scalar"
    try:
        assert native.set_simd_level("avx512") == best  # a cap above the CPU gives the best it has
        assert native.set_simd_level("scalar") == "scalar"
        assert native.simd_level() == "scalar"
    finally:
        native.set_simd_level(START_LEVEL)


@pytest.mark.parametrize(("env", "expected"), [("scalar", "scalar"), ("avx512", None)])
def test_env_caps_level_at_import(env, expected):
    code = "import vecdb._native as n; print(n.simd_level(), n.set_simd_level('avx512'))"
    environ = {**os.environ, "VECDB_SIMD": env}
    result = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    active, best = result.stdout.split()
    assert active == (expected or best)


def test_env_unknown_level_warns():
    code = "import warnings; warnings.simplefilter('error'); import vecdb._native"
    environ = {**os.environ, "VECDB_SIMD": "sse9"}
    result = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True)
    assert result.returncode != 0 and "VECDB_SIMD=sse9" in result.stderr


def test_threads_share_the_kernels():
    # The GIL is released in the loop; concurrent calls must not interfere.
    rng = _rng(14)
    x = rng.standard_normal((20000, 64), dtype=np.float32)
    queries = rng.standard_normal((8, 64), dtype=np.float32)
    outs = np.empty((8, 20000), dtype=np.float32)

    def work(i: int) -> None:
        for _ in range(5):
            native.distances_f32(queries[i], x, METRIC_CODES["ip"], outs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(outs, ref.distances_many(queries, x, "ip"), **_tolerance("ip", 64))


F32_PROTO = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
)
HAMMING_PROTO = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p
)


def test_function_pointers_through_ctypes(level):
    ptrs = native.function_pointers()
    assert {"distances_f32", "distances_f32_at", "distances_sq8", "hamming", "bitplane_ip_sym", "pq_adc",
            "pq4_fastscan", "topk"} <= set(ptrs)
    assert all(isinstance(v, int) and v for v in ptrs.values())
    rng = _rng(15)
    q = ref.pack_bits(rng.random((1, 200)) < 0.5)[0]
    codes = ref.pack_bits(rng.random((9, 200)) < 0.5)
    out = np.empty(9, dtype=np.int32)
    HAMMING_PROTO(ptrs["hamming"])(q.ctypes.data, codes.ctypes.data, 9, codes.shape[1], out.ctypes.data)
    np.testing.assert_array_equal(out, ref.hamming(q, codes))


def test_function_pointers_follow_the_level():
    if len(AVAILABLE) < 2:
        pytest.skip("only one SIMD level on this CPU")
    try:
        native.set_simd_level(AVAILABLE[0])
        low = native.function_pointers()["distances_f32"]
        native.set_simd_level(AVAILABLE[-1])
        high = native.function_pointers()["distances_f32"]
    finally:
        native.set_simd_level(START_LEVEL)
    assert low != high


def test_numba_calls_the_same_kernel():
    # One kernel, two doors: an @njit function calls the C kernel through its address.
    numba = pytest.importorskip("numba")
    c_distances = F32_PROTO(native.function_pointers()["distances_f32"])

    @numba.njit(nogil=True)
    def scan(q, x, metric, out):
        c_distances(q.ctypes.data, x.ctypes.data, x.shape[0], x.shape[1], metric, out.ctypes.data)

    rng = _rng(16)
    x = rng.standard_normal((33, 97), dtype=np.float32)
    q = rng.standard_normal(97, dtype=np.float32)
    for metric in METRICS:
        out = np.empty(33, dtype=np.float32)
        scan(q, x, METRIC_CODES[metric], out)
        np.testing.assert_allclose(out, ref.distances(q, x, metric), **_tolerance(metric, 97))
