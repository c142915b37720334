"""Small seeded data sets shared by the quantizer tests (tests never read the benchmark files)."""

from __future__ import annotations

import numpy as np
import pytest


def clustered(n: int, d: int, clusters: int, seed: int, spread: float = 0.3) -> np.ndarray:
    """(n, d) float32 points around ``clusters`` random centres: neighbours are well defined."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    return (centres[labels] + spread * rng.standard_normal((n, d))).astype(np.float32)


@pytest.fixture(scope="session")
def blobs() -> np.ndarray:
    """(3000, 32) float32 clustered points."""
    return clustered(3000, 32, 30, seed=1)
