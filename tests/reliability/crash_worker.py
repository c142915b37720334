"""Child process of the whitebox crash-point tests: the crash workload on an HNSW collection.

Usage: ``python -m tests.reliability.crash_worker DATA_DIR SEED COUNT [MODE]``. Prints ``ready`` once the
collection is open and ``ack <i>`` after each acknowledged operation; ``VECDB_CRASH_AT`` (read by
``vecdb.storage.crashpoints``) decides where it dies. Background work is off so that every seal,
compaction and index build happens on the workload's thread, in a reproducible order.

MODE ``nocheckpoint`` seals nothing (a huge memtable) and exits with ``os._exit`` after the last
ack, leaving everything in the WAL; MODE ``reopen`` only opens the directory (recovery) and prints
``recovered``: the crash-during-recovery test kills it part way.
"""

from __future__ import annotations

import os
import sys

import vecdb
from tests.crash.workload import DIM, operations, run
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions

OPTIONS = StoreOptions(seal_bytes=4 << 10, max_segments=4, index_min_rows=16, background=False)


def main() -> None:
    """Open (or create) collection ``c`` and run the seeded workload, acknowledging each op."""
    data_dir, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    mode = sys.argv[4] if len(sys.argv) > 4 else "crash"
    options = StoreOptions(seal_bytes=1 << 30, background=False) if mode == "nocheckpoint" else OPTIONS
    print("opening", flush=True)
    db = Database.open(data_dir, options=options)
    if mode == "reopen":
        print("recovered", flush=True)
        os._exit(0)
    try:
        col = db.collection("c")
    except vecdb.NotFound:
        col = db.create_collection("c", dim=DIM, metric="l2", index=vecdb.HNSW(m=8, ef_construction=32),
                                   schema={"version": "int64"})
    print("ready", flush=True)
    run(col, operations(seed, count), lambda i: print(f"ack {i}", flush=True))
    print("done", flush=True)
    if mode == "nocheckpoint":
        os._exit(0)
    db.close()


if __name__ == "__main__":
    main()
