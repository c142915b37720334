"""Compression: scalar (SQ8 / fp16), product quantization (PQ, OPQ, 4-bit fast-scan), BEBR binary codes."""

from vecdb.quant.base import Quantizer
from vecdb.quant.bebr import BEBRQuantizer
from vecdb.quant.factory import make_quantizer, quantizer_from_arrays
from vecdb.quant.pq import ProductQuantizer
from vecdb.quant.rerank import rerank
from vecdb.quant.scalar import ScalarQuantizer

__all__ = [
    "BEBRQuantizer", "ProductQuantizer", "Quantizer", "ScalarQuantizer", "make_quantizer",
    "quantizer_from_arrays", "rerank",
]
