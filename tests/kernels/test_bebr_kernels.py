"""BEBR's per-query kernels against the numpy reference: recurrent residual binarization (bit-identical)
and the fast-scan tables (the float table and its uint8 quantization); the dispatchers reject what
they cannot use."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecdb import kernels
from vecdb.kernels import codes, reference


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 20), st.integers(1, 70), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_numba_binarize_is_bit_identical_to_the_reference(n: int, dim: int, u: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, dim)).astype(np.float32)
    y[rng.random((n, dim)) < 0.1] = 0.0  # zero counts as +1
    alphas = np.sort(rng.random(u).astype(np.float32))[::-1].copy()
    want_signs, want_recon = reference.binarize(y, alphas)
    signs = np.empty((n, u, dim), bool)
    recon = np.empty((n, dim), np.float32)
    codes.binarize_into(y, alphas, signs, recon)
    np.testing.assert_array_equal(signs, want_signs)
    assert recon.tobytes() == want_recon.tobytes()
    got_signs, got_recon = kernels.binarize(y, alphas)
    np.testing.assert_array_equal(got_signs, want_signs)
    assert got_recon.tobytes() == want_recon.tobytes()


def test_binarize_residual_shrinks_plane_by_plane() -> None:
    """Halving alphas reproduce a value's binary expansion: the residual after u planes is below
    the last alpha, so the reconstruction error is bounded by it."""
    y = np.array([[0.3, -0.7, 0.0, 0.99]], np.float32)
    alphas = np.array([0.5, 0.25, 0.125, 0.0625], np.float32)
    signs, recon = kernels.binarize(y, alphas)
    assert signs[0, 0].tolist() == [True, False, True, True]  # plane 0 is the sign (0 -> +1)
    assert np.abs(recon - y).max() <= alphas[-1]


def _cosines(y: np.ndarray, recon: np.ndarray) -> np.ndarray:
    y64, r64 = y.astype(np.float64), recon.astype(np.float64)
    norms = np.linalg.norm(r64, axis=1)
    return (r64 * y64).sum(1) / np.where(norms > 0, norms, 1.0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 20), st.integers(1, 70), st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_numba_rescaled_binarize_matches_the_reference(n: int, dim: int, u: int, grid: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, dim)).astype(np.float32)
    y[rng.random((n, dim)) < 0.1] = 0.0
    alphas = (0.5 ** np.arange(u) * rng.uniform(0.2, 2.0)).astype(np.float32)
    scales = np.geomspace(0.5, 2.0, grid).astype(np.float32)
    want_signs, want_recon = reference.binarize_rescaled(y, alphas, scales)
    got_signs, got_recon = kernels.binarize(y, alphas, scales)
    # The chosen code is as good as the reference's (a float64 near-tie may pick the other scale)...
    np.testing.assert_allclose(_cosines(y, got_recon), _cosines(y, want_recon), rtol=0, atol=1e-9)
    # ...its reconstruction is its planes in units of alphas, bit for bit as binarize sums them...
    signed = np.where(got_signs, alphas[None, :, None], -alphas[None, :, None]).astype(np.float32)
    want = np.zeros_like(got_recon)
    for t in range(u):
        want += signed[:, t]
    assert got_recon.tobytes() == want.tobytes()
    # ...and the rows where both picked the same code agree plane for plane (nearly all rows).
    same = (got_signs == want_signs).all(axis=(1, 2))
    assert same.sum() >= n - max(1, n // 10)


def test_rescaling_never_lowers_the_cosine() -> None:
    """With 1 in the grid, the per-row choice can only improve on the global weights."""
    rng = np.random.default_rng(5)
    y = rng.normal(size=(400, 64)).astype(np.float32)
    y *= rng.uniform(0.3, 3.0, (400, 1)).astype(np.float32)  # rows of very different spreads
    alphas = (0.5 ** np.arange(4) * 0.8).astype(np.float32)
    _, plain = kernels.binarize(y, alphas)
    _, rescaled = kernels.binarize(y, alphas, np.geomspace(0.25, 4.0, 25).astype(np.float32))
    before, after = _cosines(y, plain), _cosines(y, rescaled)
    assert (after >= before - 1e-12).all()
    assert after.mean() > before.mean() + 0.005  # and it matters when spreads differ


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3),
       st.integers(0, 2**32 - 1))
def test_fastscan_affine_is_bit_identical_to_the_reference(n: int, mul: float, add: float, const: float,
                                                           seed: int) -> None:
    rng = np.random.default_rng(seed)
    sums = rng.integers(0, 2**16, n).astype(np.uint16)
    scale = rng.normal(size=n).astype(np.float32)
    shift = rng.normal(size=n).astype(np.float32) * 100
    want = reference.fastscan_affine(sums, scale, shift, mul, add, const)
    got = kernels.fastscan_affine(sums, scale, shift, mul, add, const)
    assert got.dtype == np.float32 and got.tobytes() == want.tobytes()


def test_fastscan_affine_rejects_bad_input() -> None:
    sums, ones = np.zeros(4, np.uint16), np.ones(4, np.float32)
    with pytest.raises(TypeError, match="uint16"):
        kernels.fastscan_affine(sums.astype(np.int32), ones, ones, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        kernels.fastscan_affine(sums, ones[:3], ones, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        kernels.fastscan_affine(sums, ones, ones, float("nan"), 0.0, 0.0)


def test_binarize_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        kernels.binarize(np.zeros(4, np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        kernels.binarize(np.zeros((1, 4), np.float32), np.ones((2, 1), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        kernels.binarize(np.full((1, 4), np.nan, np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="positive"):
        kernels.binarize(np.zeros((1, 4), np.float32), np.ones(2, np.float32), np.array([1.0, -1.0], np.float32))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 130), st.integers(1, 8), st.floats(1e-3, 1e3), st.integers(0, 2**32 - 1))
def test_fastscan_tables_match_the_reference(dim: int, u: int, magnitude: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = (rng.normal(size=dim) * magnitude).astype(np.float32)
    cw = rng.random(u).astype(np.float32)
    lut, offset = kernels.bitplane_fastscan_lut(q, cw)
    want_lut, want_offset = reference.bitplane_fastscan_lut(q, cw)
    np.testing.assert_allclose(lut, want_lut, rtol=1e-6, atol=1e-6 * magnitude)
    assert offset == pytest.approx(want_offset, rel=1e-9, abs=1e-9 * magnitude)
    table, scale, bias = kernels.quantize_lut(want_lut)
    want_table, want_scale, want_bias = reference.quantize_lut(want_lut)
    assert np.abs(table.astype(int) - want_table).max() <= 1  # a tie of rint may round either way
    assert scale == pytest.approx(want_scale, rel=1e-12)
    assert bias == pytest.approx(want_bias, rel=1e-9, abs=1e-9 * magnitude)
    # what the table is for: bias + scale * (sum of one entry per row) ~ the float sum
    rows = np.arange(table.shape[0])
    picks = rng.integers(0, 16, table.shape[0])
    approx = bias + scale * table[rows, picks].astype(np.float64).sum()
    assert approx == pytest.approx(float(want_lut[rows, picks].astype(np.float64).sum()),
                                   abs=scale * table.shape[0] / 2 + 1e-9)


def test_fastscan_tables_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        kernels.bitplane_fastscan_lut(np.zeros((2, 4), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        kernels.bitplane_fastscan_lut(np.array([1.0, np.inf], np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"\(m, 16\)"):
        kernels.quantize_lut(np.zeros((3, 8), np.float32))
