"""Compatibility maps between embedding versions and the quantizer view that uses them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.quant.data import clustered
from vecdb.quant import BEBRQuantizer, ScalarQuantizer, quantizer_from_arrays
from vecdb.quant.compat import CompatibilityMap, CompatibleQuantizer, CompatSettings, fit_compatibility

QUICK = CompatSettings(mlp=False, progress=False)


def two_versions(n: int = 4000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(new (n, 48), old (n, 24)): the new model sees the old vectors through a random linear map, a
    mild nonlinearity and noise, as an upgraded model would see the same items."""
    rng = np.random.default_rng(seed)
    old = clustered(n, 24, 40, seed=seed)
    mix = rng.standard_normal((24, 48)).astype(np.float32) / np.sqrt(24)
    new = np.tanh(old @ mix) + 0.02 * rng.standard_normal((n, 48))
    return new.astype(np.float32), old


def top10(queries: np.ndarray, base: np.ndarray) -> np.ndarray:
    d = (base * base).sum(1)[None, :] - 2.0 * queries @ base.T
    return np.argsort(d, axis=1, kind="stable")[:, :10]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True)])) / 10.0


def test_map_recovers_old_neighbours_of_new_queries() -> None:
    new, old = two_versions()
    mapping, report = fit_compatibility(new[:3000], old[:3000], "l2", settings=QUICK)
    mapped = mapping.apply(new[3000:3200])
    truth = top10(old[3000:3200], old[:3000])
    assert recall(top10(mapped, old[:3000]), truth) > 0.5
    # The identity-free baseline: an unrelated query set finds almost none of those neighbours.
    assert recall(top10(old[3200:3400], old[:3000]), truth) < 0.05
    rel = np.linalg.norm(mapped - old[3000:3200], axis=1) / np.linalg.norm(old[3000:3200], axis=1)
    assert np.median(rel) < 0.3
    assert any(k.startswith("ridge_") for k in report)


def test_linear_relation_is_recovered_almost_exactly() -> None:
    rng = np.random.default_rng(0)
    old = rng.standard_normal((3000, 16)).astype(np.float32)
    new = (old @ rng.standard_normal((16, 32)) + 5.0).astype(np.float32)
    mapping, _ = fit_compatibility(new, old, "l2", settings=QUICK)
    np.testing.assert_allclose(mapping.apply(new[:50]), old[:50], atol=2e-2)


def test_mlp_stage_is_reported_deterministic_and_never_worse() -> None:
    new, old = two_versions(2500)
    settings = CompatSettings(steps=40, batch=32, anchors=500, hidden=32, progress=False)
    a, report = fit_compatibility(new, old, "l2", seed=4, settings=settings)
    b, _ = fit_compatibility(new, old, "l2", seed=4, settings=settings)
    np.testing.assert_array_equal(a.apply(new[:20]), b.apply(new[:20]))
    mlp = [v for k, v in report.items() if k.startswith("mlp_step")]
    ridge = max(v for k, v in report.items() if k.startswith("ridge_"))
    assert len(mlp) == 4
    assert all(0.0 <= v <= 1.0 for v in mlp) and ridge > 0.3


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_inner_product_metrics(metric: str) -> None:
    new, old = two_versions()
    mapping, report = fit_compatibility(new, old, metric, new_unit=True, settings=QUICK)
    assert max(report.values()) > 0.3
    assert mapping.new_unit and mapping.apply(new[:5]).shape == (5, 24)


def test_compatible_quantizer_puts_both_versions_in_one_code_matrix() -> None:
    new, old = two_versions()
    old_q = ScalarQuantizer(24, "l2", bits=8)
    old_q.train(old[:3000])
    mapping, _ = fit_compatibility(new[:3000], old[:3000], "l2", settings=QUICK)
    view = CompatibleQuantizer(old_q, mapping)
    assert view.dim == 48 and view.code_size == old_q.code_size
    # Half the items keep their old codes, half were re-embedded by the new model: one matrix.
    codes = np.concatenate([old_q.encode(old[:1500]), view.encode(new[1500:3000])])
    queries, truth = new[3000:3200], top10(old[3000:3200], old[:3000])
    found = np.stack([np.argsort(view.distances(view.prepare(q), codes), kind="stable")[:10] for q in queries])
    assert recall(found, truth) > 0.4
    # Old queries still work on the same codes through the old quantizer.
    found_old = np.stack([np.argsort(old_q.distances(old_q.prepare(q), codes), kind="stable")[:10]
                          for q in old[3000:3100]])
    assert recall(found_old, truth[:100]) > 0.6


def test_persistence_round_trip() -> None:
    new, old = two_versions(2000)
    old_q = BEBRQuantizer(24, "l2", bits=2, learned=False)
    old_q.train(old)
    mapping, _ = fit_compatibility(new, old, "l2", settings=QUICK)
    view = CompatibleQuantizer(old_q, mapping)
    meta, arrays = view.to_arrays()
    again = quantizer_from_arrays(meta, arrays)
    assert isinstance(again, CompatibleQuantizer)
    np.testing.assert_array_equal(again.encode(new[:30]), view.encode(new[:30]))
    prepared = again.prepare(new[0], "asym")
    np.testing.assert_array_equal(again.distances(prepared, view.encode(new[:30])),
                                  view.distances(view.prepare(new[0], "asym"), view.encode(new[:30])))
    restored = CompatibilityMap.from_arrays(*mapping.to_arrays())
    np.testing.assert_array_equal(restored.apply(new[:5]), mapping.apply(new[:5]))


def test_errors_are_clear() -> None:
    new, old = two_versions(1000)
    with pytest.raises(ValueError, match="paired"):
        fit_compatibility(new[:900], old, "l2", settings=QUICK)
    with pytest.raises(ValueError, match="at least 96 paired rows"):
        fit_compatibility(new[:50], old[:50], "l2", settings=QUICK)
    bad = new.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_compatibility(bad, old, "l2", settings=QUICK)
    with pytest.raises(ValueError, match="metric"):
        fit_compatibility(new, old, "hamming", settings=QUICK)
    mapping, _ = fit_compatibility(new, old, "l2", settings=QUICK)
    with pytest.raises(ValueError, match=r"\(n, 48\)"):
        mapping.apply(old)
    other = ScalarQuantizer(16, "l2")
    with pytest.raises(ValueError, match="outputs 24 dims"):
        CompatibleQuantizer(other, mapping)
    q = ScalarQuantizer(24, "l2")
    q.train(old)
    with pytest.raises(ValueError, match="old version's model"):
        CompatibleQuantizer(q, mapping).train(new)
