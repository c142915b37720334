"""make_quantizer / quantizer_from_arrays dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb.config import BEBR, PQ, SQ
from vecdb.quant.bebr import BEBRQuantizer
from vecdb.quant.factory import make_quantizer, quantizer_from_arrays
from vecdb.quant.pq import ProductQuantizer
from vecdb.quant.scalar import ScalarQuantizer


@pytest.mark.parametrize(
    ("config", "cls", "size"),
    [
        (SQ(), ScalarQuantizer, 32), (SQ(bits=16), ScalarQuantizer, 64), (PQ(m=8, bits=4), ProductQuantizer, 4),
        (BEBR(bits=2, learned=False), BEBRQuantizer, 24),
    ],
)
def test_make_train_restore(blobs: np.ndarray, config: object, cls: type, size: int) -> None:
    q = make_quantizer(config, blobs.shape[1], "l2")  # type: ignore[arg-type]
    assert isinstance(q, cls)
    assert q.is_trained == (config == SQ(bits=16))  # fp16 has nothing to learn
    q.train(blobs[:1000])
    assert q.is_trained and q.code_size == size
    meta, arrays = q.to_arrays()
    again = quantizer_from_arrays(meta, arrays)
    assert type(again) is cls
    np.testing.assert_array_equal(again.encode(blobs[:50]), q.encode(blobs[:50]))


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        make_quantizer(PQ(m=64), 32, "l2")
    with pytest.raises(ValueError, match="not a quantization"):
        make_quantizer("sq", 32, "l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown quantizer kind"):
        quantizer_from_arrays({"kind": "zip"}, {})
