"""kmeans / assign: seeded determinism, fallbacks and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.quant.kmeans import assign, kmeans


def test_seeded_and_assign_matches_brute_force(blobs: np.ndarray) -> None:
    a = kmeans(blobs, 16, niter=5, seed=3)
    np.testing.assert_array_equal(a, kmeans(blobs, 16, niter=5, seed=3))
    dist = ((blobs[:, None, :] - a[None, :, :]) ** 2).sum(2)
    np.testing.assert_array_equal(assign(blobs, a), dist.argmin(1))


def test_fewer_distinct_rows_than_centroids() -> None:
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]], np.float32)
    c = kmeans(x, 8)
    assert c.shape == (8, 2)
    np.testing.assert_array_equal(c[assign(x, c)], x)  # every row is a centroid: exact codes


def test_errors() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        kmeans(np.zeros((0, 3), np.float32), 4)
    with pytest.raises(ValueError, match="k >= 1"):
        kmeans(np.ones((3, 3), np.float32), 0)
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.full((3, 3), np.inf, np.float32), 2)
