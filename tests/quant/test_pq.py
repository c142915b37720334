"""ProductQuantizer: ADC vs decoded reference, fast-scan, OPQ, padding, degenerate data, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.kernels import reference
from vecdb.quant.pq import ProductQuantizer


def _reference(pq: ProductQuantizer, query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    decoded = pq.decode(codes)
    if pq.metric == "cosine":  # PQ codes unit vectors; cosine is 1 - <q/|q|, decoded>
        return 1.0 - decoded @ (query / np.linalg.norm(query))
    return reference.distances(query, decoded, pq.metric)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("bits", [8, 4])
def test_adc_matches_decoded_reference(blobs: np.ndarray, metric: str, bits: int) -> None:
    pq = ProductQuantizer(blobs.shape[1], metric, m=8, bits=bits)
    pq.train(blobs)
    codes = pq.encode(blobs)
    assert codes.shape == (len(blobs), pq.code_size) and pq.code_size == (8 if bits == 8 else 4)
    q = blobs[5] + 0.1
    prepared = pq.prepare(q)
    np.testing.assert_allclose(pq.distances(prepared, codes), _reference(pq, q, codes), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pq.distances_at(prepared, codes, np.array([9, 2])),
                               pq.distances(prepared, codes)[[9, 2]], rtol=1e-6)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_fastscan_close_to_float_adc(blobs: np.ndarray, metric: str) -> None:
    pq = ProductQuantizer(blobs.shape[1], metric, m=16, bits=4)
    pq.train(blobs)
    codes = pq.encode(blobs[:1000])
    prepared = pq.prepare(blobs[0])
    exact = pq.distances(prepared, codes)
    fast = pq.fastscan(prepared, pq.fastscan_layout(codes), len(codes))
    # Each of the m table entries is rounded to half a quantization step at most.
    assert np.abs(fast - exact).max() <= 16 * prepared.lut_scale * 0.5 + 1e-4
    np.testing.assert_array_equal(pq.plain_codes(codes), pq.plain_codes(pq.encode(blobs[:1000])))


def test_reconstruction_improves_with_more_subspaces(blobs: np.ndarray) -> None:
    errs = []
    for m in (2, 8, 32):
        pq = ProductQuantizer(blobs.shape[1], "l2", m=m, bits=4, niter=10)
        pq.train(blobs)
        errs.append(float(((pq.decode(pq.encode(blobs)) - blobs) ** 2).sum(1).mean()))
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.1 * float((blobs**2).sum(1).mean())


def test_opq_kept_only_when_it_helps() -> None:
    # Correlated dimensions spread over sub-spaces: a rotation clearly helps here.
    rng = np.random.default_rng(2)
    latent = rng.standard_normal((3000, 4)).astype(np.float32)
    x = (latent @ rng.standard_normal((4, 16)).astype(np.float32)).astype(np.float32)
    plain = ProductQuantizer(16, "l2", m=4, bits=4)
    rotated = ProductQuantizer(16, "l2", m=4, bits=4, opq=True, opq_iters=3)
    plain.train(x)
    rotated.train(x)
    assert rotated.rotation is not None
    np.testing.assert_allclose(rotated.rotation @ rotated.rotation.T, np.eye(16), atol=1e-4)
    err = [float(((q.decode(q.encode(x)) - x) ** 2).sum(1).mean()) for q in (plain, rotated)]
    assert err[1] < err[0]


def test_padding_when_dim_not_divisible() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((600, 10)).astype(np.float32)
    pq = ProductQuantizer(10, "l2", m=4, bits=4)
    pq.train(x)
    assert pq.dsub == 3 and pq.decode(pq.encode(x)).shape == (600, 10)
    # 10 dims over 4 sub-spaces: sizes 3, 3, 2, 2, so every sub-space carries data.
    assert [int((pq._slots[j * 3 : (j + 1) * 3] < 10).sum()) for j in range(4)] == [3, 3, 2, 2]
    wide = ProductQuantizer(10, "l2", m=8, bits=4)
    wide.train(x)
    narrow = ProductQuantizer(10, "l2", m=5, bits=4)
    narrow.train(x)
    err = [float(((q.decode(q.encode(x)) - x) ** 2).sum(1).mean()) for q in (narrow, wide)]
    assert err[1] < err[0]  # more sub-quantizers must help even when m does not divide dim
    np.testing.assert_allclose(pq.distances(pq.prepare(x[0]), pq.encode(x)),
                               _reference(pq, x[0], pq.encode(x)), rtol=1e-4, atol=1e-4)


def test_fewer_rows_than_centroids_and_constant_vectors() -> None:
    x = np.repeat(np.array([[1.0, 2.0, 3.0, 4.0]], np.float32), 5, axis=0)
    x[1] = [0.5, 0.5, 0.5, 0.5]
    pq = ProductQuantizer(4, "l2", m=2, bits=8)
    pq.train(x)  # 2 distinct rows for 256 centroids: distinct rows become centroids, encoded exactly
    np.testing.assert_allclose(pq.decode(pq.encode(x)), x)
    one = ProductQuantizer(1, "ip", m=1, bits=4)
    one.train(np.array([[2.0]], np.float32))
    np.testing.assert_allclose(one.decode(one.encode(np.array([[2.0]], np.float32))), [[2.0]])


def test_determinism_and_persistence(blobs: np.ndarray) -> None:
    a = ProductQuantizer(blobs.shape[1], "ip", m=8, bits=4, opq=True, opq_iters=2, seed=5)
    b = ProductQuantizer(blobs.shape[1], "ip", m=8, bits=4, opq=True, opq_iters=2, seed=5)
    a.train(blobs[:1500])
    b.train(blobs[:1500])
    np.testing.assert_array_equal(a.codebooks, b.codebooks)
    codes = a.encode(blobs)
    np.testing.assert_array_equal(codes, b.encode(blobs))
    meta, arrays = a.to_arrays()
    c = ProductQuantizer.from_arrays(meta, arrays)
    np.testing.assert_array_equal(c.encode(blobs), codes)
    np.testing.assert_array_equal(c.distances(c.prepare(blobs[1]), codes),
                                  a.distances(a.prepare(blobs[1]), codes))
    assert a.nbytes >= a.codebooks.nbytes


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="bits"):
        ProductQuantizer(8, "l2", m=2, bits=6)
    with pytest.raises(ValueError, match="m must be"):
        ProductQuantizer(8, "l2", m=9)
    pq = ProductQuantizer(8, "l2", m=2)
    with pytest.raises(ValueError, match="not trained"):
        pq.encode(np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        pq.train(np.full((4, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="4-bit"):
        pq.fastscan_layout(np.zeros((1, 2), np.uint8))
