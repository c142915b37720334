"""Child process of the kill -9 test: runs the workload and prints each acknowledged op index."""

from __future__ import annotations

import sys

import vecdb
from tests.crash.workload import DIM, operations, run
from vecdb.engine.database import Database
from vecdb.engine.store import StoreOptions


def main() -> None:
    data_dir, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    # Tiny seal threshold: seals, deletion bitmaps and compactions happen all the time.
    db = Database.open(data_dir, options=StoreOptions(seal_bytes=16 << 10, max_segments=4))
    try:
        col = db.collection("c")
    except vecdb.NotFound:
        col = db.create_collection("c", dim=DIM, metric="l2", schema={"version": "int64"})
    print("ready", flush=True)
    run(col, operations(seed, count), lambda i: print(f"ack {i}", flush=True))
    print("done", flush=True)


if __name__ == "__main__":
    main()
