"""Seeded synthetic data for the quantizer tests."""

from __future__ import annotations

import numpy as np


def clustered(n: int, d: int, clusters: int, seed: int, spread: float = 0.3) -> np.ndarray:
    """(n, d) float32 points around ``clusters`` random centres: neighbours are well defined."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    return (centres[labels] + spread * rng.standard_normal((n, d))).astype(np.float32)
