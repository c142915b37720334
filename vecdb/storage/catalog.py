"""The catalog: collections and their manifests in RocksDB (rocksdict, raw mode, synchronous writes).

The manifest of a collection (its segments with their checksums and the WAL LSN they cover) is the
single commit point of the engine: a seal or a compaction exists once ``put_manifest``/``commit``
returns, and not before. Values are JSON objects; keys are ``collection/<name>``, ``manifest/<name>``
(and any other ``<kind>/<name>`` the engine needs). ``commit`` applies several puts and deletes as one
atomic, fsynced WriteBatch.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rocksdict import DBRecoveryMode, Options, Rdict, WriteBatch, WriteOptions

from vecdb.errors import DataLoss, FailedPrecondition, InvalidArgument, ResourceExhausted
from vecdb.storage.layout import validate_name

COLLECTION_PREFIX = "collection/"
MANIFEST_PREFIX = "manifest/"
# Embedding versions of a collection (compatibility maps; vecdb.engine.versions).
VERSIONS_PREFIX = "versions/"
# RocksDB's IDENTITY (the database id) as it was when vecdb first opened the catalog; its copy here
# is covered by block checksums, the file itself by nothing.
IDENTITY_KEY = "meta/identity"
# What rocksdict writes to rocksdict-config.json for Options(raw_mode=True) without prefix extractors.
ROCKSDICT_CONFIG = {"raw_mode": True, "prefix_extractors": {}}


def read_metadata_files(path: Path | str) -> dict[str, bytes | None]:
    """The bytes of the catalog's two unchecksummed metadata files (None where missing): read them
    before opening the catalog, which rewrites rocksdict-config.json."""
    path = Path(path)
    return {name: (path / name).read_bytes() if (path / name).exists() else None
            for name in ("IDENTITY", "rocksdict-config.json")}


def metadata_problems(files: dict[str, bytes | None], recorded: dict[str, Any] | None) -> list[str]:
    """What is wrong with ``read_metadata_files``'s bytes: rocksdict-config.json must decode to
    ``ROCKSDICT_CONFIG``; IDENTITY must equal the copy recorded under ``IDENTITY_KEY`` (if any).
    Neither file holds stored data, so these are warnings: RocksDB and rocksdict rewrite them."""
    problems = []
    config = files.get("rocksdict-config.json")
    if config is not None:
        try:
            ok = json.loads(config) == ROCKSDICT_CONFIG
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            problems.append(f"rocksdict-config.json is damaged: {config[:80]!r}")
    identity = files.get("IDENTITY")
    if recorded is not None and (identity is None or identity.decode("utf-8", "replace").strip() != recorded.get("id")):
        problems.append(f"IDENTITY {identity[:80] if identity else None!r} differs from the id recorded at creation "
                        f"({recorded.get('id')!r})")
    return problems


def _rocks_error(path: Path, what: str, exc: Exception) -> Exception:
    """Map a RocksDB error (rocksdict raises plain exceptions) onto the vecdb hierarchy."""
    text = str(exc)
    # Order matters: "block checksum mismatch" contains "lock".
    if "Corruption" in text or "checksum mismatch" in text:
        return DataLoss(f"catalog {path}: {what} failed, the catalog is corrupt: {text}")
    if "No space left" in text or "Disk quota" in text:
        return ResourceExhausted(f"disk full writing catalog {path}: {text}")
    if "lock hold" in text or "/LOCK" in text:
        return FailedPrecondition(f"catalog {path} is already open (by this or another process): {text}")
    if "No such file" in text and "MANIFEST" in text:
        # CURRENT names a MANIFEST that is not there: damaged or partly deleted catalog files.
        return DataLoss(f"catalog {path}: {what} failed, catalog files are missing or damaged: {text}")
    return FailedPrecondition(f"catalog {path}: {what} failed: {text}")


class Catalog:
    """Collections and manifests, durable on return of every write."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_paranoid_checks(True)
        # RocksDB's default (point-in-time) silently drops every record after a damaged one in its
        # log; we want our WAL's policy: cut a torn tail, refuse to open on damage in the middle.
        options.set_wal_recovery_mode(DBRecoveryMode.tolerate_corrupted_tail_records())
        try:
            self._db: Rdict | None = Rdict(str(self.path), options=options)
        except Exception as exc:
            raise _rocks_error(self.path, "open", exc) from exc
        self._write_options = WriteOptions()
        self._write_options.sync = True  # a returned write survives a power cut
        self._db.set_write_options(self._write_options)
        self._lock = threading.Lock()  # serialises close() against in-flight calls
        try:
            self.verify()
        except BaseException:
            self.close()
            raise

    def verify(self) -> int:
        """Read and decode every value (block checksums checked); returns the key count.

        Cheap (the catalog is small) and run at open, so damage is a DataLoss up front rather than
        a surprise in the middle of recovery.
        """
        count = 0
        for key in self.keys(""):
            self.get(key)
            count += 1
        return count

    def record_identity(self) -> None:
        """Keep a checksummed copy of RocksDB's IDENTITY file (once; for ``metadata_problems``)."""
        identity = self.path / "IDENTITY"
        if self.get(IDENTITY_KEY) is None and identity.exists():
            self.commit({IDENTITY_KEY: {"id": identity.read_text(errors="replace").strip()}})

    # ---- generic access ---------------------------------------------------------------------------

    def _handle(self) -> Rdict:
        if self._db is None:
            raise FailedPrecondition(f"catalog {self.path} is closed")
        return self._db

    def get(self, key: str) -> dict[str, Any] | None:
        """The JSON object stored under ``key``, or None; DataLoss naming the key if it fails to decode."""
        with self._lock:
            try:
                raw = self._handle().get(key.encode())
            except FailedPrecondition:
                raise
            except Exception as exc:
                raise _rocks_error(self.path, f"reading {key!r}", exc) from exc
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataLoss(f"catalog {self.path}: key {key!r}: value is not valid JSON ({exc})") from exc
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise DataLoss(f"catalog {self.path}: key {key!r}: value is a JSON {kind}, not an object")
        return value

    def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, in order."""
        start = prefix.encode()
        raw_keys = []
        with self._lock:
            it = self._handle().iter()
            try:
                it.seek(start)
                while it.valid():
                    raw = it.key()
                    if not raw.startswith(start):
                        break
                    raw_keys.append(raw)
                    it.next()
                # An iterator that hits a damaged block just stops being valid: only its status
                # tells a corrupt catalog from the end of the keys.
                it.status()
            except Exception as exc:
                raise _rocks_error(self.path, f"listing keys under {prefix!r}", exc) from exc
            finally:
                del it
        try:
            return [raw.decode() for raw in raw_keys]
        except UnicodeDecodeError as exc:
            raise DataLoss(f"catalog {self.path}: a key under {prefix!r} is not valid UTF-8") from exc

    def commit(self, puts: dict[str, dict[str, Any] | None]) -> None:
        """Apply all ``puts`` atomically and durably: a dict is stored (JSON), None deletes the key."""
        batch = WriteBatch(raw_mode=True)
        for key, value in puts.items():
            if not isinstance(key, str) or not key:
                raise InvalidArgument(f"catalog keys must be non-empty strings, got {key!r}")
            if value is None:
                batch.delete(key.encode())
                continue
            if not isinstance(value, dict):
                raise InvalidArgument(f"catalog value for {key!r} must be a dict, got {type(value).__name__}")
            try:
                encoded = json.dumps(value, sort_keys=True, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(f"catalog value for {key!r} is not JSON-serialisable: {exc}") from exc
            batch.put(key.encode(), encoded)
        with self._lock:
            db = self._handle()
            try:
                db.write(batch, self._write_options)
            except Exception as exc:
                raise _rocks_error(self.path, "commit", exc) from exc

    # ---- collections and manifests ----------------------------------------------------------------

    def put_collection(self, name: str, record: dict[str, Any]) -> None:
        self.commit({COLLECTION_PREFIX + validate_name(name): record})

    def get_collection(self, name: str) -> dict[str, Any] | None:
        return self.get(COLLECTION_PREFIX + validate_name(name))

    def list_collections(self) -> list[str]:
        return [key[len(COLLECTION_PREFIX) :] for key in self.keys(COLLECTION_PREFIX)]

    def drop_collection(self, name: str) -> None:
        """Remove the collection record, its manifest and its embedding versions in one atomic write."""
        name = validate_name(name)
        self.commit({COLLECTION_PREFIX + name: None, MANIFEST_PREFIX + name: None, VERSIONS_PREFIX + name: None})

    def get_manifest(self, name: str) -> dict[str, Any] | None:
        return self.get(MANIFEST_PREFIX + validate_name(name))

    def put_manifest(self, name: str, manifest: dict[str, Any]) -> None:
        self.commit({MANIFEST_PREFIX + validate_name(name): manifest})

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
