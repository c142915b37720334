"""A sealed segment as the engine sees it: the memory-mapped Arrow table, its sorted ids, its
deletion mask (copy-on-write, so readers holding the old mask are never disturbed) and its indexes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vecdb.storage.segment import open_segment, vectors_view


class SealedSegment:
    """One immutable Arrow segment plus its mutable deletion state."""

    def __init__(self, seg_id: int, path: Path, table: pa.Table, checksum: int, nbytes: int) -> None:
        self.seg_id = seg_id
        self.path = path
        self.table = table
        self.checksum = checksum
        self.nbytes = nbytes
        self.ids = _column_numpy(table, "id", np.int64)
        self.vectors = vectors_view(table, "vector") if table.num_rows else np.zeros((0, 0), np.float32)
        self.deleted = np.zeros(table.num_rows, dtype=bool)
        self.deleted_count = 0
        # The bitmap file that holds the persisted deletions, and whether memory is ahead of it.
        self.deletes_file: str | None = None
        self.dirty = False
        self.index: Any = None
        self.attr_index: Any = None  # vecdb.filter.attrindex.AttributeIndex once built
        self.tenant_index: Any = None  # vecdb.index.tenant.TenantIndex (multi-tenant collections)
        self.codes: np.ndarray | None = None

    @classmethod
    def open(cls, seg_id: int, path: Path, checksum: int | None, nbytes: int, *, verify: bool = True) -> SealedSegment:
        table = open_segment(path, checksum, verify=verify)
        return cls(seg_id, path, table, checksum or 0, nbytes)

    @property
    def num_rows(self) -> int:
        return int(self.ids.shape[0])

    @property
    def num_live(self) -> int:
        return self.num_rows - self.deleted_count

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row offsets of ``ids`` in this segment (live rows only), -1 where absent. ids are sorted here."""
        if self.num_rows == 0 or ids.size == 0:
            return np.full(ids.shape[0], -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos_c = np.minimum(pos, self.num_rows - 1)
        found = (self.ids[pos_c] == ids) & ~self.deleted[pos_c]
        return np.where(found, pos_c, -1).astype(np.int64)

    def mark_deleted(self, rows: np.ndarray) -> int:
        """Delete rows (offsets, live ones); returns how many. Replaces the mask, never mutates it."""
        rows = rows[rows >= 0]
        if rows.size == 0:
            return 0
        mask = self.deleted.copy()
        mask[rows] = True
        newly = int(mask.sum()) - self.deleted_count
        self.deleted = mask
        self.deleted_count += newly
        self.dirty = self.dirty or newly > 0
        return newly

    def set_deleted(self, mask: np.ndarray) -> None:
        """Install a persisted deletion mask (at open)."""
        if mask.shape != (self.num_rows,):
            raise ValueError(f"deletion mask of {mask.shape[0]} rows for a segment of {self.num_rows}")
        self.deleted = mask.astype(bool, copy=True)
        self.deleted_count = int(self.deleted.sum())


def _column_numpy(table: pa.Table, name: str, dtype: Any) -> np.ndarray:
    column = table.column(name)
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return column.to_numpy().astype(dtype, copy=False)
