"""The database: a data directory, its lock, its catalog and its collections."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vecdb.config import Flat, config_to_dict
from vecdb.engine import validate
from vecdb.engine.collection import Collection
from vecdb.engine.indexing import index_class
from vecdb.engine.store import CollectionStore, StoreOptions
from vecdb.errors import AlreadyExists, DataLoss, FailedPrecondition, InvalidArgument, NotFound
from vecdb.filter.schema import parse_schema
from vecdb.storage.catalog import Catalog
from vecdb.storage.io import FileIO
from vecdb.storage.layout import DataDirLayout, validate_name
from vecdb.storage.lock import DirectoryLock
from vecdb.types import check_metric
from vecdb.version import __version__

log = logging.getLogger("vecdb.engine")

# Written into a collection's directory before its catalog entry is removed.
DROPPED_MARKER = "DROPPED"


class Database:
    """An open data directory. Thread-safe; one process at a time (a lock file enforces it).

    Use ``Database.open(path)`` (or ``vecdb.connect(path)``); ``":memory:"`` opens a throwaway
    database in a temporary directory that is deleted on close.
    """

    def __init__(self, root: Path, *, io: FileIO | None = None, options: StoreOptions | None = None,
                 temporary: bool = False) -> None:
        self.root = root
        self.layout = DataDirLayout(root)
        self.io = io or FileIO()
        self.options = options or StoreOptions()
        self._temporary = temporary
        self._lock = threading.RLock()
        self._collections: dict[str, Collection] = {}
        self._closed = False
        self.io.makedirs(root)
        self._dir_lock = DirectoryLock(self.layout.lock_file)
        self._dir_lock.acquire()
        try:
            self.catalog = Catalog(self.layout.catalog_dir)
            self.catalog.record_identity()
        except BaseException:
            self._dir_lock.release()
            raise
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecdb-bg")
        self.recovery_seconds = 0.0
        self.wal_records_replayed = 0

    @classmethod
    def open(cls, path: str | Path, *, io: FileIO | None = None, options: StoreOptions | None = None) -> Database:
        """Open (creating if needed) the data directory at ``path`` and recover every collection."""
        if str(path) == ":memory:":
            root = Path(tempfile.mkdtemp(prefix="vecdb-mem-", dir=_memory_dir()))
            db = cls(root, io=io, options=options, temporary=True)
        else:
            db = cls(Path(path), io=io, options=options)
        try:
            db._recover()
        except BaseException:
            db.close(checkpoint=False)
            raise
        return db

    def _recover(self) -> None:
        start = time.perf_counter()
        names = self.catalog.list_collections()
        for name in names:
            col = self._instantiate(self.catalog.get_collection(name))
            col.recover()
            self.wal_records_replayed += col.replayed_records
            self._collections[name] = col
        self._sweep_dropped(set(names))
        self.recovery_seconds = time.perf_counter() - start
        if self.wal_records_replayed:
            log.info("recovered %d collections, replayed %d WAL records in %.2fs",
                     len(names), self.wal_records_replayed, self.recovery_seconds)

    def _sweep_dropped(self, names: set[str]) -> None:
        """Remove directories of dropped collections (a drop interrupted by a crash leaves one).

        Only a directory carrying the DROPPED marker (written before the catalog forgets the
        collection) is removed. Any other directory the catalog does not know means the catalog
        lost it: refuse to open rather than delete or hide data.
        """
        if not self.layout.collections_dir.exists():
            return
        for path in self.layout.collections_dir.iterdir():
            if path.name in names:
                continue
            if (path / DROPPED_MARKER).exists():
                log.info("removing %s: a dropped collection", path)
                shutil.rmtree(path, ignore_errors=True)
            else:
                raise DataLoss(
                    f"{path}: collection data on disk that the catalog does not know; the catalog "
                    f"({self.layout.catalog_dir}) may be damaged. Refusing to open rather than lose it."
                )

    def _instantiate(self, record: dict[str, Any]) -> Collection:
        store = CollectionStore(record["name"], self.layout, self.io, self.catalog, self._executor, self.options)
        return Collection(record, store)

    # ------------------------------------------------------------------ collections

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        index: Any = None,
        quantization: Any = None,
        schema: dict[str, str] | None = None,
        multi_tenant: bool = False,
    ) -> Collection:
        """Create a collection; AlreadyExists if the name is taken."""
        self._check_open()
        validate_name(name)
        dim = validate.check_dim(dim)
        try:
            check_metric(metric)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        index = index if index is not None else Flat()
        if not hasattr(index, "kind") or index.kind not in ("flat", "hnsw", "ivf", "spann"):
            raise InvalidArgument(f"index must be vecdb.Flat(), HNSW(), IVF() or SPANN(), got {index!r}")
        if index.kind != "flat":
            index_class(index.kind)  # fail now, not at the first seal, if this build lacks it
        if quantization is not None and getattr(quantization, "kind", None) not in ("sq", "pq", "bebr"):
            raise InvalidArgument(f"quantization must be vecdb.SQ(), PQ() or BEBR(), got {quantization!r}")
        parse_schema(schema)  # validates field names and types
        record = {
            "name": name,
            "dim": dim,
            "metric": metric,
            "index": config_to_dict(index),
            "quantization": config_to_dict(quantization),
            "schema": dict(schema or {}),
            "multi_tenant": bool(multi_tenant),
            "created_at": time.time(),
        }
        with self._lock:
            if name in self._collections or self.catalog.get_collection(name) is not None:
                raise AlreadyExists(f"collection {name!r} already exists")
            shutil.rmtree(self.layout.collection_dir(name), ignore_errors=True)  # leftovers of a crashed drop
            self.catalog.put_collection(name, record)
            col = self._instantiate(record)
            col.recover()
            self._collections[name] = col
        return col

    def collection(self, name: str) -> Collection:
        """The collection called ``name``; NotFound if there is none."""
        self._check_open()
        if not isinstance(name, str):
            raise InvalidArgument(f"collection name must be a string, got {type(name).__name__}")
        with self._lock:
            col = self._collections.get(name)
        if col is None:
            raise NotFound(f"collection {name!r} not found")
        return col

    def list_collections(self) -> list[str]:
        self._check_open()
        with self._lock:
            return sorted(self._collections)

    def drop_collection(self, name: str) -> None:
        """Delete a collection and its files; NotFound if there is none."""
        col = self.collection(name)
        with self._lock:
            col._store.wait_pending()
            col._closed = True
            col._store.wal.close()
            # Mark first: a directory without the marker and without a catalog entry means damage.
            self.io.write_atomic(self.layout.collection_dir(name) / DROPPED_MARKER, b"")
            self.catalog.drop_collection(name)  # the commit point
            self._collections.pop(name, None)
        shutil.rmtree(self.layout.collection_dir(name), ignore_errors=True)

    # ------------------------------------------------------------------ lifecycle

    def info(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "data_dir": str(self.root),
            "collections": len(self._collections),
            "wal_records_replayed": self.wal_records_replayed,
            "recovery_seconds": round(self.recovery_seconds, 4),
        }

    def close(self, *, checkpoint: bool = True) -> None:
        """Finish background work, checkpoint every collection (seal + fsync), release the directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            collections = list(self._collections.values())
        self._executor.shutdown(wait=True, cancel_futures=True)
        for col in collections:
            try:
                if checkpoint:
                    col.close()
                else:
                    col._closed = True
                    col._store.wal.close()
            except Exception:
                log.exception("closing collection %r", col.name)
        self.catalog.close()
        self._dir_lock.release()
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the database is closed")

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({str(self.root)!r}, collections={len(self._collections)})"


def _memory_dir() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None
