"""Whitebox crash points: the workload dies at a named place inside the engine, then reopens clean.

Each point (``VECDB_CRASH_AT``) is reached ``VECDB_CRASH_SKIP`` times before the process exits with
``os._exit(137)``. After the crash the directory is reopened and must hold exactly the acknowledged
operations (the one in flight wholly or not at all), every id its own nearest neighbour, and pass
``verify_directory``. ``VECDB_CRASHPOINT_TRIALS`` (default 1) sets the trials (skip counts) per point.

A crash during recovery: a child leaves a large WAL unsealed, a second child reopening it is killed
part way through replay, and the third open must still hold every acknowledged write.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.crash.workload import check, check_self_neighbours, operations
from tests.reliability.harness import Child, child_env
from vecdb.engine.database import Database
from vecdb.engine.verify import verify_directory

POINTS = ("wal_append", "before_fsync", "segment_rename", "manifest_write", "index_swap", "compaction_commit")
TRIALS = int(os.environ.get("VECDB_CRASHPOINT_TRIALS", "1"))
OPS = 120


def verify_after_crash(data_dir: Path, seed: int, count: int, acked: int) -> None:
    """Reopen ``data_dir`` and check it against the model; then the offline verifier must agree."""
    ops = operations(seed, count)
    with Database.open(data_dir) as db:
        if not db.list_collections():
            assert acked == 0, f"{acked} ops were acknowledged but the collection is gone"
            return
        col = db.collection("c")
        check(col, ops, acked)
        check_self_neighbours(col)
    report = verify_directory(data_dir)
    assert report.ok, report.errors


@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize("point", POINTS)
def test_crash_point_loses_nothing(tmp_path: Path, point: str, trial: int) -> None:
    """Die at ``point`` (after a seeded number of passes), reopen, check against the model."""
    seed = 7 + trial
    skip = int(np.random.default_rng([POINTS.index(point), trial]).integers(0, 3)) + trial
    data_dir = tmp_path / "data"
    child = Child(["-m", "tests.reliability.crash_worker", str(data_dir), str(seed), str(OPS)],
                  child_env(VECDB_CRASH_AT=point, VECDB_CRASH_SKIP=str(skip)))
    code = child.finish()
    assert code == 137, f"the workload never reached crash point {point!r} (exit {code}): {child.lines[-3:]}"
    verify_after_crash(data_dir, seed, OPS, child.acked)


def test_crash_during_recovery(tmp_path: Path) -> None:
    """Kill the process that replays a big WAL at seeded moments, then reopen: nothing acked is lost."""
    data_dir, seed, count = tmp_path / "data", 11, int(os.environ.get("VECDB_RECOVERY_OPS", "300"))
    writer = Child(["-m", "tests.reliability.crash_worker", str(data_dir), str(seed), str(count), "nocheckpoint"],
                   child_env())
    assert writer.finish() == 0 and "done" in writer.lines, writer.lines[-3:]
    assert writer.acked == count
    rng = np.random.default_rng(seed)
    for attempt in range(2):
        reopen = Child(["-m", "tests.reliability.crash_worker", str(data_dir), str(seed), str(count), "reopen"],
                       child_env())
        assert reopen.wait_for(lambda lines: "opening" in lines, 120), reopen.lines
        # Kill somewhere inside the open: recovery reads, repairs the tail and replays the log.
        reopen.wait_for(lambda lines: "recovered" in lines, float(rng.uniform(0.05, 1.5)) * (attempt + 1))
        reopen.finish(kill=True)
    verify_after_crash(data_dir, seed, count, count)
