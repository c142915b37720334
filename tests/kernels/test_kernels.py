"""Every kernel on every backend (numpy, numba, C at each SIMD level here) against kernels.reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba import njit

from tests.kernels.backends import BACKENDS, using
from vecdb import kernels as K
from vecdb.kernels import codes as codes_nb
from vecdb.kernels import dispatch
from vecdb.kernels import distance as dist_nb
from vecdb.kernels import reference as R
from vecdb.kernels import selection as sel_nb

DIMS = (1, 3, 15, 16, 17, 97, 384, 1024)
METRICS = ("l2", "ip", "cosine")


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([2024, *key])


def _expect(op: str, kind: str) -> None:
    # C may lack an op (merge_topk has none): then numba serves it, per the dispatch rules.
    want = "numba" if kind == "c" and op not in dispatch.NATIVE_NAMES else kind
    assert dispatch.backend(op) == want


def _float_tol(query: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """Per-row absolute tolerance: float32 rounding of sums of d terms of size |q||x|."""
    q = query.astype(np.float64)
    x = rows.astype(np.float64)
    if metric == "cosine":
        return np.full(x.shape[0], 2e-5)
    scale = (q * q).sum() + (x * x).sum(1)
    return 2e-5 * scale + 1e-6


def _rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    rows = rng.standard_normal((n, d)).astype(np.float32)
    rows[0] = 0.0  # the zero-norm cosine rule
    rows[1] *= 1e3  # large magnitudes next to small ones
    return rows


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_distances_f32(backend: str, metric: str) -> None:
    with using(backend) as kind:
        _expect("distances", kind)
        for d in DIMS:
            rng = _rng(1, d)
            rows = _rows(rng, 37, d)
            query = rng.standard_normal(d).astype(np.float32)
            got = K.distances(query, rows, metric)
            want = R.distances(query, rows, metric)
            assert got.dtype == np.float32 and got.shape == (37,)
            assert np.all(np.abs(got - want) <= _float_tol(query, rows, metric)), f"d={d}"
            if metric == "cosine":
                assert got[0] == pytest.approx(1.0, abs=1e-6)  # zero row


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_distances_zero_query_cosine_is_one(backend: str, metric: str) -> None:
    with using(backend):
        rows = _rows(_rng(2), 9, 17)
        got = K.distances(np.zeros(17, np.float32), rows, metric)
        want = R.distances(np.zeros(17, np.float32), rows, metric)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_distances_at(backend: str, metric: str) -> None:
    with using(backend) as kind:
        _expect("distances_at", kind)
        for d in DIMS:
            rng = _rng(3, d)
            rows = _rows(rng, 50, d)
            query = rng.standard_normal(d).astype(np.float32)
            # repeats, descending order, first and last row, and the graph's uint32 offsets
            offsets = np.array([49, 0, 7, 7, 3, 48, 1, 25], dtype=np.uint32)
            got = K.distances_at(query, rows, offsets, metric)
            want = R.distances_at(query, rows, offsets, metric)
            assert np.all(np.abs(got - want) <= _float_tol(query, rows[offsets.astype(np.int64)], metric)), d
        assert K.distances_at(query, rows, np.array([], np.int64), metric).shape == (0,)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_at(backend: str, metric: str) -> None:
    with using(backend) as kind:
        _expect("topk_at", kind)
        for d in (3, 17, 384):  # d=1 cosine is all ties, ordered by rounding
            rng = _rng(22, d)
            rows = _rows(rng, 60, d)
            rows[5] = rows[40]  # a tie: the earlier position in offsets wins
            query = rng.standard_normal(d).astype(np.float32)
            offsets = np.array([40, 59, 0, 5, 7, 7, 33, 2], dtype=np.uint32)
            for k in (0, 3, 8, 12):  # 12 > len(offsets): padding
                idx, dist = K.topk_at(query, rows, offsets, k, metric)
                want_idx, want_d = R.topk_at(query, rows, offsets, k, metric)
                assert idx.dtype == np.int64 and dist.dtype == np.float32 and idx.shape == (k,)
                np.testing.assert_array_equal(idx, want_idx, err_msg=f"d={d} k={k}")
                scale = 1 + np.abs(want_d[np.isfinite(want_d)]).max(initial=0)
                np.testing.assert_allclose(dist, want_d, rtol=1e-4, atol=1e-4 * scale)
        idx, dist = K.topk_at(query, rows, np.array([], np.int64), 2, metric)
        assert list(idx) == [-1, -1] and np.all(np.isinf(dist))
        with pytest.raises(ValueError, match="offsets out of range"):
            K.topk_at(query, rows, [0, 60], 2, metric)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_distances_f16(backend: str, metric: str) -> None:
    with using(backend) as kind:
        _expect("distances_f16", kind)
        for d in DIMS:
            rng = _rng(4, d)
            rows = _rows(rng, 33, d).astype(np.float16)
            rows[2, : max(1, d // 2)] = np.float16(3e-6)  # binary16 subnormals decode exactly
            query = rng.standard_normal(d).astype(np.float32)
            got = K.distances_f16(query, rows, metric)
            want = R.distances_f16(query, rows, metric)
            assert np.all(np.abs(got - want) <= _float_tol(query, rows.astype(np.float32), metric)), d


@pytest.mark.parametrize("metric", METRICS)
def test_distances_f16_portable_table_path(metric: str) -> None:
    # numba's path for CPUs without F16C, forced here on any CPU
    with using("numba"):
        dispatch.state().f16c = False
        for d in DIMS:
            rng = _rng(4, d)
            rows = _rows(rng, 33, d).astype(np.float16)
            query = rng.standard_normal(d).astype(np.float32)
            got = K.distances_f16(query, rows, metric)
            want = R.distances_f16(query, rows, metric)
            assert np.all(np.abs(got - want) <= _float_tol(query, rows.astype(np.float32), metric)), d


def test_f16_decoders_are_exact_for_every_bit_pattern() -> None:
    @njit
    def decode_all(bits, out):
        for i in range(bits.shape[0]):
            out[i] = dist_nb.half_bits_to_f32(bits[i])

    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    want = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    got = np.empty(65536, np.float32)
    decode_all(bits, got)
    for decoded in (got, dist_nb.f16_table()):
        np.testing.assert_array_equal(decoded.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
        assert np.isnan(decoded[nan]).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_distances_sq8(backend: str, metric: str) -> None:
    with using(backend) as kind:
        _expect("distances_sq8", kind)
        for d in DIMS:
            rng = _rng(5, d)
            codes = rng.integers(0, 256, (41, d), dtype=np.uint8)
            codes[0] = 0
            scale = rng.uniform(0.001, 0.05, d).astype(np.float32)
            offset = rng.uniform(-2, 1, d).astype(np.float32)
            query = rng.standard_normal(d).astype(np.float32)
            got = K.distances_sq8(query, codes, scale, offset, metric)
            want = R.distances_sq8(query, codes, scale, offset, metric)
            decoded = R.decode_sq8(codes, scale, offset)
            assert np.all(np.abs(got - want) <= _float_tol(query, decoded, metric)), d


@pytest.mark.parametrize("nq", [1, 3, 4, 9])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_distances_many(backend: str, metric: str, nq: int) -> None:
    with using(backend):
        for d in (1, 17, 384):
            rng = _rng(6, d, nq)
            rows = _rows(rng, 70, d)
            queries = rng.standard_normal((nq, d)).astype(np.float32)
            got = K.distances_many(queries, rows, metric)
            want = R.distances_many(queries, rows, metric)
            assert got.shape == (nq, 70) and got.dtype == np.float32
            for i in range(nq):
                # the BLAS path expands |q|^2 + |x|^2 - 2 q.x in float32: tolerance on that scale
                assert np.all(np.abs(got[i] - want[i]) <= 5 * _float_tol(queries[i], rows, metric)), (d, i)


def test_distances_many_blocks_over_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "BLAS_BLOCK_ROWS", 16)
    rng = _rng(7)
    rows = _rows(rng, 100, 20)
    queries = rng.standard_normal((5, 20)).astype(np.float32)
    for metric in METRICS:
        got = K.distances_many(queries, rows, metric)
        np.testing.assert_allclose(got, R.distances_many(queries, rows, metric), rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unaligned_rows_are_handled(backend: str) -> None:
    rng = _rng(8)
    n, d = 11, 17
    buf = np.zeros(n * d * 4 + 1, dtype=np.uint8)
    rows = buf[1:].view(np.float32).reshape(n, d)  # C-contiguous but not 4-byte aligned
    rows[:] = rng.standard_normal((n, d))
    assert not rows.flags.aligned
    query = rng.standard_normal(d).astype(np.float32)
    with using(backend):
        for metric in METRICS:
            got = K.distances(query, rows, metric)
            np.testing.assert_allclose(got, R.distances(query, rows, metric), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_and_memory_mapped_rows(backend: str, tmp_path) -> None:
    # segments hand the kernels read-only, memory-mapped arrays
    rng = _rng(20)
    rows = rng.standard_normal((40, 17)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    mapped = np.load(tmp_path / "rows.npy", mmap_mode="r")
    codes = np.frombuffer(R.pack_bits(rows > 0).tobytes(), dtype=np.uint64).reshape(40, 1)
    assert not mapped.flags.writeable and not codes.flags.writeable
    query = rng.standard_normal(17).astype(np.float32)
    with using(backend):
        np.testing.assert_allclose(K.distances(query, mapped, "l2"), R.distances(query, rows, "l2"), rtol=1e-5)
        np.testing.assert_allclose(
            K.distances_at(query, mapped, [5, 1], "cosine"), R.distances_at(query, rows, [5, 1], "cosine"),
            rtol=1e-5, atol=1e-6,
        )
        np.testing.assert_array_equal(K.hamming(codes[3].copy(), codes), R.hamming(codes[3], codes))


# ---------------------------------------------------------------------------------------------
# binary and multi-bit codes


def _planes(rng: np.random.Generator, n: int, u: int, d: int) -> np.ndarray:
    bits = rng.random((n * u, d)) < 0.5
    return R.pack_bits(bits).reshape(n, u, -1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hamming(backend: str) -> None:
    with using(backend) as kind:
        _expect("hamming", kind)
        for d in (*DIMS, 64, 128, 4096):
            rng = _rng(9, d)
            codes = _planes(rng, 45, 1, d)[:, 0].copy()
            query = _planes(rng, 1, 1, d)[0, 0]
            codes[1] = query
            codes[2] = R.pack_bits(~R.unpack_bits(query[None], d))[0]  # every real bit differs
            got = K.hamming(query, codes)
            assert got.dtype == np.int32
            np.testing.assert_array_equal(got, R.hamming(query, codes), err_msg=f"d={d}")
            assert got[1] == 0 and got[2] == d


@pytest.mark.parametrize("backend", BACKENDS)
def test_bitplane_ip_sym(backend: str) -> None:
    with using(backend) as kind:
        _expect("bitplane_ip_sym", kind)
        for d in DIMS:
            for u, uq in ((1, 1), (2, 4), (4, 1), (8, 3)):
                rng = _rng(10, d, u, uq)
                codes = _planes(rng, 29, u, d)
                qplanes = _planes(rng, 1, uq, d)[0]
                qw = (2.0 ** -np.arange(uq)).astype(np.float32)
                cw = rng.uniform(0.1, 2.0, u).astype(np.float32)
                got = K.bitplane_ip_sym(qplanes, codes, qw, cw, d)
                want = R.bitplane_ip_sym(qplanes, codes, qw, cw, d)
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5 * d, err_msg=f"d={d} u={u}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_bitplane_ip_asym(backend: str) -> None:
    with using(backend) as kind:
        _expect("bitplane_ip_asym", kind)
        for d in DIMS:
            for u in (1, 2, 4, 8):
                rng = _rng(11, d, u)
                codes = _planes(rng, 31, u, d)
                query = rng.standard_normal(d).astype(np.float32)
                lut = R.bitplane_lut(query)
                cw = rng.uniform(0.1, 2.0, u).astype(np.float32)
                got = K.bitplane_ip_asym(lut, codes, cw, float(query.sum()))
                want = R.bitplane_ip_asym(lut, codes, cw, float(query.sum()))
                tol = 1e-5 * cw.sum() * (np.abs(query).sum() + 1)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=tol, err_msg=f"d={d} u={u}")


# ---------------------------------------------------------------------------------------------
# product quantization


@pytest.mark.parametrize("backend", BACKENDS)
def test_pq_adc(backend: str) -> None:
    with using(backend) as kind:
        _expect("pq_adc", kind)
        for m in DIMS:
            for ksub in (16, 256):
                rng = _rng(12, m, ksub)
                lut = rng.uniform(0, 4, (m, ksub)).astype(np.float32)
                codes = rng.integers(0, ksub, (53, m), dtype=np.uint8)
                got = K.pq_adc(lut, codes)
                np.testing.assert_allclose(got, R.pq_adc(lut, codes), rtol=1e-5, atol=1e-5 * m)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pq4_fastscan(backend: str) -> None:
    with using(backend) as kind:
        _expect("pq4_fastscan", kind)
        for m in DIMS:
            for n in (1, 31, 32, 33, 100):
                rng = _rng(13, m, n)
                codes = rng.integers(0, 16, (n, m), dtype=np.uint8)
                lut = rng.integers(0, 256, (m, 16), dtype=np.uint8)
                packed = R.pq4_pack(codes)
                got = K.pq4_fastscan(lut, packed, n)
                assert got.dtype == np.uint16 and got.shape == (n,)
                # m = 384 and 1024 with bytes up to 255 overflow 16 bits: the wrap must match too
                np.testing.assert_array_equal(got, R.pq4_fastscan(lut, packed, n), err_msg=f"m={m} n={n}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_pq4_fastscan_topk_fused_matches_scan_then_select(backend: str) -> None:
    with using(backend) as kind:
        _expect("pq4_fastscan_topk", kind)
        for m, n in ((1, 5), (16, 2047), (48, 2049), (97, 5000), (384, 4100)):
            rng = _rng(20, m, n)
            codes = rng.integers(0, 16, (n, m), dtype=np.uint8)
            codes[n // 2] = 0  # the one best row sits in the middle of a chunk
            lut = rng.integers(1, 256 // max(1, m // 64 + 1), (m, 16), dtype=np.uint8)
            lut[:, 0] = 0
            packed = R.pq4_pack(codes)
            mask = rng.random(n) < 0.6
            for k in (0, 1, 10, 300):
                for msk in (None, mask):
                    idx, d = K.pq4_fastscan_topk(lut, packed, n, k, msk)
                    want_idx, want_d = R.topk(R.pq4_fastscan(lut, packed, n).astype(np.float32), k, msk)
                    assert idx.dtype == np.int64 and d.dtype == np.float32 and idx.shape == (k,)
                    np.testing.assert_array_equal(idx, want_idx, err_msg=f"m={m} n={n} k={k}")
                    np.testing.assert_array_equal(d, want_d)
            assert K.pq4_fastscan_topk(lut, packed, n, 1)[0][0] == n // 2


def test_pq4_fastscan_topk_rejects_bad_input() -> None:
    packed = R.pq4_pack(np.zeros((40, 4), dtype=np.uint8))
    lut = np.zeros((4, 16), dtype=np.uint8)
    with pytest.raises(ValueError, match="n = 70 needs 3"):
        K.pq4_fastscan_topk(lut, packed, 70, 5)
    with pytest.raises(ValueError, match="mask"):
        K.pq4_fastscan_topk(lut, packed, 40, 5, np.ones(39, dtype=bool))
    with pytest.raises(ValueError, match="k"):
        K.pq4_fastscan_topk(lut, packed, 40, -1)
    with pytest.raises((TypeError, ValueError), match="lut_u8"):
        K.pq4_fastscan_topk(lut.astype(np.float32), packed, 40, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bitplane_fastscan_layout_estimates_the_asymmetric_distance(backend: str) -> None:
    """Codes repacked for the fast scan: float tables give bitplane_ip_asym's distance exactly (up to
    rounding); the u8 tables stay within their quantization bound; a symmetric query goes through
    bitplane_decode to the same tables and gives bitplane_ip_sym's distance."""
    with using(backend):
        for d in DIMS:
            for u in (1, 2, 4, 8):
                rng = _rng(21, d, u)
                n = 45
                codes = _planes(rng, n, u, d)
                query = rng.standard_normal(d).astype(np.float32)
                cw = rng.uniform(0.1, 2.0, u).astype(np.float32)
                packed = K.bitplane_fastscan_pack(codes, d)
                groups = (d + 3) // 4
                assert packed.shape == ((n + 31) // 32, u * groups, 16)
                lut, offset = K.bitplane_fastscan_lut(query, cw)
                exact = R.bitplane_ip_asym(R.bitplane_lut(query), codes, cw, float(query.sum()))
                via_tables = R.pq_adc(lut, R.pq4_unpack(packed, n)).astype(np.float64) + offset
                tol = 1e-5 * cw.sum() * (np.abs(query).sum() + 1)
                np.testing.assert_allclose(via_tables, exact, rtol=1e-5, atol=tol, err_msg=f"d={d} u={u}")
                lut_u8, scale, bias = K.quantize_lut(lut)
                approx = K.pq4_fastscan(lut_u8, packed, n).astype(np.float64) * scale + bias + offset
                assert np.abs(approx - exact).max() <= 0.5 * scale * lut.shape[0] + tol
                qplanes, qw = _planes(rng, 1, 3, d)[0], np.array([1.0, 0.5, 0.25], np.float32)
                values = K.bitplane_decode(qplanes, qw, d)
                sym_lut, sym_offset = K.bitplane_fastscan_lut(values, cw)
                sym = R.pq_adc(sym_lut, R.pq4_unpack(packed, n)).astype(np.float64) + sym_offset
                np.testing.assert_allclose(sym, R.bitplane_ip_sym(qplanes, codes, qw, cw, d), rtol=1e-5,
                                           atol=1e-4 * d * cw.sum())


def test_pq4_pack_roundtrip_and_quantized_lut_bound() -> None:
    rng = _rng(14)
    codes = rng.integers(0, 16, (70, 9), dtype=np.uint8)
    np.testing.assert_array_equal(R.pq4_unpack(K.pq4_pack(codes), 70), codes)
    lut = rng.standard_normal((9, 16)).astype(np.float32)
    q, scale, bias = K.quantize_lut(lut)
    sums = K.pq4_fastscan(q, K.pq4_pack(codes), 70).astype(np.float64) * scale + bias
    np.testing.assert_allclose(sums, R.pq_adc(lut, codes), atol=9 * scale)


# ---------------------------------------------------------------------------------------------
# top-k


@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_ties_nan_mask_padding(backend: str) -> None:
    dist = np.array([0.5, np.nan, 0.1, 0.5, -0.0, 0.0, np.inf, 0.1, np.nan, 0.5], dtype=np.float32)
    mask = np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 1], dtype=bool)
    with using(backend) as kind:
        _expect("topk", kind)
        for k in (0, 1, 3, 4, 8, 12):
            for m in (None, mask):
                idx, d = K.topk(dist, k, m)
                want_idx, want_d = R.topk(dist, k, m)
                assert idx.dtype == np.int64 and d.dtype == np.float32 and idx.shape == (k,)
                np.testing.assert_array_equal(idx, want_idx, err_msg=f"k={k}")
                np.testing.assert_array_equal(d, want_d)
        idx, d = K.topk(dist, 12)
        assert list(idx[:4]) == [4, 5, 2, 7]  # -0.0 == 0.0 tie -> by index; then 0.1 tie
        assert list(idx[-4:]) == [-1, -1, -1, -1] and np.all(np.isinf(d[-4:]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_random_2d_with_masks(backend: str) -> None:
    rng = _rng(15)
    dist = rng.integers(0, 50, (6, 500)).astype(np.float32)  # many ties
    dist[rng.random(dist.shape) < 0.05] = np.nan
    mask2 = rng.random(dist.shape) < 0.7
    mask1 = rng.random(500) < 0.01  # fewer allowed rows than k: padding
    with using(backend):
        for k in (1, 10, 64):
            for m in (None, mask1, mask2):
                idx, d = K.topk(dist, k, m)
                want_idx, want_d = R.topk(dist, k, m)
                np.testing.assert_array_equal(idx, want_idx)
                np.testing.assert_array_equal(d, want_d)


@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_long_scans_with_signed_values_and_nans(backend: str) -> None:
    # long enough for the chunk screen; negative NaN, -0.0/0.0 and inf exercise its ordered keys
    rng = _rng(18)
    dist = rng.integers(-40, 40, 5000).astype(np.float32) * np.float32(0.25)
    dist[rng.random(5000) < 0.02] = np.nan
    dist[rng.random(5000) < 0.02] = np.uint32(0xFFC00000).view(np.float32)  # NaN with the sign bit
    dist[rng.random(5000) < 0.02] = -0.0
    dist[rng.random(5000) < 0.01] = -np.inf
    dist[4990:] = -20.0  # new winners at the very end
    mask = rng.random(5000) < 0.5
    with using(backend):
        for k in (1, 7, 300):
            for m in (None, mask):
                idx, d = K.topk(dist, k, m)
                want_idx, want_d = R.topk(dist, k, m)
                np.testing.assert_array_equal(idx, want_idx, err_msg=f"k={k}")
                np.testing.assert_array_equal(d, want_d)


@pytest.mark.parametrize("backend", BACKENDS)
def test_topk_uint16_fastscan_sums(backend: str) -> None:
    rng = _rng(19)
    sums = rng.integers(0, 2000, (3, 4000)).astype(np.uint16)
    sums[:, -3:] = 0
    mask = rng.random(4000) < 0.8
    with using(backend) as kind:
        _expect("topk_u16", kind)
        for k in (1, 16, 100):
            for m in (None, mask):
                idx, d = K.topk(sums, k, m)
                want_idx, want_d = R.topk(sums.astype(np.float32), k, m)
                np.testing.assert_array_equal(idx, want_idx)
                np.testing.assert_array_equal(d, want_d)
        idx, _ = K.topk(sums[0], 5)
        np.testing.assert_array_equal(idx[:3], [3997, 3998, 3999])


@pytest.mark.parametrize("backend", BACKENDS)
def test_merge_topk(backend: str) -> None:
    rng = _rng(16)
    q = 4
    ids, dists = [], []
    for part, k_i in enumerate((5, 3, 7)):
        i = rng.integers(0, 1000, (q, k_i)) + 1000 * part
        d = rng.integers(0, 6, (q, k_i)).astype(np.float32)  # ties between parts: by id
        i[:, -1] = -1  # empty slots are ignored whatever their distance
        d[:, -1] = -5.0
        ids.append(i)
        dists.append(d)
    with using(backend) as kind:
        _expect("merge_topk", kind)
        for k in (0, 1, 6, 20):
            got_i, got_d = K.merge_topk(ids, dists, k)
            want_i, want_d = R.merge_topk(ids, dists, k)
            np.testing.assert_array_equal(got_i, want_i)
            np.testing.assert_array_equal(got_d, want_d)


# ---------------------------------------------------------------------------------------------
# property tests: popcount and multi-bit code paths

CODE_BACKENDS = [b for b in BACKENDS if b != "numpy"]
_PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPS
@given(st.integers(0, 2**64 - 1))
def test_popcount64_matches_python(x: int) -> None:
    assert int(codes_nb.popcount64(np.uint64(x))) == bin(x).count("1")


@_PROPS
@given(st.data())
def test_pack_unpack_roundtrip(data: st.DataObject) -> None:
    d = data.draw(st.integers(1, 200), label="d")
    bits = data.draw(hnp.arrays(np.bool_, (3, d)), label="bits")
    packed = K.pack_bits(bits)
    assert packed.shape == (3, (d + 63) // 64) and packed.dtype == np.uint64
    np.testing.assert_array_equal(K.unpack_bits(packed, d), bits)
    # padding bits stay zero, so Hamming distances never count them
    assert np.all(R.unpack_bits(packed, packed.shape[1] * 64)[:, d:] == 0)


@pytest.mark.parametrize("backend", CODE_BACKENDS)
@_PROPS
@given(data=st.data())
def test_hamming_counts_differing_dimensions(backend: str, data: st.DataObject) -> None:
    d = data.draw(st.integers(1, 300), label="d")
    bits = data.draw(hnp.arrays(np.bool_, (5, d)), label="bits")
    qbits = data.draw(hnp.arrays(np.bool_, (d,)), label="qbits")
    with using(backend):
        got = K.hamming(K.pack_bits(qbits[None])[0], K.pack_bits(bits))
    np.testing.assert_array_equal(got, (bits != qbits[None]).sum(1))


def _decode_planes(bits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """bits (n, u, d) -> (n, d) float64 ``sum_j w[j] * (2 bit - 1)``."""
    return np.einsum("nud,u->nd", 2.0 * bits - 1.0, weights.astype(np.float64))


@pytest.mark.parametrize("backend", CODE_BACKENDS)
@_PROPS
@given(data=st.data())
def test_bitplane_ip_matches_decoded_dot(backend: str, data: st.DataObject) -> None:
    d = data.draw(st.integers(1, 200), label="d")
    u = data.draw(st.integers(1, 8), label="u")
    uq = data.draw(st.integers(1, 4), label="uq")
    bits = data.draw(hnp.arrays(np.bool_, (4, u, d)), label="bits")
    qbits = data.draw(hnp.arrays(np.bool_, (1, uq, d)), label="qbits")
    cw = (2.0 ** -np.arange(u)).astype(np.float32)  # the usual multi-bit weights: 1, 1/2, 1/4...
    qw = (2.0 ** -np.arange(uq)).astype(np.float32)
    codes = K.pack_bits(bits.reshape(4 * u, d)).reshape(4, u, -1)
    qplanes = K.pack_bits(qbits[0])
    x = _decode_planes(bits, cw)
    q = _decode_planes(qbits, qw)[0]
    query = data.draw(hnp.arrays(np.float32, d, elements=st.floats(-4, 4, width=32)), label="query")
    with using(backend):
        sym = K.bitplane_ip_sym(qplanes, codes, qw, cw, d)
        asym = K.bitplane_ip_asym(K.bitplane_lut(query), codes, cw, float(query.astype(np.float64).sum()))
    np.testing.assert_allclose(sym, -(x @ q), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(asym, -(x @ query.astype(np.float64)), rtol=1e-4, atol=1e-3 * (1 + d))


def test_numba_helpers_are_callable_from_njit_code() -> None:
    @njit
    def best_of(query, rows, offsets):  # what graph code does: gather, score, keep the best
        hd = np.empty(2, np.float32)
        hk = np.empty(2, np.int64)
        size = 0
        for i in range(offsets.shape[0]):
            d = dist_nb.distance_f32(query, rows[offsets[i]], 0)
            size = sel_nb.heap_push(hd, hk, size, d, offsets[i])
        sel_nb.heap_sort_out(hd, hk, size)
        return hk, hd, dist_nb.l2_f32(query, rows[0]), dist_nb.dot_f32(query, rows[0])

    rng = _rng(17)
    rows = rng.standard_normal((20, 7)).astype(np.float32)
    query = rng.standard_normal(7).astype(np.float32)
    offsets = np.array([3, 9, 0, 14], np.int64)
    keys, dists, l2, dot = best_of(query, rows, offsets)
    want = R.distances_at(query, rows, offsets, "l2")
    np.testing.assert_array_equal(keys, offsets[np.argsort(want)[:2]])
    np.testing.assert_allclose(dists, np.sort(want)[:2], rtol=1e-5)
    assert l2 == pytest.approx(R.distances(query, rows[:1], "l2")[0], rel=1e-5)
    assert dot == pytest.approx(-R.distances(query, rows[:1], "ip")[0], rel=1e-5)
