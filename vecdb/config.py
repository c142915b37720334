"""Index and quantization configurations: small dataclasses that carry their cost model.

They are plain data, serialisable with ``to_dict``/``config_from_dict`` so the catalog, the wire
protocol and the bench all speak about an index the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flat:
    """Exact search: every query scans every row (or its compressed code, then re-ranks).

    Cost: no build, no memory beyond the vectors; a query reads n * d * 4 bytes.
    """

    kind = "flat"


@dataclass(frozen=True)
class HNSW:
    """Hierarchical navigable small-world graph, one per sealed segment.

    m: links per node on upper layers (2*m on layer 0); memory ~ n * 2*m * 4 bytes on top of the vectors.
    ef_construction: beam width while building; build time grows about linearly with it.
    Query knob: params={"ef": 64} (beam width, >= k), and "rerank" when quantized.
    """

    m: int = 16
    ef_construction: int = 200
    kind = "hnsw"

    def __post_init__(self) -> None:
        if not 2 <= self.m <= 256:
            raise ValueError(f"HNSW m must be in 2..256, got {self.m}")
        if self.ef_construction < self.m:
            raise ValueError(f"HNSW ef_construction must be >= m, got {self.ef_construction}")


@dataclass(frozen=True)
class IVF:
    """Inverted file: k-means centroids in memory, posting lists of row offsets or codes.

    nlist: number of lists (None = about 4 * sqrt(n)). Query knob: params={"nprobe": 16}.
    """

    nlist: int | None = None
    kind = "ivf"


@dataclass(frozen=True)
class SPANN:
    """Memory-disk hybrid: centroids in memory, balanced posting lists on disk (SPANN paper).

    replicas: a boundary vector goes to at most this many lists (RNG-pruned), closure_eps: the
    (1+eps) distance ratio for replication. rng_factor: a replica list c is pruned when a list the
    row already joined has its centroid within rng_factor x d(row, c) of c's (1.0 is the paper's
    RNG rule, which in a few hundred dimensions prunes nearly every replica; 0.5 keeps the
    boundary rows: docs/spann.md). memory_budget_mb: refuse to build above it.
    The defaults are the settings measured in docs/spann.md (about 2 copies per row on GloVe, 1.6
    on 384-d npm embeddings).
    Query knobs: params={"nprobe", "eps", "max_lists", "max_bytes", "prefetch", "rerank"}.
    """

    target_list_size: int = 128
    replicas: int = 8
    closure_eps: float = 1.0
    memory_budget_mb: float | None = None
    rng_factor: float = 0.5
    kind = "spann"


@dataclass(frozen=True)
class SQ:
    """Scalar quantization: per-dimension ranges, 8-bit codes (bits=8) or fp16 (bits=16).

    Cost: d bytes (8-bit) or 2d bytes (fp16) per vector.
    """

    bits: int = 8
    kind = "sq"

    def __post_init__(self) -> None:
        if self.bits not in (8, 16):
            raise ValueError(f"SQ bits must be 8 or 16, got {self.bits}")


@dataclass(frozen=True)
class PQ:
    """Product quantization: m sub-spaces, 2**bits centroids each (bits 8, or 4 for fast-scan).

    Cost: m * bits / 8 bytes per vector; training k-means on a sample.
    """

    m: int = 16
    bits: int = 8
    opq: bool = False
    kind = "pq"

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise ValueError(f"PQ bits must be 4 or 8, got {self.bits}")
        if self.m < 1:
            raise ValueError(f"PQ m must be >= 1, got {self.m}")


@dataclass(frozen=True)
class BEBR:
    """BEBR multi-bit binary codes: u = bits binary vectors per embedding, recurrent residual binarization.

    Cost: dim_out * bits / 8 bytes per vector (dim_out defaults to the input dimension).
    learned=False uses a random-rotation baseline with the same bit budget.
    """

    bits: int = 4
    dim_out: int | None = None
    learned: bool = True
    seed: int = 0
    kind = "bebr"

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 8:
            raise ValueError(f"BEBR bits must be in 1..8, got {self.bits}")


IndexConfig = Flat | HNSW | IVF | SPANN
QuantizationConfig = SQ | PQ | BEBR

_CLASSES: dict[str, type] = {c.kind: c for c in (Flat, HNSW, IVF, SPANN, SQ, PQ, BEBR)}


def config_to_dict(config: Any) -> dict[str, Any] | None:
    """``{"kind": ..., **fields}`` for a config dataclass (None stays None)."""
    if config is None:
        return None
    return {"kind": config.kind, **dataclasses.asdict(config)}


def config_from_dict(data: dict[str, Any] | None) -> Any:
    """Inverse of ``config_to_dict``; raises ``ValueError`` on an unknown kind or field."""
    if data is None:
        return None
    fields = dict(data)
    kind = fields.pop("kind", None)
    cls = _CLASSES.get(kind)
    if cls is None:
        raise ValueError(f"unknown index/quantization kind {kind!r}: expected one of {sorted(_CLASSES)}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"bad {kind} configuration {data}: {exc}") from None
