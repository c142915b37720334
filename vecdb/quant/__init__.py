"""Compression: scalar (SQ8 / fp16), product quantization (PQ, OPQ, 4-bit fast-scan), BEBR binary codes,
and compatibility maps that let a new embedding model search an old model's codes."""

from vecdb.quant.base import Quantizer
from vecdb.quant.bebr import BEBRQuantizer
from vecdb.quant.compat import CompatibilityMap, CompatibleQuantizer, fit_compatibility
from vecdb.quant.factory import make_quantizer, quantizer_from_arrays
from vecdb.quant.pq import ProductQuantizer
from vecdb.quant.rerank import rerank
from vecdb.quant.scalar import ScalarQuantizer

__all__ = [
    "BEBRQuantizer", "CompatibilityMap", "CompatibleQuantizer", "ProductQuantizer", "Quantizer",
    "ScalarQuantizer", "fit_compatibility", "make_quantizer", "quantizer_from_arrays", "rerank",
]
