"""SIGKILL a real `vecdb serve` in the middle of a client's stream of acknowledged writes.

A client thread runs the crash workload (upserts of 1/5/50 rows, deletes, optimize) over gRPC and
records every acknowledged operation; the test SIGKILLs the server after a seeded delay, restarts it
over the same data directory and demands, through the client again: every acknowledged write
present byte for byte, every acknowledged delete absent, the in-flight operation wholly applied or
wholly absent, and every id its own nearest neighbour under exact search.

CI runs ``VECDB_SERVER_CRASH_TRIALS=2`` trials (the default); the report's run uses 200.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import vecdb
from tests.crash.workload import DIM, check, check_self_neighbours, operations, run
from tests.support.server import ServerProcess

TRIALS = int(os.environ.get("VECDB_SERVER_CRASH_TRIALS", "2"))
OPS = 400


class AckCounter:
    """Counts acknowledged operations; the client thread's failure (server gone) is expected."""

    def __init__(self) -> None:
        self.acked = 0
        self.error: BaseException | None = None

    def __call__(self, index: int) -> None:
        self.acked = index + 1


def stream_until_killed(server: ServerProcess, seed: int, kill_after_s: float) -> int:
    """Run the workload from a client thread, SIGKILL the server after ``kill_after_s``; return acks."""
    counter = AckCounter()
    db = vecdb.connect(server.uri, retries=0, timeout=30.0)
    col = db.create_collection("c", dim=DIM, metric="l2", schema={"version": "int64"})

    def client() -> None:
        try:
            run(col, operations(seed, OPS), counter)
        except vecdb.VecdbError as exc:  # the server died under the call: not acknowledged
            counter.error = exc

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    thread.join(kill_after_s)
    server.stop(signal.SIGKILL)
    thread.join(60)
    assert not thread.is_alive(), "the client hung after the server died"
    db.close()
    return counter.acked


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_server_loses_nothing_acknowledged(tmp_path: Path, trial: int) -> None:
    """Kill -9 during the stream, restart, compare with the model through the client."""
    seed = 5000 + trial
    delay = float(np.random.default_rng(seed).uniform(0.2, 4.0))
    server = ServerProcess(tmp_path / "data", "--workers", "4")
    server.start()
    try:
        acked = stream_until_killed(server, seed, delay)
        server.start()
        with vecdb.connect(server.uri, timeout=60.0) as db:
            col = db.collection("c")
            check(col, operations(seed, OPS), acked)
            check_self_neighbours(col)
    finally:
        server.stop(signal.SIGKILL)
