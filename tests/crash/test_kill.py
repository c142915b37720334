"""kill -9 and power-cut crash tests: nothing acknowledged is lost, nothing partial appears.

CI runs 20 kill trials; set VECDB_CRASH_TRIALS=100 (or more) for the full run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.crash.workload import DIM, check, check_self_neighbours, operations, run
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions
from vecdb.storage.io_faults import PowerCutIO

TRIALS = int(os.environ.get("VECDB_CRASH_TRIALS", "20"))
OPS = 400
ROOT = Path(__file__).resolve().parents[2]


def run_until_killed(data_dir: Path, seed: int, kill_after_s: float) -> int:
    """Start the worker, SIGKILL it after ``kill_after_s`` of work; return how many ops it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.worker", str(data_dir), str(seed), str(OPS)],
        stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acked = -1
    lines: list[str] = []

    def reader() -> None:
        for raw in proc.stdout:
            lines.append(raw.decode())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not any(line.startswith("ready") for line in lines) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    time.sleep(kill_after_s)
    proc.kill()
    proc.wait()
    thread.join(10)
    proc.stdout.close()
    for line in lines:
        if line.startswith("ack "):
            acked = int(line.split()[1])
    return acked + 1


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_loses_nothing_acknowledged(tmp_path, trial):
    rng = np.random.default_rng(trial)
    data_dir = tmp_path / "data"
    ops = operations(seed=trial, count=OPS)
    acked = run_until_killed(data_dir, trial, kill_after_s=float(rng.uniform(0.05, 3.0)))
    with Database.open(data_dir) as db:
        col = db.collection("c") if db.list_collections() else None
        if col is None:  # killed before the collection was created: nothing was acknowledged
            assert acked == 0
            return
        check(col, ops, acked)
        check_self_neighbours(col)


@pytest.mark.parametrize("trial", range(max(3, TRIALS // 4)))
def test_power_cut_keeps_every_synced_write(tmp_path, trial):
    """Drop every byte not fsynced at a random moment; all acknowledged writes must survive."""
    rng = np.random.default_rng(1000 + trial)
    io = PowerCutIO()
    data_dir = tmp_path / "data"
    ops = operations(seed=1000 + trial, count=120)
    cut_at = int(rng.integers(1, len(ops)))
    db = Database.open(data_dir, io=io, options=StoreOptions(seal_bytes=16 << 10, max_segments=4, background=False))
    col = db.create_collection("c", dim=DIM, metric="l2", schema={"version": "int64"})
    acked = 0

    def ack(i: int) -> None:
        nonlocal acked
        acked = i + 1

    run(col, ops[:cut_at], ack)
    io.power_cut()
    db.close(checkpoint=False)  # the process "dies": nothing more is written
    with Database.open(data_dir) as reopened:
        check(reopened.collection("c"), ops, acked)
