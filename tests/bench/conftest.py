"""Small seeded datasets for the bench tests (never the shared real files)."""

from __future__ import annotations

import pytest

from vecdb.bench.datasets import Dataset, make_random


@pytest.fixture(scope="session")
def tiny() -> Dataset:
    """2,000 x 16 Gaussian blobs, 200 queries, exact ground truth."""
    return make_random(2_000, 16, 20, "euclidean", seed=3, name="tiny")


@pytest.fixture(scope="session")
def tiny_angular() -> Dataset:
    return make_random(1_500, 12, 15, "angular", seed=4, name="tiny-angular")

