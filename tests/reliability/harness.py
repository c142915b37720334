"""Shared pieces of the reliability suite: run a child process and collect its acknowledgements."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: this one, the repo on PYTHONPATH, one BLAS thread, plus ``extra``."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **extra}


class Child:
    """A subprocess whose stdout lines are collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, cwd=ROOT, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode().strip())

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float) -> bool:
        """Poll until ``predicate(lines)`` holds, the child exits, or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.lines):
                return True
            if self.proc.poll() is not None:
                self._reader.join(5)
                return predicate(self.lines)
            time.sleep(0.01)
        return False

    def finish(self, timeout: float = 300.0, *, kill: bool = False) -> int:
        """SIGKILL it (``kill``) or wait for it; return the exit code once stdout is drained."""
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    @property
    def acked(self) -> int:
        """How many operations were acknowledged (the workload acks op ``i`` as ``ack i``, in order)."""
        acks = [int(line.split()[1]) for line in self.lines if line.startswith("ack ")]
        return max(acks) + 1 if acks else 0
