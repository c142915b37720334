"""The dispatch layer: backend choice (C present, partial, absent), knobs, info(), and input errors."""

from __future__ import annotations

import types

import numpy as np
import pytest

from tests.kernels.backends import C_LEVELS
from vecdb import kernels as K
from vecdb.kernels import dispatch
from vecdb.kernels import reference as R


@pytest.fixture(autouse=True)
def _fresh_dispatch():
    dispatch.reload()
    yield
    dispatch.reload()


def _fake_native(calls: list[str], ops: tuple[str, ...]) -> types.SimpleNamespace:
    """A stand-in C module that implements only ``ops`` (by the reference) and logs its calls."""
    metric_names = {0: "l2", 1: "ip", 2: "cosine"}

    def distances_f32(query, rows, metric, out):
        calls.append("distances_f32")
        assert out.dtype == np.float32 and out.shape == (rows.shape[0],)
        out[:] = R.distances(query, rows, metric_names[metric])

    def topk(dist, k, mask, out_idx, out_dist):
        calls.append("topk")
        idx, d = R.topk(dist, k, None if mask is None else mask.view(bool))
        out_idx[:], out_dist[:] = idx, d
        return int((idx >= 0).sum())

    impl = {"distances_f32": distances_f32, "topk": topk}
    fake = types.SimpleNamespace(
        simd_level=lambda: "scalar",
        set_simd_level=lambda name: "scalar",
        cpu_features=lambda: {"avx2": False},
    )
    for name in ops:
        setattr(fake, name, impl[name])
    return fake


