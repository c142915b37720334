"""The persistence half of a collection: WAL, segment files, the manifest, sealing and compaction.

The manifest in the catalog is the single commit point. A seal writes the new segment and any
changed deletion bitmaps first, commits the manifest (segments + the WAL LSN they cover), and only
then truncates the WAL and removes files the manifest no longer names. A crash anywhere leaves
either the old manifest (the WAL still holds everything) or the new one; files no manifest names
are swept at the next open.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vecdb.engine.indexing import IndexBuilder
from vecdb.engine.segments import SealedSegment
from vecdb.errors import DataLoss
from vecdb.storage.arrayfile import read_array_file, write_array_file
from vecdb.storage.catalog import Catalog
from vecdb.storage.crashpoints import crash_point
from vecdb.storage.io import FileIO
from vecdb.storage.layout import FORMAT_VERSION, DataDirLayout
from vecdb.storage.memtable import MemTable, live_table_of
from vecdb.storage.segment import write_segment
from vecdb.storage.wal import WriteAheadLog

if TYPE_CHECKING:
    from vecdb.engine.collection import Collection

log = logging.getLogger("vecdb.engine")


class StoreOptions:
    """Tuning of the write path (the defaults suit most collections)."""

    def __init__(self, seal_bytes: int = 128 << 20, max_segments: int = 8, compact_deleted_fraction: float = 0.2,
                 index_min_rows: int = 1024, background: bool = True) -> None:
        self.seal_bytes = seal_bytes  # memtable size that triggers a seal
        self.max_segments = max_segments  # more segments than this triggers a merge
        self.compact_deleted_fraction = compact_deleted_fraction  # a segment this dead gets rewritten
        self.index_min_rows = index_min_rows  # smaller segments are searched exactly
        self.background = background  # build indexes / compact in a background thread


class CollectionStore:
    """Owns one collection's files; every method that changes state runs under the collection's lock."""

    def __init__(self, name: str, layout: DataDirLayout, io: FileIO, catalog: Catalog,
                 executor: Executor | None, options: StoreOptions) -> None:
        self.name = name
        self.layout = layout
        self.io = io
        self.catalog = catalog
        self.executor = executor
        self.options = options
        self.seg_dir = layout.segments_dir(name)
        self.wal_dir = layout.wal_dir(name)
        io.makedirs(self.seg_dir)
        io.makedirs(self.wal_dir)
        self.wal = WriteAheadLog(self.wal_dir, io)
        self.next_segment_id = 1
        self.manifest_lsn = 0
        self._col: Collection | None = None
        self._pending: set[Future[Any]] = set()
        self._pending_lock = threading.Lock()
        self._closing = False
        self.indexes: IndexBuilder | None = None

    def reopen_wal(self, after_lsn: int) -> Any:
        """Replace a poisoned WAL with a freshly recovered one; yields records past ``after_lsn``."""
        try:
            self.wal.close()
        except Exception:  # a poisoned log may fail to close cleanly; its files are what matter
            log.warning("closing the poisoned WAL of %r failed", self.name, exc_info=True)
        self.wal = WriteAheadLog(self.wal_dir, self.io)
        return self.wal.recover(after_lsn=after_lsn)

    def attach(self, collection: Collection) -> None:
        self._col = collection
        self.indexes = IndexBuilder(collection, self)

    @property
    def col(self) -> Collection:
        assert self._col is not None, "store used before attach()"
        return self._col

    # ------------------------------------------------------------------ open

    def load_segments(self) -> tuple[list[SealedSegment], int]:
        """Open every segment the manifest names (checksums verified) and sweep unnamed files."""
        manifest = self.catalog.get_manifest(self.name) or {}
        if manifest and manifest.get("format", FORMAT_VERSION) > FORMAT_VERSION:
            raise DataLoss(f"manifest of {self.name!r} has format {manifest['format']}, newer than this vecdb")
        self.manifest_lsn = int(manifest.get("lsn", 0))
        self.next_segment_id = int(manifest.get("next_segment_id", 1))
        segments = []
        keep = set()
        for entry in manifest.get("segments", []):
            seg_id = int(entry["id"])
            path = self.layout.segment_path(self.name, seg_id)
            seg = SealedSegment.open(seg_id, path, int(entry["checksum"]), int(entry["nbytes"]))
            keep.add(path.name)
            if entry.get("deletes"):
                seg.set_deleted(self._read_deletes(entry["deletes"], seg.num_rows))
                seg.deletes_file = entry["deletes"]
                keep.add(entry["deletes"])
            segments.append(seg)
        self._sweep(keep, {s.seg_id for s in segments})
        return segments, self.manifest_lsn

    def _read_deletes(self, filename: str, rows: int) -> np.ndarray:
        meta, arrays = read_array_file(self.seg_dir / filename, mmap=False)
        if meta.get("rows") != rows or "mask" not in arrays:
            raise DataLoss(f"{self.seg_dir / filename}: deletion bitmap does not match its segment")
        return np.unpackbits(arrays["mask"], count=rows).astype(bool)

    def _sweep(self, keep: set[str], live_ids: set[int]) -> None:
        """Remove files left by a crash: segments/bitmaps no manifest names, indexes of dead segments."""
        self.io.remove_temp_files(self.seg_dir)
        for path in sorted(self.seg_dir.iterdir()):
            if path.name in keep:
                continue
            head = path.name.split(".", 1)[0]
            is_index = path.name.endswith(".idx") and head.isdigit() and int(head) in live_ids
            if not is_index:
                log.info("removing %s: not named by the manifest of %r", path, self.name)
                self.io.remove(path)

    # ------------------------------------------------------------------ seal

    def maybe_seal(self) -> None:
        """Called under the collection lock after each apply: a full memtable is frozen (still
        searched) and written as a segment in the background while writers carry on."""
        if self.col._mem.nbytes >= self.options.seal_bytes:
            self._freeze_locked()
            self.submit(self._flush_oldest)

    def _freeze_locked(self) -> None:
        col = self.col
        if col._mem.num_rows == 0:
            return
        col._frozen.append((col._mem, col._applied_lsn))
        col._mem = self.new_memtable(col.dim, col._mem.schema)
        col._invalidate()
        self.wal.roll()  # the log splits at this LSN, so it can be trimmed there once the segment commits

    def new_memtable(self, dim: int, schema: pa.Schema) -> MemTable:
        """A memtable with room reserved for what fills it up to ``seal_bytes`` (capped at 1M rows)."""
        return MemTable(dim, schema, capacity_rows=min(self.options.seal_bytes // (dim * 4 + 8) + 1, 1 << 20))

    def _flush_oldest(self) -> None:
        """Background: write the oldest frozen memtable as a segment, then commit it."""
        col = self.col
        with col._cond:
            if not col._frozen or col._closed:
                return
            mem, lsn = col._frozen[0]
            snap = mem.snapshot()
            seg_id = self._allocate_segment_id()
        table, rows = live_table_of(snap, col.dim)
        new_seg = self._write_segment(seg_id, table) if table.num_rows else None
        with col._cond:
            if not col._frozen or col._frozen[0][0] is not mem:  # a synchronous seal got there first
                if new_seg is not None:
                    self._remove_quietly(new_seg.path)
                return
            self._install_locked(mem, lsn, new_seg, rows)

    def _install_locked(self, mem: MemTable, lsn: int, new_seg: SealedSegment | None, rows: np.ndarray) -> None:
        col = self.col
        segments = list(col._segments)
        if new_seg is not None:
            # Deletes that reached the frozen memtable while its segment was being written.
            gone = ~mem.snapshot().live[rows]
            if gone.any():
                new_seg.mark_deleted(np.flatnonzero(gone))
            segments.append(new_seg)
        _crash_point("manifest_write")
        self._commit(segments, lsn)
        col._segments = segments
        col._frozen.pop(0)
        col._invalidate()
        self.wal.truncate_through(lsn)
        if new_seg is not None:
            self.submit(lambda: self.indexes.build(new_seg))

    def seal_locked(self) -> None:
        """Synchronous seal (optimize, compaction, close): every memtable becomes a segment, changed
        deletion bitmaps are persisted, the manifest covers everything applied, the WAL is trimmed."""
        col = self.col
        self._freeze_locked()
        while col._frozen:
            mem, lsn = col._frozen[0]
            table, rows = live_table_of(mem.snapshot(), col.dim)
            new_seg = self._write_segment(self._allocate_segment_id(), table) if table.num_rows else None
            self._install_locked(mem, lsn, new_seg, rows)
        lsn = col._applied_lsn
        if lsn != self.manifest_lsn or any(s.dirty for s in col._segments):
            self._commit(list(col._segments), lsn)
            self.wal.roll()
            self.wal.truncate_through(lsn)

    def _allocate_segment_id(self) -> int:
        seg_id = self.next_segment_id
        self.next_segment_id += 1
        return seg_id

    def _write_segment(self, seg_id: int, table: pa.Table) -> SealedSegment:
        path = self.layout.segment_path(self.name, seg_id)
        _crash_point("segment_rename")
        info = write_segment(path, table, self.io)
        # Freshly written by us: verifying the checksum again would re-read the whole file.
        return SealedSegment.open(seg_id, path, info.checksum, info.nbytes, verify=False)

    def _commit(self, segments: list[SealedSegment], lsn: int) -> None:
        """Persist dirty deletion bitmaps, then the manifest (the commit point), then clean up."""
        old_files = []
        for seg in segments:
            if seg.dirty:
                name = self.layout.sidecar_path(self.name, seg.seg_id, f"del-{lsn}").name
                packed = np.packbits(seg.deleted)
                write_array_file(self.seg_dir / name, {"rows": seg.num_rows}, {"mask": packed}, self.io)
                if seg.deletes_file and seg.deletes_file != name:
                    old_files.append(seg.deletes_file)
                seg.deletes_file = name
        manifest = {
            "format": FORMAT_VERSION,
            "lsn": lsn,
            "next_segment_id": self.next_segment_id,
            "segments": [
                {"id": s.seg_id, "rows": s.num_rows, "checksum": s.checksum, "nbytes": s.nbytes,
                 "deletes": s.deletes_file}
                for s in segments
            ],
        }
        self.catalog.put_manifest(self.name, manifest)
        for seg in segments:
            seg.dirty = False
        self.manifest_lsn = lsn
        for name in old_files:
            self._remove_quietly(self.seg_dir / name)

    def _remove_quietly(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.io.remove(path)

    # ------------------------------------------------------------------ compaction

    def maybe_compact(self) -> None:
        """Background policy: rewrite segments that are mostly dead, merge when there are too many."""
        col = self.col
        with col._cond:
            if col._closed:
                return
            segs = col._segments
            limit = self.options.compact_deleted_fraction
            victims = [s for s in segs if s.num_rows and s.deleted_count / s.num_rows >= limit]
            if len(segs) > self.options.max_segments:
                by_size = sorted(segs, key=lambda s: s.num_live)
                smallest = by_size[: len(segs) - self.options.max_segments // 2 + 1]
                victims = list({s.seg_id: s for s in victims + smallest}.values())
            if victims:
                self.compact_locked(victims)

    def compact_locked(self, victims: list[SealedSegment]) -> SealedSegment | None:
        """Merge ``victims`` (live rows only, sorted by id) into one segment. Seals first, so the
        manifest's LSN always covers everything in segments and nothing left only in memory."""
        col = self.col
        self.seal_locked()
        victim_ids = {s.seg_id for s in victims}
        victims = [s for s in col._segments if s.seg_id in victim_ids]
        if not victims:
            return None
        parts = [s.table.filter(pa.array(~s.deleted)) for s in victims if s.num_live]
        keep = [s for s in col._segments if s.seg_id not in victim_ids]
        merged = None
        if parts:
            table = pa.concat_tables(parts).combine_chunks().sort_by("id")
            merged = self._write_segment(self._allocate_segment_id(), table)
            keep.append(merged)
        _crash_point("compaction_commit")
        self._commit(keep, col._applied_lsn)
        col._segments = keep
        col._invalidate()
        for seg in victims:
            self._remove_segment_files(seg)
        if merged is not None:
            self.submit(lambda: self.indexes.build(merged))
        return merged

    def _remove_segment_files(self, seg: SealedSegment) -> None:
        prefix = f"{seg.seg_id:012d}."
        for path in list(self.seg_dir.iterdir()):
            if path.name.startswith(prefix):
                self._remove_quietly(path)

    # ------------------------------------------------------------------ optimize / background

    def optimize(self) -> None:
        """Seal, compact everything into as few segments as possible, train and build indexes now."""
        col = self.col
        with col._cond:
            self.seal_locked()
            if len(col._segments) > 1 or any(s.deleted_count for s in col._segments):
                self.compact_locked(list(col._segments))
            segments = list(col._segments)
        self.wait_pending()
        self.indexes.ensure_quantizer(segments)
        for seg in segments:
            if seg.index is None or seg.tenant_index is None:
                self.indexes.build(seg)  # builds only what is missing

    def submit(self, task: Callable[[], Any]) -> None:
        """Run ``task`` in the background (or now, when background work is off)."""
        if self._closing:
            return  # work left for the next open (it rebuilds what is missing)
        if self.executor is None or not self.options.background:
            task()
            return
        future = self.executor.submit(self._guarded, task)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _guarded(self, task: Callable[[], Any]) -> None:
        try:
            task()
        except Exception:  # background work must never kill the executor; it is retried at next open
            log.exception("background task failed for collection %r", self.name)

    def _done(self, future: Future[Any]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def wait_pending(self) -> None:
        while True:
            with self._pending_lock:
                pending = list(self._pending)
            if not pending:
                return
            for future in pending:
                future.result()

    def schedule_missing_indexes(self) -> None:
        for seg in list(self.col._segments):
            if not self.indexes.load(seg):
                self.submit(lambda seg=seg: self.indexes.build(seg))

    def bytes_on_disk(self) -> int:
        total = 0
        for directory in (self.seg_dir, self.wal_dir):
            for path in directory.iterdir():
                try:
                    total += path.stat().st_size
                except FileNotFoundError:
                    continue
        return total

    def close(self) -> None:
        """Checkpoint: seal so the next open replays nothing; then close the WAL."""
        col = self.col
        with col._cond:
            self._closing = True
            self.seal_locked()
            col._closed = True
        self.wal.close()


def _crash_point(name: str) -> None:
    """Whitebox crash injection for the crash suite: ``VECDB_CRASH_AT=<name>`` kills the process here."""
    crash_point(name)
