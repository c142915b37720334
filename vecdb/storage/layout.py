"""Where everything lives inside a data directory, and the on-disk format version.

```
<root>/LOCK                                  DirectoryLock (owner pid)
<root>/catalog/                              RocksDB: collections + manifests (the commit point)
<root>/collections/<name>/wal/<lsn>.wal      write-ahead log files, named by their first LSN
<root>/collections/<name>/segments/<id>.arrow            immutable Arrow IPC segments
<root>/collections/<name>/segments/<id>.<suffix>         sidecars: deletion bitmaps, index files
```
Collection names are validated before they ever become a path component.
"""

from __future__ import annotations

import re
from pathlib import Path

from vecdb.errors import InvalidArgument

FORMAT_VERSION = 1

_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Device names Windows refuses as file names in any case: a data directory holding one could not be
# copied there, so such a collection name is refused everywhere.
_RESERVED = frozenset(["con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))])
_SUFFIX_RE = re.compile(r"[A-Za-z0-9_-]{1,32}(\.[A-Za-z0-9_-]{1,32})?")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a legal collection name (``[A-Za-z0-9_-]{1,64}``), else InvalidArgument."""
    if not isinstance(name, str):
        raise InvalidArgument(f"collection name must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidArgument("collection name must not be empty")
    if len(name) > 64:
        raise InvalidArgument(f"collection name is {len(name)} characters long; the limit is 64")
    if _NAME_RE.fullmatch(name) is None:
        bad = next(ch for ch in name if _NAME_RE.fullmatch(ch) is None)
        raise InvalidArgument(
            f"collection name {name!r} contains {bad!r}: only letters, digits, '_' and '-' are allowed"
        )
    if name.lower() in _RESERVED:
        raise InvalidArgument(f"collection name {name!r} is a reserved device name on Windows file systems")
    return name


def _check_seg_id(seg_id: int) -> int:
    if isinstance(seg_id, bool) or not isinstance(seg_id, int) or not 0 <= seg_id < 10**12:
        raise InvalidArgument(f"segment id must be an integer in [0, 10**12), got {seg_id!r}")
    return seg_id


class DataDirLayout:
    """Path arithmetic for one data directory; creates nothing (writes go through FileIO)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    validate_name = staticmethod(validate_name)

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def lock_file(self) -> Path:
        return self.root / "LOCK"

    @property
    def collections_dir(self) -> Path:
        return self.root / "collections"

    def collection_dir(self, name: str) -> Path:
        return self.collections_dir / validate_name(name)

    def wal_dir(self, name: str) -> Path:
        return self.collection_dir(name) / "wal"

    def segments_dir(self, name: str) -> Path:
        return self.collection_dir(name) / "segments"

    def segment_path(self, name: str, seg_id: int) -> Path:
        return self.segments_dir(name) / f"{_check_seg_id(seg_id):012d}.arrow"

    def sidecar_path(self, name: str, seg_id: int, suffix: str) -> Path:
        """``{seg_id:012d}.{suffix}``: deletion bitmaps, index files (suffix like ``del`` or ``hnsw``)."""
        if not isinstance(suffix, str) or _SUFFIX_RE.fullmatch(suffix) is None or suffix == "arrow":
            raise InvalidArgument(f"bad sidecar suffix {suffix!r}: use letters, digits, '_' or '-'")
        return self.segments_dir(name) / f"{_check_seg_id(seg_id):012d}.{suffix}"
