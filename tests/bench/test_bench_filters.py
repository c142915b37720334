"""Filtered runs: masks from filter strings and exact ground truth over the kept rows."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.bench.datasets import Dataset, ground_truth
from vecdb.bench.filters import add_selectivity_column, filter_mask, filtered_ground_truth


def test_filter_mask_uses_vecdb_filter_syntax() -> None:
    attrs = {"rank": np.arange(6), "lang": np.array(["en", "de", "en", "en", "fr", "en"])}
    assert filter_mask("rank < 4 AND lang = 'en'", attrs, 6).tolist() == [True, False, True, True, False, False]
    assert filter_mask("lang IN ('de', 'fr')", attrs, 6).tolist() == [False, True, False, False, True, False]
    with pytest.raises(ValueError, match="no attribute columns"):
        filter_mask("rank < 1", {}, 6)


def test_filtered_ground_truth_only_returns_kept_rows(tiny: Dataset) -> None:
    ds, expr = add_selectivity_column(tiny, 0.1, seed=5)
    mask = filter_mask(expr, ds.attributes, len(ds.train))
    assert 0.07 < mask.mean() < 0.13
    gt = filtered_ground_truth(ds, mask)
    assert mask[gt.neighbors].all()
    rows = np.flatnonzero(mask)
    _, dist = ground_truth(ds.train[rows], ds.test, ds.metric, 10)
    np.testing.assert_allclose(gt.distances[:, :10], dist)
    with pytest.raises(ValueError, match="keeps no rows"):
        filtered_ground_truth(ds, np.zeros(len(ds.train), dtype=bool))
    with pytest.raises(ValueError, match="selectivity"):
        add_selectivity_column(tiny, 0.0)
