"""Per-segment index files: build, persist (checksummed sidecar), load, and rebuild when untrusted.

Index files are derived data. A missing, corrupt or mismatched index is never trusted: it is
rebuilt from the segment, and the segment is searched exactly in the meantime.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from vecdb.config import config_to_dict
from vecdb.errors import DataLoss, FailedPrecondition
from vecdb.storage.arrayfile import read_array_file, write_array_file

if TYPE_CHECKING:
    from vecdb.engine.collection import Collection
    from vecdb.engine.segments import SealedSegment
    from vecdb.engine.store import CollectionStore

log = logging.getLogger("vecdb.engine")

# index kind -> "module:Class"; imported on first use so a collection pays only for what it uses.
INDEX_CLASSES = {
    "hnsw": "vecdb.index.hnsw:HNSWIndex",
    "ivf": "vecdb.index.ivf:IVFIndex",
    "spann": "vecdb.index.spann:SPANNIndex",
}


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
    """Builds and loads the index of each sealed segment of one collection."""

    def __init__(self, collection: Collection, store: CollectionStore) -> None:
        self.col = collection
        self.store = store

    @property
    def kind(self) -> str:
        return self.col.index.kind

    def wanted(self, seg: SealedSegment) -> bool:
        return self.kind != "flat" and seg.num_rows >= self.store.options.index_min_rows

    def _path(self, seg: SealedSegment) -> Any:
        return self.store.layout.sidecar_path(self.col.name, seg.seg_id, f"{self.kind}.idx")

    def _expected_meta(self, seg: SealedSegment) -> dict[str, Any]:
        return {"rows": seg.num_rows, "config": config_to_dict(self.col.index), "metric": self.col.metric,
                "segment_checksum": seg.checksum}

    def load(self, seg: SealedSegment) -> bool:
        """Attach the persisted index of ``seg`` if it is present and sound; False when it must be built."""
        if not self.wanted(seg):
            return True
        path = self._path(seg)
        if not path.exists():
            return False
        try:
            meta, arrays = read_array_file(path)
            expected = self._expected_meta(seg)
            if {key: meta.get(key) for key in expected} != expected:
                raise ValueError(f"index was built for another segment or configuration: {meta}")
            seg.index = index_class(self.kind).from_arrays(meta["index"], arrays, seg.vectors)
        except (DataLoss, ValueError, KeyError) as exc:
            log.warning("index %s is not usable (%s); rebuilding it from its segment", path, exc)
            return False
        self.col._invalidate()
        return True

    def build(self, seg: SealedSegment) -> None:
        """Build, persist and attach the index of ``seg`` (no-op for flat or small segments)."""
        if not self.wanted(seg) or seg.index is not None:
            return
        index = index_class(self.kind).build(seg.vectors, self.col.metric, self.col.index,
                                             progress=seg.num_rows >= 100_000)
        meta, arrays = index.to_arrays()
        write_array_file(self._path(seg), {**self._expected_meta(seg), "index": meta}, arrays, self.store.io)
        seg.index = index
        self.col._invalidate()
