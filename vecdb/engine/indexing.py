"""Per-segment index files and the collection's trained quantizer: build, persist, load, rebuild.

Per segment: the vector index (``<kind>.idx``), the attribute indexes (``attrs.idx``) and, for a
multi-tenant collection, the tenant index (``tenants.idx``).

Index files and the quantizer are derived data. A missing, corrupt or mismatched file is never
trusted: it is rebuilt (the quantizer retrained on a sample of the collection), and the segment is
searched exactly in the meantime.
"""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from vecdb.config import config_to_dict
from vecdb.engine.tenancy import TENANTS_COLUMN, tenant_csr
from vecdb.errors import DataLoss, FailedPrecondition
from vecdb.filter.attrindex import AttributeIndex
from vecdb.storage.arrayfile import read_array_file, write_array_file
from vecdb.storage.crashpoints import crash_point

if TYPE_CHECKING:
    from pathlib import Path

    from vecdb.engine.collection import Collection
    from vecdb.engine.segments import SealedSegment
    from vecdb.engine.store import CollectionStore

log = logging.getLogger("vecdb.engine")

# index kind -> "module:Class"; imported on first use so a collection pays only for what it uses.
INDEX_CLASSES = {
    "qflat": "vecdb.index.qflat:QuantizedFlatIndex",
    "hnsw": "vecdb.index.hnsw:HNSWIndex",
    "ivf": "vecdb.index.ivf:IVFIndex",
    "spann": "vecdb.index.spann:SPANNIndex",
    "tenant": "vecdb.index.tenant:TenantIndex",  # per-segment, next to the vector index (multi-tenant)
}
# Rows sampled from the collection to train a quantizer.
TRAIN_SAMPLE = 100_000
# Build knobs of the per-segment tenant index (vecdb.index.tenant.DEFAULTS; docs/tenants.md).
TENANT_INDEX_CONFIG: dict[str, int] = {"branching": 16, "leaf_size": 128, "exact_threshold": 1024,
                                       "graph_min_rows": 1024, "graph_budget_pct": 75}


def index_class(kind: str) -> Any:
    """The VectorIndex class for ``kind``; FailedPrecondition when this build lacks it."""
    target = INDEX_CLASSES.get(kind)
    if target is None:
        raise FailedPrecondition(f"no index implementation for kind {kind!r}")
    module_name, _, cls_name = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise FailedPrecondition(f"index kind {kind!r} is not available in this build: {exc}") from None