def test_partial_native_module_falls_back_per_op(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(dispatch, "_import_native", lambda: _fake_native(calls, ("distances_f32", "topk")))
    dispatch.reload("auto")
    assert dispatch.backend("distances") == "c"
    assert dispatch.backend("topk") == "c"
    assert dispatch.backend("hamming") == "numba"
    assert dispatch.backend("merge_topk") == "numba"
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((10, 5)).astype(np.float32)
    query = rng.standard_normal(5).astype(np.float32)
    np.testing.assert_allclose(K.distances(query, rows, "ip"), R.distances(query, rows, "ip"), rtol=1e-6)
    idx, _ = K.topk(np.array([[3, 1, 2], [0, 5, 4]], np.float32), 2, np.array([1, 1, 0], bool))
    np.testing.assert_array_equal(idx, [[1, 0], [0, 1]])
    assert calls == ["distances_f32", "topk", "topk"]
    info = K.info()
    assert info["native_loaded"] and info["simd_level"] == "scalar"
    assert info["backends"]["pq_adc"] == "numba"


def test_missing_native_module_runs_on_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_native():
        raise ImportError("No module named 'vecdb._native'")

    monkeypatch.setattr(dispatch, "_import_native", no_native)
    dispatch.reload("auto")
    info = K.info()
    assert set(info["backends"].values()) == {"numba"}
    assert info["native_loaded"] is False and "vecdb._native" in info["native_error"]
    assert info["simd_level"] is None and isinstance(info["cpu_features"], dict)
    assert info["numba_version"]
    assert K.set_simd_level("avx2") is None  # nothing to cap
    assert K.function_pointers() == {}
    rows = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(K.distances(np.zeros(4, np.float32), rows, "l2"), [4, 4, 4])


def test_missing_numba_runs_on_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken():
        raise ImportError("numba is broken")

    monkeypatch.setattr(dispatch, "_import_native", broken)
    monkeypatch.setattr(dispatch, "_import_numba", broken)
    dispatch.reload("auto")
    assert set(K.info()["backends"].values()) == {"numpy"}
    idx, _ = K.topk(np.array([2, 1, 3], np.float32), 2)
    np.testing.assert_array_equal(idx, [1, 0])


@pytest.mark.parametrize(
    ("env", "expected"), [("numba", {"numba"}), ("numpy", {"numpy"}), (" NumPy ", {"numpy"})]
)
def test_vecdb_kernels_env_forces_backend(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: set[str]
) -> None:
    monkeypatch.setenv("VECDB_KERNELS", env)
    dispatch.reload()
    assert set(K.info()["backends"].values()) == expected
    assert K.info()["native_loaded"] is False


def test_bad_vecdb_kernels_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECDB_KERNELS", "cuda")
    with pytest.raises(ValueError, match="VECDB_KERNELS"):
        dispatch.reload()


def test_set_simd_level_validates_name() -> None:
    with pytest.raises(ValueError, match="simd level"):
        K.set_simd_level("sse9")
    with pytest.raises(ValueError, match="unknown op"):
        K.backend("fft")


@pytest.mark.skipif(not C_LEVELS, reason="C module not built")
def test_info_with_real_native_module() -> None:
    info = K.info()
    assert info["native_loaded"] is True
    assert info["simd_level"] in C_LEVELS
    assert {"avx2", "popcnt"} <= set(info["cpu_features"])
    assert info["backends"]["distances"] == "c"
    pointers = K.function_pointers()
    assert pointers and all(isinstance(v, int) and v > 0 for v in pointers.values())
    start = info["simd_level"]
    try:
        assert K.set_simd_level("scalar") == "scalar"
        assert K.info()["simd_level"] == "scalar"
    finally:
        K.set_simd_level(start)


# ---------------------------------------------------------------------------------------------
# bad input: one clear TypeError / ValueError naming the argument, on every path

_ROWS = np.ones((4, 8), np.float32)
_Q = np.ones(8, np.float32)
_CODES = np.zeros((4, 2), np.uint64)
_PLANES = np.zeros((4, 3, 2), np.uint64)
_LUT4 = np.ones((2, 16), np.uint8)
_U8 = np.uint8
_NAN_Q = np.array([np.nan, *([1.0] * 7)], np.float32)

BAD_CALLS = [
    (lambda: K.distances(_Q, _ROWS.astype(np.float64), "l2"), TypeError, "rows must have dtype float32"),
    (lambda: K.distances(_Q, _ROWS[:, ::2], "l2"), ValueError, "rows must be C-contiguous"),
    (lambda: K.distances(_Q, _ROWS[0], "l2"), ValueError, "rows must be 2-D"),
    (lambda: K.distances(_Q, _ROWS.tolist(), "l2"), TypeError, "rows must be a numpy array"),
    (lambda: K.distances(_Q[:5], _ROWS, "l2"), ValueError, "query has dimension 5"),
    (lambda: K.distances(_Q[None], _ROWS, "l2"), ValueError, "query must be 1-D"),
    (lambda: K.distances(_NAN_Q, _ROWS, "l2"), ValueError, "query contains NaN or inf"),
    (lambda: K.distances(np.full(8, 1e39), _ROWS, "l2"), ValueError, "query contains NaN or inf"),
    (lambda: K.distances(np.array(["a"] * 8), _ROWS, "l2"), TypeError, "query must hold real numbers"),
    (lambda: K.distances(_Q, _ROWS, "hamming"), ValueError, "unknown metric"),
    (lambda: K.distances(_Q, _ROWS, 0), TypeError, "metric must be a str"),
    (lambda: K.distances(np.ones(0, np.float32), np.ones((3, 0), np.float32), "l2"), ValueError, "column"),
    (lambda: K.distances_many(_Q, _ROWS, "l2"), ValueError, "queries must be 2-D"),
    (lambda: K.distances_many(_NAN_Q[None], _ROWS, "ip"), ValueError, "queries contains NaN"),
    (lambda: K.distances_at(_Q, _ROWS, [0, 4], "l2"), ValueError, "offsets out of range"),
    (lambda: K.distances_at(_Q, _ROWS, [-1], "l2"), ValueError, "offsets out of range"),
    (lambda: K.distances_at(_Q, _ROWS, [0.5], "l2"), TypeError, "offsets must be integers"),
    (lambda: K.distances_at(_Q, _ROWS, [[0]], "l2"), ValueError, "offsets must be 1-D"),
    (lambda: K.distances_at(_NAN_Q, _ROWS, [0], "l2"), ValueError, "query contains NaN"),
    (lambda: K.distances_f16(_Q, _ROWS, "l2"), TypeError, "rows must have dtype float16"),
    (lambda: K.distances_f16(_NAN_Q, _ROWS.astype(np.float16), "l2"), ValueError, "query contains NaN"),
    (lambda: K.distances_sq8(_Q, _ROWS, _Q, _Q, "l2"), TypeError, "codes must have dtype uint8"),
    (lambda: K.distances_sq8(_Q, np.ones((4, 8), np.uint8), _Q[:3], _Q, "l2"), ValueError, "scale must have"),
    (lambda: K.distances_sq8(_Q, np.ones((4, 8), np.uint8), _Q, _NAN_Q, "l2"), ValueError, "offset contains"),
    (lambda: K.hamming(_CODES[0].astype(np.int64), _CODES), TypeError, "query_code must have dtype uint64"),
    (lambda: K.hamming(_CODES[0, :1], _CODES), ValueError, "query_code must have shape"),
    (lambda: K.hamming(_CODES[0], _CODES.view(np.int64)), TypeError, "codes must have dtype uint64"),
    (lambda: K.bitplane_ip_sym(_CODES[:2], _CODES, [1, 1], [1, 1, 1], 100), ValueError, "codes must be 3-D"),
    (lambda: K.bitplane_ip_sym(_CODES[:2], _PLANES, [1], [1, 1, 1], 100), ValueError, "query_weights"),
    (lambda: K.bitplane_ip_sym(_CODES[:2], _PLANES, [1, 1], [1, 1], 100), ValueError, "code_weights"),
    (lambda: K.bitplane_ip_sym(_CODES[:2], _PLANES, [1, 1], [1, 1, 1], 129), ValueError, "dim must be"),
    (lambda: K.bitplane_ip_sym(_CODES[:2], _PLANES, [1, 1], [1, 1, 1], 1.5), TypeError, "dim must be an int"),
    (lambda: K.bitplane_ip_sym(_CODES[0], _PLANES, [1], [1, 1, 1], 64), ValueError, "query_planes must"),
    (lambda: K.bitplane_ip_asym(np.ones((8, 256)), _PLANES, [1, 1, 1], 0.0), ValueError, "lut must have"),
    (lambda: K.bitplane_ip_asym(np.ones((16, 256)), _PLANES, [1, 1, 1], np.nan), ValueError, "query_sum"),
    (lambda: K.bitplane_ip_asym(np.ones((16, 256)), _PLANES, [1, 1, 1], "0"), TypeError, "query_sum"),
    (lambda: K.pq_adc(np.ones((2, 16)), np.full((3, 2), 16, np.uint8)), ValueError, "not below|>= ksub"),
    (lambda: K.pq_adc(np.ones((3, 16)), np.zeros((3, 2), np.uint8)), ValueError, "lut must have shape"),
    (lambda: K.pq_adc(np.ones((2, 300)), np.zeros((3, 2), np.uint8)), ValueError, "ksub <= 256"),
    (lambda: K.pq_adc(np.full((2, 16), np.inf), np.zeros((3, 2), np.uint8)), ValueError, "lut contains"),
    (lambda: K.pq4_fastscan(_LUT4, np.zeros((2, 2, 16), _U8), 10), ValueError, "n = 10"),
    (lambda: K.pq4_fastscan(np.ones((2, 16), np.int32), np.zeros((1, 2, 16), _U8), 10), TypeError, "lut_u8"),
    (lambda: K.pq4_fastscan(_LUT4, np.zeros((1, 2, 8), _U8), 10), ValueError, "packed"),
    (lambda: K.topk(np.ones(5, np.float32), -1), ValueError, "k must be"),
    (lambda: K.topk(np.ones(5, np.float32), 2.0), TypeError, "k must be an int"),
    (lambda: K.topk(np.ones(5, np.float32), True), TypeError, "k must be an int"),
    (lambda: K.topk(np.ones(5, np.float32), 2, np.ones(4, bool)), ValueError, "mask must have shape"),
    (lambda: K.topk(np.ones(5, np.float32), 2, np.ones(5, np.float32)), TypeError, "mask must be bool"),
    (lambda: K.topk(np.ones((2, 2, 2), np.float32), 2), ValueError, "distances must be 1-D or 2-D"),
    (lambda: K.merge_topk([np.zeros((2, 3), int)], [], 2), ValueError, "ids and dists"),
    (lambda: K.merge_topk([np.zeros((2, 3))], [np.zeros((2, 3))], 2), TypeError, r"ids\[0\] must be int"),
    (lambda: K.merge_topk([np.zeros((2, 3), int)], [np.zeros((2, 2))], 2), ValueError, r"ids\[0\] and dists"),
]


@pytest.mark.parametrize("kind", ["auto", "numba", "numpy"])
@pytest.mark.parametrize(("call", "exc", "match"), BAD_CALLS)
def test_bad_input_is_a_clear_error(kind: str, call, exc: type[Exception], match: str) -> None:
    dispatch.reload(kind)
    with pytest.raises(exc, match=match):
        call()


def test_empty_inputs_give_empty_outputs() -> None:
    assert K.distances(_Q, np.ones((0, 8), np.float32), "cosine").shape == (0,)
    assert K.distances_many(np.ones((5, 8), np.float32), np.ones((0, 8), np.float32), "l2").shape == (5, 0)
    assert K.hamming(_CODES[0], np.zeros((0, 2), np.uint64)).shape == (0,)
    assert K.pq4_fastscan(_LUT4, np.zeros((0, 2, 16), np.uint8), 0).shape == (0,)
    for kind in ("auto", "numba", "numpy"):
        dispatch.reload(kind)
        idx, d = K.topk(np.ones(0, np.float32), 3, np.ones(0, bool))
        np.testing.assert_array_equal(idx, [-1, -1, -1])
        assert np.all(np.isinf(d))
        assert K.topk(np.ones((2, 0), np.uint16), 2, np.ones((2, 0), bool))[0].shape == (2, 2)


def test_all_finite_survives_overflow_and_catches_nan_and_inf() -> None:
    from vecdb.kernels.validate import all_finite

    huge = np.full(8, 3e38, np.float32)  # the dot product overflows to inf: the exact check decides
    assert all_finite(huge) and all_finite(np.zeros((2, 3), np.float32))
    for bad in (np.nan, np.inf, -np.inf):
        x = np.ones((2, 4), np.float32)
        x[1, 2] = bad
        assert not all_finite(x)
