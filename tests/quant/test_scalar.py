"""ScalarQuantizer: bounds, kernel distances vs decoded vectors, degenerate data, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.kernels import reference
from vecdb.quant.scalar import ScalarQuantizer


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_sq8_round_trip_within_half_step(blobs: np.ndarray, metric: str) -> None:
    sq = ScalarQuantizer(blobs.shape[1], metric)
    sq.train(blobs)
    codes = sq.encode(blobs)
    assert codes.shape == (len(blobs), sq.code_size) and codes.dtype == np.uint8
    err = np.abs(sq.decode(codes) - blobs)
    assert (err <= sq.scale[None, :] * 0.5 + 1e-5).all()


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("bits", [8, 16])
def test_distances_match_decoded_reference(blobs: np.ndarray, metric: str, bits: int) -> None:
    sq = ScalarQuantizer(blobs.shape[1], metric, bits=bits)
    sq.train(blobs[:1000])
    codes = sq.encode(blobs)
    query = blobs[7] + 0.1
    got = sq.distances(sq.prepare(query), codes)
    want = reference.distances(query, sq.decode(codes), metric)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sq.distances_at(sq.prepare(query), codes, np.array([5, 3])), want[[5, 3]],
                               rtol=1e-4, atol=1e-4)


def test_fp16_round_trip_and_saturation() -> None:
    x = np.array([[0.1, -2.5, 1e6]], dtype=np.float32)
    sq = ScalarQuantizer(3, "l2", bits=16)
    sq.train(x)
    back = sq.decode(sq.encode(x))
    assert sq.code_size == 6
    np.testing.assert_allclose(back[0, :2], x[0, :2], rtol=1e-3)
    assert np.isfinite(back).all() and back[0, 2] == np.finfo(np.float16).max


def test_clipping_saturates_outliers() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 4)).astype(np.float32)
    x[0] = 1000.0
    plain, clipped = ScalarQuantizer(4, "l2"), ScalarQuantizer(4, "l2", clip=0.01)
    plain.train(x)
    clipped.train(x)
    assert (clipped.scale < plain.scale / 10).all()
    bulk = x[1:]
    err_clip = np.abs(clipped.decode(clipped.encode(bulk)) - bulk).mean()
    err_plain = np.abs(plain.decode(plain.encode(bulk)) - bulk).mean()
    assert err_clip < err_plain


def test_constant_vectors_and_dim_one() -> None:
    x = np.full((5, 1), 3.25, dtype=np.float32)
    sq = ScalarQuantizer(1, "l2")
    sq.train(x)
    assert (sq.scale == 0).all()
    np.testing.assert_array_equal(sq.decode(sq.encode(x)), x)
    np.testing.assert_array_equal(sq.distances(sq.prepare(np.array([3.25], np.float32)), sq.encode(x)), 0)


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="bits"):
        ScalarQuantizer(4, "l2", bits=4)
    with pytest.raises(ValueError, match="metric"):
        ScalarQuantizer(4, "hamming")
    sq = ScalarQuantizer(4, "l2")
    with pytest.raises(ValueError, match="not trained"):
        sq.encode(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="at least one row"):
        sq.train(np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        sq.train(np.zeros((3, 5), np.float32))


def test_persistence_round_trip(blobs: np.ndarray) -> None:
    sq = ScalarQuantizer(blobs.shape[1], "cosine", clip=0.001)
    sq.train(blobs)
    meta, arrays = sq.to_arrays()
    again = ScalarQuantizer.from_arrays(meta, arrays)
    np.testing.assert_array_equal(again.encode(blobs), sq.encode(blobs))
    codes = sq.encode(blobs)
    np.testing.assert_array_equal(again.distances(again.prepare(blobs[0]), codes),
                                  sq.distances(sq.prepare(blobs[0]), codes))
    assert sq.nbytes == 2 * 4 * blobs.shape[1]
