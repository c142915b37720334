"""Every numeric inner loop of vecdb, behind one import.

Callers use ``from vecdb import kernels`` and the functions named in ``kernels.reference`` (the
contract), with the same signatures; each call is validated once and served by the C module
when it is built, else by numba, else by the numpy reference (see ``kernels.dispatch`` for the
``VECDB_KERNELS`` / ``VECDB_SIMD`` knobs and ``info()`` for what is active). Code that runs inside
its own ``@njit`` loops calls the numba kernels directly: ``kernels.distance``, ``kernels.codes``,
``kernels.selection``.
"""

from vecdb.kernels.dispatch import (
    backend,
    distances,
    distances_at,
    distances_f16,
    distances_many,
    distances_sq8,
    function_pointers,
    info,
    merge_topk,
    reload,
    set_simd_level,
    topk,
    topk_at,
    topk_at_one,
)
from vecdb.kernels.dispatch_codes import (
    binarize,
    bitplane_fastscan_lut,
    bitplane_ip_asym,
    bitplane_ip_sym,
    fastscan_affine,
    hamming,
    pq4_fastscan,
    pq4_fastscan_topk,
    pq_adc,
    quantize_lut,
)
from vecdb.kernels.reference import (
    bitplane_decode,
    bitplane_fastscan_pack,
    bitplane_lut,
    decode_sq8,
    pack_bits,
    pq4_pack,
    pq4_unpack,
    unpack_bits,
)

__all__ = [
    "backend",
    "binarize",
    "bitplane_decode",
    "bitplane_fastscan_lut",
    "bitplane_fastscan_pack",
    "bitplane_ip_asym",
    "bitplane_ip_sym",
    "bitplane_lut",
    "decode_sq8",
    "distances",
    "distances_at",
    "distances_f16",
    "distances_many",
    "distances_sq8",
    "fastscan_affine",
    "function_pointers",
    "hamming",
    "info",
    "merge_topk",
    "pack_bits",
    "pq4_fastscan",
    "pq4_fastscan_topk",
    "pq4_pack",
    "pq4_unpack",
    "pq_adc",
    "quantize_lut",
    "reload",
    "set_simd_level",
    "topk",
    "topk_at",
    "topk_at_one",
    "unpack_bits",
]
