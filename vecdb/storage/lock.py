"""One process per data directory: an flock on ``<dir>/LOCK``, which holds the owner's pid.

flock locks belong to an open file description, so a second ``acquire`` fails both in another
process and in this one (a second ``connect`` on the same directory). The kernel drops the lock
when the owner dies, so a crashed process never leaves the directory locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from vecdb.errors import FailedPrecondition


class DirectoryLock:
    """``path``: the data directory (locks ``path/LOCK``) or the lock file itself."""

    def __init__(self, path: Path | str) -> None:
        path = Path(path)
        if path.is_dir():
            self.directory, self.lock_path = path, path / "LOCK"
        else:
            self.directory, self.lock_path = path.parent, path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DirectoryLock:
        """Take the lock or raise FailedPrecondition("data directory <dir> is in use by pid N")."""
        if self._fd is not None:
            raise FailedPrecondition(f"data directory {self.directory} is already locked by this handle")
        # The lock file is not data: it needs no fsync and does not go through FileIO.
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f"pid {owner}" if owner.isdigit() else "another process (pid not yet recorded)"
            raise FailedPrecondition(f"data directory {self.directory} is in use by {who}") from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (idempotent); the pid is cleared so no stale owner is ever reported."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
