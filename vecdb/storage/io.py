"""The I/O seam: every write, fsync, rename, directory fsync and remove in vecdb goes through FileIO.

Tests replace it with the doubles in ``io_faults.py`` (disk full after N bytes, torn writes, fsync
errors, power cuts that drop what was never fsynced). The primitives that touch the OS are small
overridable methods (``_os_write``, ``_os_fsync``...) so a double changes behaviour in one place.

Error policy: ENOSPC/EDQUOT become ``ResourceExhausted("disk full writing <path>")``; every other
OSError propagates unchanged (an EIO from fsync is fatal to the caller, which must not retry).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from vecdb.errors import ResourceExhausted
from vecdb.storage.checksum import crc32c

Buffer = bytes | bytearray | memoryview
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Temporary files of write_atomic: hidden, and recognisable so recovery can sweep leftovers.
TEMP_MARKER = ".tmp-"
_temp_counter = itertools.count()


def _flat(data: object) -> memoryview:
    view = memoryview(data)  # type: ignore[arg-type]
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    return view


class AppendFile:
    """A file opened for appending: ``write`` (all of it, or an error), ``fsync``, ``size``, ``close``."""

    def __init__(self, io: FileIO, path: Path, fd: int, size: int) -> None:
        self._io = io
        self.path = path
        self._fd: int | None = fd
        self._size = size

    @property
    def size(self) -> int:
        """Bytes in the file, counting everything written (durable or not)."""
        return self._size

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path}: file is closed")
        return self._fd

    def write(self, data: Buffer | object) -> None:
        """Append all of ``data``; on error, ``size`` still counts the prefix that reached the file."""
        self._io._write_all(self, _flat(data))

    def fsync(self) -> None:
        self._io._fsync_file(self)

    def truncate(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (used to drop a torn frame after a failed write)."""
        self._io._truncate_file(self, size)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> AppendFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AtomicWriter:
    """File-like sink for ``FileIO.atomic_writer``: tracks the size and CRC-32C of what was written."""

    def __init__(self, file: AppendFile) -> None:
        self._file = file
        self.crc = 0
        self.closed = False

    @property
    def size(self) -> int:
        return self._file.size

    def write(self, data: Buffer | object) -> int:
        view = _flat(data)
        self._file.write(view)
        self.crc = crc32c(view, self.crc)
        return view.nbytes

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Nothing is buffered here; durability comes from the fsync at commit."""

    def close(self) -> None:
        # pyarrow closes the sink it wraps; the real close happens when the commit finishes.
        self.closed = True


class FileIO:
    """The real file system. Subclass and override the ``_os_*`` hooks to inject faults."""

    # ---- primitives a test double may override -------------------------------------------------

    def _os_open(self, path: Path, flags: int) -> int:
        return os.open(path, flags, 0o644)

    def _os_write(self, fd: int, path: Path, view: memoryview) -> int:
        return os.write(fd, view)

    def _os_fsync(self, fd: int, path: Path) -> None:
        os.fsync(fd)

    def _os_rename(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def _os_remove(self, path: Path) -> None:
        os.unlink(path)

    def _os_truncate(self, fd: int, path: Path, size: int) -> None:
        os.ftruncate(fd, size)

    # ---- error mapping ---------------------------------------------------------------------------

    @staticmethod
    def _check(exc: OSError, path: Path) -> None:
        """Turn a disk-full OSError into ResourceExhausted; let everything else propagate."""
        if exc.errno in _DISK_FULL:
            raise ResourceExhausted(f"disk full writing {path}") from exc

    # ---- AppendFile plumbing ---------------------------------------------------------------------

    def _write_all(self, file: AppendFile, view: memoryview) -> None:
        fd = file.fd
        done = 0
        total = view.nbytes
        try:
            while done < total:
                n = self._os_write(fd, file.path, view[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "write made no progress", str(file.path))
                done += n
                file._size += n
        except OSError as exc:
            self._check(exc, file.path)
            raise

    def _open(self, path: Path, flags: int) -> int:
        try:
            return self._os_open(path, flags | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            self._check(exc, path)  # out of inodes is a full disk too
            raise

    def _fsync_file(self, file: AppendFile) -> None:
        try:
            self._os_fsync(file.fd, file.path)
        except OSError as exc:
            self._check(exc, file.path)
            raise

    def _truncate_file(self, file: AppendFile, size: int) -> None:
        try:
            self._os_truncate(file.fd, file.path, size)
        except OSError as exc:
            self._check(exc, file.path)
            raise
        file._size = size

    # ---- public API ------------------------------------------------------------------------------

    def open_append(self, path: Path | str) -> AppendFile:
        """Open (creating if needed) ``path`` for appending. A new file needs ``fsync_dir`` to persist."""
        path = Path(path)
        fd = self._open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        return AppendFile(self, path, fd, os.fstat(fd).st_size)

    @contextlib.contextmanager
    def atomic_writer(self, path: Path | str) -> Iterator[AtomicWriter]:
        """Stream a file into place: temp file in the same dir -> write -> fsync -> rename -> fsync dir.

        Readers see either the old file or the complete new one. On any error the temp file is removed.
        """
        path = Path(path)
        tmp = path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-{next(_temp_counter)}")
        fd = self._open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        file = AppendFile(self, tmp, fd, 0)
        try:
            writer = AtomicWriter(file)
            yield writer
            file.fsync()
            file.close()
            self.rename(tmp, path)
        except BaseException:
            file.close()
            with contextlib.suppress(OSError):
                self._os_remove(tmp)
            raise
        self.fsync_dir(path.parent)

    def write_atomic(self, path: Path | str, data: Buffer | Iterable[Buffer] | object) -> int:
        """Atomically replace ``path`` with ``data`` (one buffer or an iterable of them); returns its CRC."""
        try:
            chunks: Iterable[object] = [memoryview(data)]  # type: ignore[arg-type]
        except TypeError:
            chunks = data  # type: ignore[assignment]  # an iterable of buffers, written in order
        with self.atomic_writer(path) as out:
            for chunk in chunks:
                out.write(chunk)
        return out.crc

    def rename(self, src: Path | str, dst: Path | str) -> None:
        """Atomically rename ``src`` over ``dst``; durable only after ``fsync_dir`` of the parent."""
        src, dst = Path(src), Path(dst)
        try:
            self._os_rename(src, dst)
        except OSError as exc:
            self._check(exc, dst)
            raise

    def fsync_dir(self, path: Path | str) -> None:
        """fsync a directory so the creations, renames and removals in it survive a power cut."""
        path = Path(path)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            self._os_fsync(fd, path)
        except OSError as exc:
            self._check(exc, path)
            raise
        finally:
            os.close(fd)

    def remove(self, path: Path | str) -> None:
        """Delete a file (missing is fine); durable only after ``fsync_dir``."""
        path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            self._os_remove(path)

    def truncate(self, path: Path | str, size: int) -> None:
        """Cut ``path`` to ``size`` bytes and fsync it (used by recovery to drop a torn tail)."""
        path = Path(path)
        fd = self._open(path, os.O_WRONLY)
        file = AppendFile(self, path, fd, os.fstat(fd).st_size)
        try:
            file.truncate(size)
            file.fsync()
        finally:
            file.close()

    def makedirs(self, path: Path | str) -> None:
        """Create ``path`` and missing parents, fsyncing each parent so the new entries persist."""
        path = Path(path)
        missing: list[Path] = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            self._check(exc, path)
            raise
        for created in reversed(missing):
            self.fsync_dir(created.parent)

    def remove_temp_files(self, directory: Path | str) -> list[Path]:
        """Delete leftovers of interrupted ``write_atomic`` calls in ``directory``; returns what went."""
        directory = Path(directory)
        if not directory.is_dir():
            return []
        stale = [p for p in directory.iterdir() if p.name.startswith(".") and TEMP_MARKER in p.name]
        for p in stale:
            self.remove(p)
        if stale:
            self.fsync_dir(directory)
        return stale



def __getattr__(name: str) -> object:
    """``FaultyIO`` and ``PowerCutIO`` live in io_faults.py; importing them from here works too."""
    if name in ("FaultyIO", "PowerCutIO"):
        from vecdb.storage import io_faults

        return getattr(io_faults, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
