"""BEBRQuantizer: estimator vs decoded vectors, accuracy with bits, learning gain, degenerate data, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from tests.quant.data import clustered
from vecdb.kernels import reference
from vecdb.quant import bebr_train
from vecdb.quant.bebr import BEBRQuantizer
from vecdb.quant.bebr_train import Settings

FAST = Settings(epochs=1, steps_per_epoch=8, itq_iters=3, progress=False)


def _baseline(x: np.ndarray, metric: str, bits: int, dim_out: int | None = None) -> BEBRQuantizer:
    q = BEBRQuantizer(x.shape[1], metric, bits=bits, dim_out=dim_out, learned=False, seed=3)
    q.train(x)
    return q


@pytest.mark.parametrize("bits", [1, 3])
def test_asym_ip_equals_minus_dot_with_decoded(blobs: np.ndarray, bits: int) -> None:
    # The baseline is linear and uncentred, so the asymmetric estimate is exactly -<q, decode(code)>.
    q = _baseline(blobs, "ip", bits, dim_out=40)
    codes = q.encode(blobs)
    query = blobs[3] * 0.5 + 0.1
    got = q.distances(q.prepare(query, "asym"), codes)
    np.testing.assert_allclose(got, reference.distances(query, q.decode(codes), "ip"), rtol=1e-4, atol=1e-3)


def test_sdc_ip_equals_minus_dot_of_decoded_codes(blobs: np.ndarray) -> None:
    q = _baseline(blobs, "ip", 2)  # dim_out == dim: the map is orthogonal, so SDC is code-to-code exact
    codes = q.encode(blobs)
    query = blobs[8]
    got = q.distances(q.prepare(query, "sdc"), codes)
    want = -(q.decode(codes) @ q.decode(q.encode(query[None, :]))[0])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_l2_uses_exact_norms(blobs: np.ndarray) -> None:
    q = _baseline(blobs, "l2", 2)
    codes = q.encode(blobs)
    query = blobs[5] + 0.2
    got = q.distances(q.prepare(query, "asym"), codes)
    decoded = q.decode(codes)
    want = (query @ query) + (blobs * blobs).sum(1) - 2.0 * (decoded @ query)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("mode", ["sdc", "asym"])
def test_estimates_converge_with_bits(blobs: np.ndarray, metric: str, mode: str) -> None:
    true = reference.distances(blobs[0], blobs[:500], metric)
    errors = []
    for bits in (1, 4, 8):
        q = _baseline(blobs, metric, bits)
        est = q.distances(q.prepare(blobs[0], mode), q.encode(blobs[:500]))
        errors.append(float(np.abs(est - true).mean() / np.abs(true).mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


def test_round_trip_error_shrinks_with_bits(blobs: np.ndarray) -> None:
    rel = []
    for bits in (1, 2, 4, 8):
        q = _baseline(blobs, "l2", bits)
        err = np.linalg.norm(q.decode(q.encode(blobs)) - blobs, axis=1) / np.linalg.norm(blobs, axis=1)
        rel.append(float(err.mean()))
    assert rel == sorted(rel, reverse=True)
    assert rel[2] < 0.15 and rel[3] < 0.02


def test_code_layout_and_size(blobs: np.ndarray) -> None:
    q = _baseline(blobs, "cosine", 3, dim_out=100)
    codes = q.encode(blobs[:10])
    assert q.code_size == (3 * 2 + 1) * 8 and codes.shape == (10, q.code_size) and codes.dtype == np.uint8
    lay = q.scan_layout(codes)
    m = 3 * 25  # three planes of 100 bits: 25 nibble sub-quantizers each
    assert lay.packed.shape == (1, m, 16) and lay.a.shape == lay.b.shape == (10,)
    np.testing.assert_array_equal(q.distances_at(q.prepare(blobs[0]), codes, np.array([4, 1])),
                                  q.distances(q.prepare(blobs[0]), codes)[[4, 1]])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("mode", ["sdc", "asym"])
def test_fast_scan_matches_exact_kernels_within_table_rounding(blobs: np.ndarray, metric: str, mode: str) -> None:
    """``scan`` (uint8 fast-scan tables) estimates what ``distances`` (exact kernels) computes: each of
    the m table entries is off by at most scan_scale / 2, and the ranking barely moves."""
    q = _baseline(blobs, metric, 4, dim_out=128)
    codes = q.encode(blobs)
    lay = q.scan_layout(codes)
    m = 4 * 32
    _, a, _ = q._split(codes)
    for query in blobs[:5] + 0.01:
        prepared = q.prepare(query, mode)
        fast, exact = q.scan(prepared, lay), q.distances(prepared, codes)
        bound = prepared.scale * np.abs(a) * (m * prepared.scan_scale / 2) + 1e-3 * (1 + np.abs(exact))
        assert np.all(np.abs(fast - exact) <= bound)
        top = np.argsort(exact, kind="stable")[:20]
        assert len(np.intersect1d(top, np.argsort(fast, kind="stable")[:40])) >= 19


def _recall_at_10(q: BEBRQuantizer, base: np.ndarray, queries: np.ndarray, metric: str) -> float:
    codes = q.encode(base)
    lay = q.scan_layout(codes)
    hits = 0
    for query in queries:
        truth = np.argsort(reference.distances(query, base, metric), kind="stable")[:10]
        est = np.argsort(q.scan(q.prepare(query, "sdc"), lay), kind="stable")[:10]
        hits += len(np.intersect1d(truth, est))
    return hits / (10 * len(queries))


def test_learned_beats_baseline_on_clustered_data() -> None:
    # Embedding-like data: clusters around a strong common direction, compared by cosine.
    x = clustered(4000, 32, 40, seed=7, spread=0.5) + 4.0
    base, queries = x[:3500], x[3500:3600]
    learned = BEBRQuantizer(32, "cosine", bits=1, learned=True, seed=0, settings=FAST)
    learned.train(base)
    plain = BEBRQuantizer(32, "cosine", bits=1, learned=False, seed=0)
    plain.train(base)
    assert _recall_at_10(learned, base, queries, "cosine") > _recall_at_10(plain, base, queries, "cosine") + 0.05
    assert {"random", "rotation"} <= set(learned.report)


def test_determinism_and_persistence(blobs: np.ndarray) -> None:
    a = BEBRQuantizer(32, "l2", bits=2, seed=11, settings=FAST)
    b = BEBRQuantizer(32, "l2", bits=2, seed=11, settings=FAST)
    a.train(blobs[:1200])  # >= 1000 rows: every stage, the MLP fine-tune included, runs
    b.train(blobs[:1200])
    codes = a.encode(blobs)
    np.testing.assert_array_equal(codes, b.encode(blobs))
    meta, arrays = a.to_arrays()
    c = BEBRQuantizer.from_arrays(meta, arrays)
    np.testing.assert_array_equal(c.encode(blobs), codes)
    for mode in ("sdc", "asym"):
        np.testing.assert_array_equal(c.distances(c.prepare(blobs[2], mode), codes),
                                      a.distances(a.prepare(blobs[2], mode), codes))
    assert a.nbytes > 0 and meta["report"] == a.report and "mlp_epoch0" in a.report


def test_stage_checks_use_rows_beyond_the_training_sample(blobs: np.ndarray, monkeypatch) -> None:
    # With more rows than train_rows, the checks that keep or drop each learned stage score held-out
    # queries against a base drawn from the other rows (larger than a split of the sample could be).
    assert bebr_train.validation_size(100_000, 20_000) == 25_500
    assert bebr_train.validation_size(21_500, 20_000) == 1_500
    assert bebr_train.validation_size(20_900, 20_000) == 0  # too few spare rows: split the sample
    seen = []
    make = bebr_train._Validation.make

    def spy(queries, base):
        seen.append((len(queries), len(base)))
        return make(queries, base)

    monkeypatch.setattr(bebr_train._Validation, "make", staticmethod(spy))
    x = np.concatenate([blobs, blobs + 0.01]).astype(np.float32)  # 2 x len(blobs) rows
    q = BEBRQuantizer(32, "l2", bits=2, seed=5, train_rows=1200, settings=FAST)
    q.train(x)
    spare = len(x) - 1200
    assert seen == [(500, spare - 500)]
    again = BEBRQuantizer(32, "l2", bits=2, seed=5, train_rows=1200, settings=FAST)
    again.train(x)
    np.testing.assert_array_equal(q.encode(blobs), again.encode(blobs))
    assert "mlp_epoch0" in q.report


@pytest.mark.parametrize("learned", [False, True])
def test_degenerate_data(learned: bool) -> None:
    const = np.full((50, 6), 2.0, dtype=np.float32)
    q = BEBRQuantizer(6, "l2", bits=2, learned=learned, settings=FAST)
    q.train(const)
    codes = q.encode(const)
    # Asymmetric estimates are exact for identical vectors (gamma undoes the code's shrinkage).
    np.testing.assert_allclose(q.distances(q.prepare(const[0], "asym"), codes), 0.0, atol=1e-3)
    assert np.isfinite(q.distances(q.prepare(const[0], "sdc"), codes)).all()
    one = BEBRQuantizer(1, "cosine", bits=3, learned=learned, settings=FAST)
    one.train(np.array([[1.0], [-2.0], [3.0]], np.float32))
    est = one.distances(one.prepare(np.array([5.0], np.float32), "asym"), one.encode(np.array([[2.0], [-1.0]],
                                                                                             np.float32)))
    assert est[0] < est[1] and np.isfinite(est).all()
    single = BEBRQuantizer(4, "ip", bits=1, learned=learned, settings=FAST)
    single.train(np.ones((1, 4), np.float32))
    assert single.encode(np.zeros((2, 4), np.float32)).shape == (2, single.code_size)


def test_errors_are_clear(blobs: np.ndarray) -> None:
    with pytest.raises(ValueError, match="bits"):
        BEBRQuantizer(8, "l2", bits=9)
    with pytest.raises(ValueError, match="mode"):
        BEBRQuantizer(8, "l2", mode="hamming")
    q = BEBRQuantizer(32, "l2", bits=1, learned=False)
    with pytest.raises(ValueError, match="not trained"):
        q.encode(blobs[:1])
    with pytest.raises(ValueError, match="at least one row"):
        q.train(blobs[:0])
    with pytest.raises(ValueError, match="NaN"):
        q.train(np.full((3, 32), np.nan, np.float32))
    q.train(blobs)
    with pytest.raises(ValueError, match="uint8 codes"):
        q.distances(q.prepare(blobs[0]), np.zeros((2, 3), np.uint8))