class IndexBuilder:
    """Builds and loads the index of each sealed segment of one collection, and its quantizer."""

    def __init__(self, collection: Collection, store: CollectionStore) -> None:
        self.col = collection
        self.store = store
        self.quantizer: Any = None
        self.quantizer_id: str | None = None
        self._train_lock = threading.Lock()
        if collection.quantization is not None:
            self._load_quantizer()

    @property
    def kind(self) -> str:
        if self.col.index.kind == "flat":
            return "qflat" if self.col.quantization is not None else "flat"
        return self.col.index.kind

    def wanted(self, seg: SealedSegment) -> bool:
        return self.kind != "flat" and seg.num_rows >= self.store.options.index_min_rows

    def _ready(self) -> bool:
        """Quantized indexes wait for a trained quantizer (``optimize()`` trains it)."""
        return self.col.quantization is None or self.quantizer is not None

    # ------------------------------------------------------------------ quantizer

    @property
    def _quantizer_path(self) -> Path:
        return self.store.layout.collection_dir(self.col.name) / "quantizer.arrays"

    def _load_quantizer(self) -> None:
        from vecdb.quant.factory import quantizer_from_arrays

        path = self._quantizer_path
        if not path.exists():
            return
        try:
            meta, arrays = read_array_file(path, mmap=False)
            if meta.get("config") != config_to_dict(self.col.quantization):
                raise ValueError("trained for another quantization config")
            self.quantizer = quantizer_from_arrays(meta["quantizer"], arrays)
            self.quantizer_id = meta["id"]
        except (DataLoss, ValueError, KeyError) as exc:
            log.warning("quantizer %s is not usable (%s); it will be retrained", path, exc)

    def ensure_quantizer(self, segments: list[SealedSegment]) -> None:
        """Train (once) on a sample of the live rows of ``segments`` and persist the model."""
        if self.col.quantization is None or self.quantizer is not None:
            return
        from vecdb.quant.factory import make_quantizer

        with self._train_lock:
            if self.quantizer is not None:
                return
            sample = _sample_live(segments, TRAIN_SAMPLE)
            if sample.shape[0] == 0:
                return
            quantizer = make_quantizer(self.col.quantization, self.col.dim, self.col.metric)
            quantizer.train(sample)
            meta, arrays = quantizer.to_arrays()
            qid = uuid.uuid4().hex
            write_array_file(self._quantizer_path,
                             {"id": qid, "config": config_to_dict(self.col.quantization), "quantizer": meta},
                             arrays, self.store.io)
            self.quantizer, self.quantizer_id = quantizer, qid

    # ------------------------------------------------------------------ per-segment indexes

    def _path(self, seg: SealedSegment) -> Path:
        return self.store.layout.sidecar_path(self.col.name, seg.seg_id, f"{self.kind}.idx")

    def _expected_meta(self, seg: SealedSegment) -> dict[str, Any]:
        return {"rows": seg.num_rows, "config": config_to_dict(self.col.index), "metric": self.col.metric,
                "segment_checksum": seg.checksum, "quantizer_id": self.quantizer_id}

    # ------------------------------------------------------------------ attribute indexes

    def _attributes_wanted(self, seg: SealedSegment) -> bool:
        return seg.num_rows >= self.store.options.index_min_rows and seg.table.num_columns > 2

    def _attributes_path(self, seg: SealedSegment) -> Path:
        return self.store.layout.sidecar_path(self.col.name, seg.seg_id, "attrs.idx")

    def _load_attributes(self, seg: SealedSegment) -> bool:
        if seg.attr_index is not None or not self._attributes_wanted(seg):
            return True
        path = self._attributes_path(seg)
        if not path.exists():
            return False
        try:
            meta, arrays = read_array_file(path)
            if meta.get("segment_checksum") != seg.checksum or meta.get("rows") != seg.num_rows:
                raise ValueError("built for another segment")
            seg.attr_index = AttributeIndex.from_arrays(meta["index"], arrays)
        except (DataLoss, ValueError, KeyError) as exc:
            log.warning("attribute index %s is not usable (%s); rebuilding it", path, exc)
            return False
        seg.__dict__.pop("_filter_cache", None)
        return True

    def _build_attributes(self, seg: SealedSegment) -> None:
        """Bitmaps / sorted value groups per attribute, so a filter mask costs far less than a search."""
        if seg.attr_index is not None or not self._attributes_wanted(seg):
            return
        index = AttributeIndex.build(seg.table)
        meta, arrays = index.to_arrays()
        write_array_file(self._attributes_path(seg),
                         {"segment_checksum": seg.checksum, "rows": seg.num_rows, "index": meta}, arrays,
                         self.store.io)
        seg.attr_index = index
        seg.__dict__.pop("_filter_cache", None)  # masks computed without the index stay equal, but drop them

    # ------------------------------------------------------------------ tenant index

    def _tenants_wanted(self, seg: SealedSegment) -> bool:
        """Multi-tenant collections with an ANN index get a tenant index per indexed segment (a flat
        collection promises exact answers: it keeps the exact scan of the tenant's filter)."""
        return self.col.multi_tenant and self.wanted(seg)

    def _tenants_path(self, seg: SealedSegment) -> Path:
        return self.store.layout.sidecar_path(self.col.name, seg.seg_id, "tenants.idx")

    def _tenants_meta(self, seg: SealedSegment) -> dict[str, Any]:
        return {"segment_checksum": seg.checksum, "rows": seg.num_rows, "metric": self.col.metric,
                "config": dict(TENANT_INDEX_CONFIG)}

    def _load_tenants(self, seg: SealedSegment) -> bool:
        if seg.tenant_index is not None or not self._tenants_wanted(seg):
            return True
        path = self._tenants_path(seg)
        if not path.exists():
            return False
        try:
            meta, arrays = read_array_file(path)
            expected = self._tenants_meta(seg)
            if {key: meta.get(key) for key in expected} != expected:
                raise ValueError("built for another segment or configuration")
            seg.tenant_index = index_class("tenant").from_arrays(meta["index"], arrays, seg.vectors)
        except (DataLoss, ValueError, KeyError) as exc:
            log.warning("tenant index %s is not usable (%s); rebuilding it", path, exc)
            return False
        self.col._invalidate()
        return True

    def _build_tenants(self, seg: SealedSegment) -> None:
        """The shared k-means tree and one sub-tree per tenant, from the hidden ``tenants`` column."""
        if seg.tenant_index is not None or not self._tenants_wanted(seg):
            return
        csr = tenant_csr(seg.table.column(TENANTS_COLUMN))
        index = index_class("tenant").build(seg.vectors, self.col.metric, csr, TENANT_INDEX_CONFIG)
        meta, arrays = index.to_arrays()
        write_array_file(self._tenants_path(seg), {**self._tenants_meta(seg), "index": meta}, arrays,
                         self.store.io)
        seg.tenant_index = index
        self.col._invalidate()

    # ------------------------------------------------------------------ vector indexes

    def load(self, seg: SealedSegment) -> bool:
        """Attach the persisted indexes of ``seg`` if present and sound; False when one must be built
        (``build`` then builds only the missing ones: a sound sidecar is attached either way)."""
        attributes = self._load_attributes(seg)
        tenants = self._load_tenants(seg)
        return self._load_vectors(seg) and attributes and tenants

    def _load_vectors(self, seg: SealedSegment) -> bool:
        if not self.wanted(seg):
            return True
        path = self._path(seg)
        if not path.exists() or not self._ready():
            return False
        try:
            meta, arrays = read_array_file(path)
            expected = self._expected_meta(seg)
            if {key: meta.get(key) for key in expected} != expected:
                raise ValueError("built for another segment, configuration or quantizer")
            seg.index = index_class(self.kind).from_arrays(meta["index"], arrays, seg.vectors, self.quantizer)
        except (DataLoss, ValueError, KeyError) as exc:
            log.warning("index %s is not usable (%s); rebuilding it from its segment", path, exc)
            return False
        self.col._invalidate()
        return True

    def build(self, seg: SealedSegment) -> None:
        """Build, persist and attach the indexes of ``seg`` (no-op for flat or small segments)."""
        self._build_attributes(seg)
        self._build_tenants(seg)
        if not self.wanted(seg) or seg.index is not None or not self._ready():
            return
        index = index_class(self.kind).build(seg.vectors, self.col.metric, self.col.index,
                                             quantizer=self.quantizer, progress=seg.num_rows >= 100_000)
        meta, arrays = index.to_arrays()
        write_array_file(self._path(seg), {**self._expected_meta(seg), "index": meta}, arrays, self.store.io)
        crash_point("index_swap")
        if getattr(index, "serve_from_file", False):
            # A disk-resident index (SPANN) serves from the file just written, memory-mapped, so the
            # build's heap copy of its posting lists is released rather than kept until a reopen.
            meta, arrays = read_array_file(self._path(seg))
            index = index_class(self.kind).from_arrays(meta["index"], arrays, seg.vectors, self.quantizer)
        seg.index = index
        self.col._invalidate()


def _sample_live(segments: list[SealedSegment], limit: int) -> np.ndarray:
    """Up to ``limit`` live vectors drawn evenly (seeded) from ``segments``."""
    live = [(s, np.flatnonzero(~s.deleted)) for s in segments if s.num_live]
    total = sum(rows.size for _, rows in live)
    if total == 0:
        return np.zeros((0, 0), np.float32)
    rng = np.random.default_rng(0)
    parts = []
    for seg, rows in live:
        if total > limit:
            rows = np.sort(rng.choice(rows, size=max(1, rows.size * limit // total), replace=False))
        take = rows
        parts.append(np.asarray(seg.vectors[take], dtype=np.float32))
    return np.concatenate(parts)
