"""Small seeded data sets shared by the quantizer tests (tests never read the benchmark files)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.quant.data import clustered


@pytest.fixture(scope="session")
def blobs() -> np.ndarray:
    """(3000, 32) float32 clustered points."""
    return clustered(3000, 32, 30, seed=1)
