"""Test doubles for the I/O seam: a disk that fills up or fails fsync, and a power cut.

``FaultyIO`` fails after a byte budget (tearing the write that crosses it) or on every fsync.
``PowerCutIO`` remembers what was made durable (file sizes by fsync, directory entries by fsync_dir)
and ``power_cut()`` rewinds the files it wrote to exactly that state, as if the page cache was lost.
Both are real file-system implementations underneath; they only add failure and bookkeeping.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from vecdb.storage.io import FileIO


class FaultyIO(FileIO):
    """A FileIO whose disk fills up after ``fail_after_bytes`` bytes in total, or whose fsync fails.

    The write that crosses the budget is torn: its prefix reaches the file, then ``OSError(error)``
    is raised. ``fail_fsync=True`` makes every fsync raise EIO (an int picks another errno).
    ``heal()`` removes both faults. ``bytes_written`` and ``fsyncs`` count what got through.
    ``real_fsync=False`` skips the system call (tests whose durability is simulated run faster).
    """

    def __init__(
        self,
        fail_after_bytes: int | None = None,
        error: int = errno.ENOSPC,
        fail_fsync: bool | int = False,
        real_fsync: bool = True,
    ) -> None:
        self.fail_after_bytes = fail_after_bytes
        self.real_fsync = real_fsync
        self.error = error
        self.fail_fsync = fail_fsync
        self.bytes_written = 0
        self.fsyncs = 0
        self._mutex = threading.Lock()

    def heal(self) -> None:
        """Space is back and fsync works again."""
        self.fail_after_bytes = None
        self.fail_fsync = False

    def _fail(self, code: int, path: Path) -> OSError:
        return OSError(code, os.strerror(code), str(path))

    def _os_write(self, fd: int, path: Path, view: memoryview) -> int:
        with self._mutex:
            budget = self.fail_after_bytes
            if budget is None:
                n = os.write(fd, view)
                self.bytes_written += n
                return n
            remaining = budget - self.bytes_written
            if remaining <= 0:
                raise self._fail(self.error, path)
            # Like a real file system that fills up mid-write: a short write of what fits, and
            # the caller's next write() call fails. The caller's write is torn either way.
            n = os.write(fd, view[: min(remaining, view.nbytes)])
            self.bytes_written += n
            return n

    def _os_fsync(self, fd: int, path: Path) -> None:
        if self.fail_fsync is not False:
            code = errno.EIO if self.fail_fsync is True else int(self.fail_fsync)
            raise self._fail(code, path)
        if self.real_fsync:
            os.fsync(fd)
        self.fsyncs += 1


@dataclass
class _FileState:
    durable_size: int
    entry_durable: bool
    synced: bool = False  # ever fsynced: a file never fsynced does not survive a power cut at all


@dataclass
class _PendingOp:
    """A rename or removal not yet made durable by fsync_dir; undone by a power cut."""

    kind: str  # "rename" | "remove"
    src: str
    dst: str | None
    src_state: _FileState | None
    backup: str | None  # hard link keeping the overwritten/removed durable file alive
    backup_state: _FileState | None


class PowerCutIO(FaultyIO):
    """A FileIO that can lose everything not yet durable: ``power_cut()``.

    Model: a file's bytes are durable up to the size at its last fsync; a new directory entry (a
    creation, a rename's target, a removal) is durable once its directory is fsynced; a file never
    fsynced is lost entirely. Files that existed before this object first touched them count as
    fully durable; directories (``makedirs``) are assumed durable. Call ``power_cut()`` only
    after abandoning every object that used this IO (their descriptors would point at rewound files).
    """

    def __init__(self, **faults: object) -> None:
        super().__init__(**faults)  # type: ignore[arg-type]
        self._files: dict[str, _FileState] = {}
        self._pending: list[_PendingOp] = []
        self._backups = itertools.count()
        self._lock = threading.RLock()

    @staticmethod
    def _key(path: Path | str) -> str:
        return os.path.abspath(path)

    def _state(self, key: str) -> _FileState | None:
        """The tracked state of ``key``, adopting an untracked existing file as fully durable."""
        state = self._files.get(key)
        if state is None and os.path.isfile(key):
            state = _FileState(os.path.getsize(key), True, True)
            self._files[key] = state
        return state

    def _backup(self, key: str) -> str:
        name = f".{os.path.basename(key)}.powercut-{next(self._backups)}"
        backup = os.path.join(os.path.dirname(key), name)
        os.link(key, backup)
        return backup

    def _os_open(self, path: Path, flags: int) -> int:
        with self._lock:
            key = self._key(path)
            if self._state(key) is None:
                self._files[key] = _FileState(0, False)
            return super()._os_open(path, flags)

    def _os_fsync(self, fd: int, path: Path) -> None:
        super()._os_fsync(fd, path)
        with self._lock:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                self._commit_dir(self._key(path))
                return
            state = self._state(self._key(path))
            if state is not None:
                state.durable_size = os.fstat(fd).st_size
                state.synced = True

    def _commit_dir(self, dir_key: str) -> None:
        for key, state in self._files.items():
            if os.path.dirname(key) == dir_key:
                state.entry_durable = True
        keep = []
        for op in self._pending:
            where = op.dst if op.kind == "rename" else op.src
            if os.path.dirname(where or "") == dir_key:
                if op.backup is not None and os.path.exists(op.backup):
                    os.unlink(op.backup)
            else:
                keep.append(op)
        self._pending = keep

    def _os_truncate(self, fd: int, path: Path, size: int) -> None:
        super()._os_truncate(fd, path, size)
        with self._lock:
            state = self._state(self._key(path))
            if state is not None:
                state.durable_size = min(state.durable_size, size)

    def _os_rename(self, src: Path, dst: Path) -> None:
        with self._lock:
            skey, dkey = self._key(src), self._key(dst)
            src_state = self._state(skey)
            old = self._state(dkey)
            backup = self._backup(dkey) if old is not None and old.entry_durable else None
            super()._os_rename(src, dst)
            moved = _FileState(src_state.durable_size, False, src_state.synced) if src_state else _FileState(0, False)
            self._files.pop(skey, None)
            self._files[dkey] = moved
            self._pending.append(_PendingOp("rename", skey, dkey, src_state, backup, old))

    def _os_remove(self, path: Path) -> None:
        with self._lock:
            key = self._key(path)
            state = self._state(key)
            backup = self._backup(key) if state is not None and state.entry_durable else None
            super()._os_remove(path)
            self._files.pop(key, None)
            if backup is not None:
                self._pending.append(_PendingOp("remove", key, None, state, backup, None))

    def power_cut(self) -> None:
        """Rewind every file this IO wrote to its durable state, then forget the history."""
        with self._lock:
            for op in reversed(self._pending):
                self._undo(op)
            self._pending.clear()
            for key, state in self._files.items():
                if not os.path.exists(key):
                    continue
                if not (state.entry_durable and state.synced):
                    os.unlink(key)
                elif os.path.getsize(key) > state.durable_size:
                    os.truncate(key, state.durable_size)
            self._files.clear()

    def _undo(self, op: _PendingOp) -> None:
        if op.kind == "rename":
            assert op.dst is not None
            if os.path.exists(op.dst):
                if op.src_state is not None and op.src_state.entry_durable:
                    os.replace(op.dst, op.src)  # the rename never happened
                else:
                    os.unlink(op.dst)  # the source never existed durably either
            self._files.pop(op.dst, None)
            if op.src_state is not None:
                self._files[op.src] = op.src_state
            if op.backup is not None and op.backup_state is not None:
                os.replace(op.backup, op.dst)
                self._files[op.dst] = op.backup_state
        elif op.backup is not None and op.src_state is not None:
            os.replace(op.backup, op.src)  # the removal never happened
            self._files[op.src] = op.src_state


class SimulatedCrash(BaseException):
    """Raised by CrashingIO at its crash point; a BaseException so no ``except Exception`` swallows it."""


class CrashingIO(PowerCutIO):
    """A PowerCutIO that "loses power" at its ``crash_at``-th file-system operation.

    Every primitive (open, write, fsync, rename, remove, truncate) counts as one operation. At the
    crash point it raises SimulatedCrash, and from then on every operation raises again without
    touching the disk, so cleanup code cannot run either (as in a real crash). Call ``power_cut()``
    afterwards to rewind to the durable state. Sweeping ``crash_at`` over ``range(ops)`` of a clean
    run visits every crash point of a code path.
    """

    def __init__(self, crash_at: int | None = None, **faults: object) -> None:
        super().__init__(**faults)
        self.crash_at = crash_at
        self.ops = 0
        self.crashed = False

    def _tick(self) -> None:
        if self.crashed:
            raise SimulatedCrash("the process already crashed")
        self.ops += 1
        if self.crash_at is not None and self.ops > self.crash_at:
            self.crashed = True
            raise SimulatedCrash(f"crash at operation {self.crash_at}")

    def _os_open(self, path: Path, flags: int) -> int:
        self._tick()
        return super()._os_open(path, flags)

    def _os_write(self, fd: int, path: Path, view: memoryview) -> int:
        self._tick()
        return super()._os_write(fd, path, view)

    def _os_fsync(self, fd: int, path: Path) -> None:
        self._tick()
        super()._os_fsync(fd, path)

    def _os_rename(self, src: Path, dst: Path) -> None:
        self._tick()
        super()._os_rename(src, dst)

    def _os_remove(self, path: Path) -> None:
        self._tick()
        super()._os_remove(path)

    def _os_truncate(self, fd: int, path: Path, size: int) -> None:
        self._tick()
        super()._os_truncate(fd, path, size)
