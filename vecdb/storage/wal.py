"""Write-ahead log: CRC-framed records with LSNs, group commit, torn-tail repair, strict corruption checks.

File format (little-endian), files named ``{first_lsn:020d}.wal``::

    frame := [u32 length][u32 crc32c][u64 lsn][u8 kind][payload: length bytes]
    crc32c covers lsn + kind + payload; LSNs are contiguous across the whole log.

Durability contract: ``append`` returns only after the frame is fsynced. Concurrent appenders share
fsyncs: whoever finds no fsync in flight becomes the leader and syncs everything written so far
while the others wait on a condition. Any failed write or fsync poisons the log: no retry, every
later append raises until the log is reopened (recovery then decides from what is really on disk).
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, NoReturn

import numpy as np

from vecdb.errors import DataLoss, FailedPrecondition, InvalidArgument, ResourceExhausted, VecdbError
from vecdb.storage.checksum import crc32c
from vecdb.storage.crashpoints import crash_point
from vecdb.storage.io import AppendFile, FileIO

log = logging.getLogger(__name__)

FRAME = struct.Struct("<IIQB")  # length, crc32c, lsn, kind
_LSN_KIND = struct.Struct("<QB")
HEADER_BYTES = FRAME.size  # 17
MAX_PAYLOAD = (1 << 32) - 1
_FILE_RE = re.compile(r"(\d{20})\.wal")
# Payloads below this size are copied behind the header so the frame goes out in one write().
_SMALL_PAYLOAD = 64 << 10
# Window of the vectorised scan for valid frames after a bad one (bounds its memory).
_SCAN_WINDOW = 1 << 22


class WalRecord(NamedTuple):
    lsn: int
    kind: int
    payload: bytes


class _LogFile:
    __slots__ = ("first_lsn", "path", "size")

    def __init__(self, first_lsn: int, path: Path, size: int) -> None:
        self.first_lsn = first_lsn
        self.path = path
        self.size = size


def _frame_problem(data: bytes, off: int) -> tuple[str | None, int]:
    """Check the frame at ``off``: (None, end offset) when valid, else (what is wrong, off)."""
    n = len(data)
    if n - off < HEADER_BYTES:
        return f"truncated frame header ({n - off} of {HEADER_BYTES} bytes)", off
    length, crc, _lsn, _kind = FRAME.unpack_from(data, off)
    end = off + HEADER_BYTES + length
    if end > n:
        return f"frame of {length} bytes runs past the end of the file ({n} bytes)", off
    body = memoryview(data)[off + 8 : end]
    if crc32c(body if length >= _SMALL_PAYLOAD else data[off + 8 : end]) != crc:
        return "checksum mismatch", off
    return None, end


def _valid_frame_after(data: bytes, start: int, lsn_floor: int) -> int | None:
    """Offset of a CRC-valid frame at or after ``start`` with an LSN above ``lsn_floor``, else None.

    Vectorised over windows: candidate offsets must hold a length that fits in the file and an LSN
    within the range a contiguous log could reach; only those are CRC-checked.
    """
    n = len(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    lsn_ceiling = lsn_floor + n // HEADER_BYTES + 2
    for lo in range(start, n - HEADER_BYTES + 1, _SCAN_WINDOW):
        hi = min(lo + _SCAN_WINDOW, n - HEADER_BYTES + 1)
        offs = np.arange(lo, hi, dtype=np.int64)
        cols = buf[offs[:, None] + np.arange(HEADER_BYTES - 1)]  # bytes 0..15 of each candidate header
        lengths = np.ascontiguousarray(cols[:, 0:4]).view("<u4").ravel().astype(np.int64)
        lsns = np.ascontiguousarray(cols[:, 8:16]).view("<u8").ravel()
        ok = (offs + HEADER_BYTES + lengths <= n) & (lsns > lsn_floor) & (lsns <= lsn_ceiling)
        for off in offs[ok]:
            if _frame_problem(data, int(off))[0] is None:
                return int(off)
    return None


class WriteAheadLog:
    """The log of one collection: ``recover`` once, then ``append`` from any number of threads."""

    def __init__(self, directory: Path | str, io: FileIO, *, file_bytes: int = 64 << 20) -> None:
        if file_bytes < HEADER_BYTES:
            raise InvalidArgument(f"file_bytes must be at least {HEADER_BYTES}, got {file_bytes}")
        self.directory = Path(directory)
        self._io = io
        self._file_bytes = file_bytes
        self._cond = threading.Condition(threading.Lock())
        self._files: list[_LogFile] = []  # oldest first; the last one is the current file
        self._current: AppendFile | None = None
        self._last_lsn = 0  # last LSN written (equal to durable_lsn whenever no append is in flight)
        self._durable_lsn = 0
        self._syncing = False
        self._poison: tuple[type[VecdbError], str] | None = None
        self._state = "new"  # new -> recovering -> open (or read-only) -> closed
        self._repair = True
        self._records_in_tail = 0
        self.torn_tail: tuple[Path, int] | None = None  # where recover() found (and cut) a torn tail
        io.makedirs(self.directory)

    # ---- recovery ----------------------------------------------------------------------------------

    def recover(self, after_lsn: int = 0, *, repair: bool = True) -> Iterator[WalRecord]:
        """Verify the whole log and yield the records with ``lsn > after_lsn``; consume it fully.

        A torn or invalid tail at the very end of the last file is truncated (logged). An invalid
        frame followed by any valid data, a gap or disorder in LSNs, or a log that no longer holds
        ``after_lsn + 1`` raises DataLoss naming the file and byte offset. Afterwards ``last_lsn`` is
        ``max(last valid LSN, after_lsn)`` and appends continue from there.
        ``repair=False`` changes nothing on disk (for offline checks): a torn tail is only reported
        in ``torn_tail`` and the log stays read-only.
        """
        if self._state != "new":
            raise FailedPrecondition(f"write-ahead log {self.directory}: recover() runs once, at open")
        self._state = "recovering"
        self._repair = repair
        found = self._list_files()
        prev: int | None = None
        for i, (first_lsn, path) in enumerate(found):
            if prev is not None and first_lsn != prev + 1:
                raise DataLoss(
                    f"{path}: offset 0: file starts at LSN {first_lsn} but the previous file ends at "
                    f"LSN {prev}; a log file is missing or misnamed"
                )
            data = path.read_bytes()
            off, expected = 0, first_lsn
            while off < len(data):
                problem, end = _frame_problem(data, off)
                if problem is not None:
                    self._bad_frame(path, data, off, problem, expected - 1, last=i == len(found) - 1)
                    data = data[:off]
                    break
                _, _, lsn, kind = FRAME.unpack_from(data, off)
                if lsn != expected:
                    raise DataLoss(f"{path}: offset {off}: record has LSN {lsn}, expected {expected}")
                if prev is None and after_lsn and lsn > after_lsn + 1:
                    raise DataLoss(
                        f"{path}: offset {off}: log starts at LSN {lsn} but records after LSN "
                        f"{after_lsn} are needed; LSNs {after_lsn + 1}..{lsn - 1} are missing"
                    )
                if lsn > after_lsn:
                    yield WalRecord(lsn, kind, data[off + HEADER_BYTES : end])
                prev, expected, off = lsn, lsn + 1, end
            if not data and i == len(found) - 1 and self.torn_tail is None:
                # Files are created at their first append, so an empty one is a tail cut at offset
                # 0: a crash as it was created (nothing acknowledged) or a truncation (records lost).
                self.torn_tail = (path, 0)
                log.warning("%s: empty log file: a crash as it was created, or truncated to nothing", path)
            self._files.append(_LogFile(first_lsn, path, len(data)))
            self._records_in_tail = expected - first_lsn
        self._finish_recovery(max(prev or 0, after_lsn))

    def _list_files(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            match = _FILE_RE.fullmatch(path.name)
            if match is not None:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def _bad_frame(self, path: Path, data: bytes, off: int, problem: str, prev: int, *, last: bool) -> None:
        """Truncate a torn tail of the last file, or raise DataLoss if valid data follows."""
        if not last:
            raise DataLoss(f"{path}: offset {off}: {problem}, and later log files exist")
        later = _valid_frame_after(data, off + 1, prev)
        if later is not None:
            raise DataLoss(f"{path}: offset {off}: {problem}, but a valid record follows at offset {later}")
        cut = len(data) - off
        self.torn_tail = (path, off)
        if not self._repair:
            log.warning("%s: offset %d: %s; torn tail of %d bytes (not repaired)", path, off, problem, cut)
            return
        log.warning("%s: offset %d: %s; truncating the torn tail (%d bytes)", path, off, problem, cut)
        self._io.truncate(path, off)

    def _finish_recovery(self, last_lsn: int) -> None:
        self._last_lsn = self._durable_lsn = last_lsn
        if not self._repair:
            self._state = "read-only"
            return
        tail = self._files[-1] if self._files else None
        if tail is not None and last_lsn and tail.first_lsn + self._records_in_tail > last_lsn + 1:
            # Only empty files remain and their name says records before them existed.
            raise DataLoss(
                f"{tail.path}: offset 0: the log resumes at LSN {tail.first_lsn} but LSNs "
                f"{last_lsn + 1}..{tail.first_lsn - 1} are missing"
            )
        if tail is not None and tail.first_lsn + self._records_in_tail != last_lsn + 1:
            # The manifest is ahead of everything in the log (all of it is covered): start over
            # with a correctly named file rather than leave an LSN gap inside or between files.
            for f in self._files:
                self._io.remove(f.path)
            self._io.fsync_dir(self.directory)
            self._files = []
        elif tail is not None:
            self._current = self._io.open_append(tail.path)
        self._state = "open"

    # ---- appending ---------------------------------------------------------------------------------

    def append(self, kind: int, payload: bytes | memoryview | object) -> int:
        """Write one record and return its LSN once it is durable (fsynced, shared with other threads)."""
        if not 0 <= kind <= 255:
            raise InvalidArgument(f"record kind must be in 0..255, got {kind}")
        view = memoryview(payload)  # type: ignore[arg-type]
        if not view.c_contiguous:
            view = memoryview(view.tobytes())  # a strided view cannot be written as one buffer
        elif view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if view.nbytes > MAX_PAYLOAD:
            raise InvalidArgument(f"record payload of {view.nbytes} bytes exceeds the 4 GiB frame limit")
        with self._cond:
            self._check_usable()
            self._roll_if_full()
            lsn = self._last_lsn + 1
            crc = crc32c(view, crc32c(_LSN_KIND.pack(lsn, kind)))
            header = FRAME.pack(view.nbytes, crc, lsn, kind)
            self._write_frame(header, view)
            self._last_lsn = lsn
            self._wait_durable(lsn)
        return lsn

    def _check_usable(self) -> None:
        if self._state != "open":
            what = {
                "closed": "is closed",
                "read-only": "was recovered with repair=False and is read-only",
            }.get(self._state, "needs recover() to be consumed first")
            raise FailedPrecondition(f"write-ahead log {self.directory} {what}")
        if self._poison is not None:
            raise self._poisoned()

    def _poisoned(self) -> VecdbError:
        """A fresh exception per caller (one shared instance would mix tracebacks across threads)."""
        assert self._poison is not None
        cls, message = self._poison
        return cls(message)

    def _file(self) -> AppendFile:
        if self._current is None:
            path = self.directory / f"{self._last_lsn + 1:020d}.wal"
            try:
                self._current = self._io.open_append(path)
                self._files.append(_LogFile(self._last_lsn + 1, path, 0))
                self._io.fsync_dir(self.directory)  # the new file's name must survive a power cut
            except (OSError, VecdbError) as exc:
                self._poison_with(exc, "creating a log file")
                self._raise_for_caller(exc)
        assert self._current is not None
        return self._current

    def _write_frame(self, header: bytes, view: memoryview) -> None:
        crash_point("wal_append")
        file = self._file()
        start = file.size
        try:
            if view.nbytes < _SMALL_PAYLOAD:
                file.write(header + view.tobytes())
            else:
                file.write(header)
                file.write(view)
        except (OSError, VecdbError) as exc:
            self._poison_with(exc, "write")
            try:
                file.truncate(start)  # leave no partial frame behind the last good one
            except (OSError, VecdbError):
                log.warning("%s: could not cut the failed frame at offset %d", file.path, start)
            self._files[-1].size = file.size
            self._raise_for_caller(exc)
        self._files[-1].size = file.size

    def _wait_durable(self, lsn: int) -> None:
        """Block (lock held on entry and exit) until ``lsn`` is fsynced, leading an fsync if none runs."""
        while self._durable_lsn < lsn:
            if self._poison is not None:
                raise self._poisoned()
            if self._state == "closed":
                raise FailedPrecondition(f"write-ahead log {self.directory} closed before LSN {lsn} was synced")
            if self._syncing:
                self._cond.wait()
                continue
            self._syncing = True
            target, file = self._last_lsn, self._file()
            self._cond.release()
            error: BaseException | None = None
            try:
                crash_point("before_fsync")
                file.fsync()
            except (OSError, VecdbError) as exc:
                error = exc
            finally:
                self._cond.acquire()
                self._syncing = False
                self._cond.notify_all()
            if error is not None:
                self._poison_with(error, "fsync")
                self._raise_for_caller(error)
            self._durable_lsn = max(self._durable_lsn, target)

    def _poison_with(self, exc: BaseException, what: str) -> None:
        if self._poison is not None:
            return
        where = self._current.path if self._current is not None else self.directory
        if isinstance(exc, ResourceExhausted):
            self._poison = (
                ResourceExhausted,
                f"write-ahead log {where}: disk full during {what}; the log must be reopened",
            )
        else:
            self._poison = (
                FailedPrecondition,
                f"write-ahead log {where}: {what} failed ({exc}); the log must be reopened",
            )
        self._cond.notify_all()

    def _raise_for_caller(self, exc: BaseException) -> NoReturn:
        """Disk full keeps its own error ("disk full writing <path>"); anything else says: reopen."""
        if isinstance(exc, ResourceExhausted):
            raise exc
        raise self._poisoned() from exc

    # ---- rolling and truncation --------------------------------------------------------------------

    def _roll_if_full(self) -> None:
        while self._current is not None and self._current.size >= self._file_bytes:
            if self._syncing:
                self._cond.wait()
                continue
            self._roll_locked()

    def _roll_locked(self) -> None:
        file = self._current
        if file is None or file.size == 0:
            return
        try:
            file.fsync()  # the old file is complete and durable before the next one exists
        except (OSError, VecdbError) as exc:
            self._poison_with(exc, "fsync")
            self._raise_for_caller(exc)
        self._durable_lsn = self._last_lsn
        file.close()
        self._current = None

    def roll(self) -> None:
        """Close the current file (if it holds records) so the next append starts a new one."""
        with self._cond:
            self._check_usable()
            while self._syncing:
                self._cond.wait()
            self._roll_locked()

    def truncate_through(self, lsn: int) -> None:
        """Delete the log files whose records all have LSN <= ``lsn`` (never the current file)."""
        with self._cond:
            doomed = []
            while self._files:
                head = self._files[0]
                if self._current is not None and head is self._files[-1]:
                    break  # the file being appended to stays
                last_in_head = self._files[1].first_lsn - 1 if len(self._files) > 1 else self._last_lsn
                if last_in_head > lsn:
                    break
                doomed.append(self._files.pop(0))
            for f in doomed:
                self._io.remove(f.path)
            if doomed:
                self._io.fsync_dir(self.directory)

    # ---- introspection -----------------------------------------------------------------------------

    @property
    def last_lsn(self) -> int:
        """The last LSN written (after recover: the last valid one, or ``after_lsn`` if larger)."""
        return self._last_lsn

    @property
    def durable_lsn(self) -> int:
        return self._durable_lsn

    @property
    def nbytes(self) -> int:
        """Total bytes in the log files."""
        with self._cond:
            return sum(f.size for f in self._files)

    @property
    def files(self) -> list[Path]:
        with self._cond:
            return [f.path for f in self._files]

    def close(self) -> None:
        """Close the current file; appends after this raise FailedPrecondition."""
        with self._cond:
            while self._syncing:
                self._cond.wait()
            if self._current is not None:
                self._current.close()
                self._current = None
            self._state = "closed"
            self._cond.notify_all()

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LogCheck(NamedTuple):
    """What ``check_log`` found: counts, the LSN range, and a torn tail (file, offset) if any."""

    files: int
    records: int
    first_lsn: int | None
    last_lsn: int
    nbytes: int
    torn_tail: tuple[Path, int] | None


def check_log(directory: Path | str, after_lsn: int = 0) -> LogCheck:
    """Verify a log offline without changing anything; raises DataLoss exactly where ``recover`` would."""
    directory = Path(directory)
    if not directory.is_dir():
        return LogCheck(0, 0, None, after_lsn, 0, None)
    wal = WriteAheadLog(directory, _ReadOnlyIO())
    first, count = None, 0
    for record in wal.recover(after_lsn, repair=False):
        first = record.lsn if first is None else first
        count += 1
    return LogCheck(len(wal.files), count, first, wal.last_lsn, wal.nbytes, wal.torn_tail)


class _ReadOnlyIO(FileIO):
    """A FileIO that refuses every mutation: ``check_log`` must never repair what it inspects."""

    def makedirs(self, path: Path | str) -> None:
        if not Path(path).is_dir():
            raise FailedPrecondition(f"{path}: not a directory")

    def _os_open(self, path: Path, flags: int) -> int:
        raise FailedPrecondition(f"{path}: the log is being checked read-only")

    def _os_rename(self, src: Path, dst: Path) -> None:
        raise FailedPrecondition(f"{dst}: the log is being checked read-only")

    def _os_remove(self, path: Path) -> None:
        raise FailedPrecondition(f"{path}: the log is being checked read-only")
