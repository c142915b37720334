"""Every numeric inner loop of vecdb, behind one import.

Callers use ``from vecdb import kernels`` and the functions named in ``kernels.reference`` (the
contract). Until the dispatching backends land these are the numpy references themselves.
"""

from vecdb.kernels.reference import (
    bitplane_ip_asym,
    bitplane_ip_sym,
    bitplane_lut,
    distances,
    distances_at,
    distances_f16,
    distances_many,
    distances_sq8,
    hamming,
    merge_topk,
    pack_bits,
    pq4_fastscan,
    pq4_pack,
    pq_adc,
    quantize_lut,
    topk,
)

__all__ = [
    "bitplane_ip_asym",
    "bitplane_ip_sym",
    "bitplane_lut",
    "distances",
    "distances_at",
    "distances_f16",
    "distances_many",
    "distances_sq8",
    "hamming",
    "merge_topk",
    "pack_bits",
    "pq4_fastscan",
    "pq4_pack",
    "pq_adc",
    "quantize_lut",
    "topk",
]
