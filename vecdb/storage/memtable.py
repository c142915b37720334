"""The memtable: acknowledged rows not yet sealed into a segment, searched exactly.

Rows are appended to growing buffers; an upsert of an id already here marks the older row dead.
Readers take a ``MemSnapshot``: views of the buffers as they were plus a copy of the live mask,
so a search never sees a half-applied batch and never blocks a writer for long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa


@dataclass
class MemSnapshot:
    """An immutable view of the memtable at one moment (only the lookup cache is filled lazily)."""

    ids: np.ndarray  # (n,) int64
    vectors: np.ndarray  # (n, d) float32
    live: np.ndarray  # (n,) bool
    attributes: pa.Table  # n rows, the collection's attribute columns
    _sorted: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def num_rows(self) -> int:
        return int(self.ids.shape[0])

    def lookup(self, ids: np.ndarray) -> np.ndarray:
        """Rows of ``ids`` (live ones), -1 where absent."""
        if self._sorted is None:
            live_rows = np.flatnonzero(self.live)
            order = np.argsort(self.ids[live_rows], kind="stable")
            self._sorted = (self.ids[live_rows][order], live_rows[order])
        keys, rows = self._sorted
        if keys.size == 0:
            return np.full(ids.shape[0], -1, np.int64)
        pos = np.minimum(np.searchsorted(keys, ids), keys.size - 1)
        return np.where(keys[pos] == ids, rows[pos], -1).astype(np.int64)


class MemTable:
    """Append-only row buffers with an id -> row map. Not thread-safe: the collection locks."""

    def __init__(self, dim: int, attribute_schema: pa.Schema, capacity_rows: int = 0) -> None:
        """capacity_rows: rows to reserve up front (np.empty: pages are committed only when written),
        so a memtable that fills to its seal size never copies its buffers while growing."""
        self.dim = dim
        self.schema = attribute_schema
        self._ids = np.empty(capacity_rows, dtype=np.int64)
        self._vectors = np.empty((capacity_rows, dim), dtype=np.float32)
        self._live = np.zeros(capacity_rows, dtype=bool)
        self._n = 0
        self._row_of: dict[int, int] = {}
        self._tables: list[pa.Table] = []
        self._attributes_cache: pa.Table | None = None
        self._snapshot: MemSnapshot | None = None

    @property
    def num_rows(self) -> int:
        """Rows appended, dead ones included."""
        return self._n

    @property
    def num_live(self) -> int:
        return len(self._row_of)

    @property
    def nbytes(self) -> int:
        """Bytes of the rows held (not of the spare capacity): what a seal will write."""
        return int(self._n * (self.dim * 4 + 8) + sum(t.nbytes for t in self._tables))

    def __contains__(self, row_id: int) -> bool:
        return row_id in self._row_of

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        cap = self._ids.shape[0]
        if need <= cap:
            return
        new_cap = max(need, 2 * cap, 1024)
        # New buffers: snapshots taken earlier keep views of the old ones, which stay valid.
        ids = np.empty(new_cap, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        vectors = np.empty((new_cap, self.dim), dtype=np.float32)
        vectors[: self._n] = self._vectors[: self._n]
        live = np.zeros(new_cap, dtype=bool)
        live[: self._n] = self._live[: self._n]
        self._ids, self._vectors, self._live = ids, vectors, live

    def append(self, ids: np.ndarray, vectors: np.ndarray, attributes: pa.Table) -> int:
        """Add rows (ids unique within the batch); returns how many replaced rows already here."""
        n = ids.shape[0]
        self._reserve(n)
        replaced = self.delete(ids)
        start = self._n
        self._ids[start : start + n] = ids
        self._vectors[start : start + n] = vectors
        self._live[start : start + n] = True
        self._row_of.update(zip(ids.tolist(), range(start, start + n), strict=True))
        self._n += n
        self._tables.append(attributes)
        self._attributes_cache = None
        self._snapshot = None
        return replaced

    def delete(self, ids: np.ndarray) -> int:
        """Mark rows with these ids dead; returns how many were live here."""
        count = 0
        for row_id in ids.tolist():
            row = self._row_of.pop(row_id, None)
            if row is not None:
                self._live[row] = False
                count += 1
        if count:
            self._snapshot = None
        return count

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row numbers of ``ids`` here, -1 where absent."""
        get = self._row_of.get
        return np.fromiter((get(i, -1) for i in ids.tolist()), dtype=np.int64, count=ids.shape[0])

    def attributes(self) -> pa.Table:
        """All appended rows' attributes (dead rows included), one table."""
        if self._attributes_cache is None:
            table = pa.concat_tables(self._tables) if self._tables else self.schema.empty_table()
            self._tables = [table]
            self._attributes_cache = table
        return self._attributes_cache

    def snapshot(self) -> MemSnapshot:
        """The current state, frozen (cached until the next write)."""
        if self._snapshot is None:
            n = self._n
            self._snapshot = MemSnapshot(
                ids=self._ids[:n],
                vectors=self._vectors[:n],
                live=self._live[:n].copy(),
                attributes=self.attributes(),
            )
        return self._snapshot

    def live_table(self) -> tuple[pa.Table, np.ndarray]:
        """``live_table_of(self.snapshot())``."""
        return live_table_of(self.snapshot(), self.dim)


def live_table_of(snap: MemSnapshot, dim: int) -> tuple[pa.Table, np.ndarray]:
    """Live rows of a snapshot sorted by id as one table (id, vector, then the attribute columns),
    and the memtable row each table row came from."""
    rows = np.flatnonzero(snap.live)
    rows = rows[np.argsort(snap.ids[rows], kind="stable")]
    vectors = np.ascontiguousarray(snap.vectors[rows])
    table = pa.table(
        {
            "id": pa.array(snap.ids[rows]),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        }
    )
    attrs = snap.attributes.take(pa.array(rows))
    for name in attrs.column_names:
        table = table.append_column(attrs.schema.field(name), attrs.column(name))
    return table, rows
