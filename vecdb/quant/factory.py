"""Build a quantizer from its configuration, or restore a trained one from persisted arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vecdb.config import BEBR, PQ, SQ, QuantizationConfig
from vecdb.quant.base import Quantizer
from vecdb.quant.bebr import BEBRQuantizer
from vecdb.quant.compat import CompatibleQuantizer
from vecdb.quant.pq import ProductQuantizer
from vecdb.quant.scalar import ScalarQuantizer

_BY_KIND: dict[str, type[Quantizer]] = {
    ScalarQuantizer.kind: ScalarQuantizer,
    ProductQuantizer.kind: ProductQuantizer,
    BEBRQuantizer.kind: BEBRQuantizer,
    CompatibleQuantizer.kind: CompatibleQuantizer,
}


def make_quantizer(config: QuantizationConfig, dim: int, metric: str) -> Quantizer:
    """An untrained quantizer for ``config`` (SQ | PQ | BEBR) over ``dim``-dimensional vectors."""
    if isinstance(config, SQ):
        return ScalarQuantizer(dim, metric, bits=config.bits)
    if isinstance(config, PQ):
        if config.m > dim:
            raise ValueError(f"PQ m={config.m} exceeds the vector dimension {dim}")
        return ProductQuantizer(dim, metric, m=config.m, bits=config.bits, opq=config.opq)
    if isinstance(config, BEBR):
        return BEBRQuantizer(dim, metric, bits=config.bits, dim_out=config.dim_out, learned=config.learned,
                             seed=config.seed)
    raise ValueError(f"not a quantization configuration: {config!r}")


def quantizer_from_arrays(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Quantizer:
    """Restore a trained quantizer from ``Quantizer.to_arrays`` output, dispatching on ``meta["kind"]``."""
    cls = _BY_KIND.get(str(meta.get("kind")))
    if cls is None:
        raise ValueError(f"unknown quantizer kind {meta.get('kind')!r}: expected one of {sorted(_BY_KIND)}")
    return cls.from_arrays(meta, arrays)
