"""The report card's crash run: N SIGKILL trials against a real `vecdb serve`, and N whitebox trials.

    python -m bench.crash_report --trials 200 --seconds 1800 --out bench/results/reliability-crash.json

Each server trial streams the seeded crash workload from a client, SIGKILLs the server after a
seeded delay, restarts it and compares with the model (tests/crash/workload.py). A failure is
classified as lost (an acknowledged id missing or holding old bytes), resurrected (an acknowledged
delete visible again) or partial (neither the acked state nor acked + the in-flight op). Stops early
when ``--seconds`` run out and says how many trials were done.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from pathlib import Path

import numpy as np

import vecdb
from tests.crash.workload import check, check_self_neighbours, operations
from tests.reliability.test_server_crash import OPS, stream_until_killed
from tests.support.server import ServerProcess


def classify(message: str) -> str:
    """Map a check() failure message to lost | resurrected | partial."""
    if "missing [" in message and "missing []" not in message:
        return "lost"
    if "resurrected/extra [" in message and "extra []" not in message:
        return "resurrected"
    return "partial"


def one_trial(root: Path, seed: int) -> dict[str, object]:
    """One kill/restart/check cycle in ``root``; returns the acked count and any problem."""
    delay = float(np.random.default_rng(seed).uniform(0.2, 4.0))
    server = ServerProcess(root / "data", "--workers", "4")
    server.start()
    try:
        acked = stream_until_killed(server, seed, delay)
        server.start()
        with vecdb.connect(server.uri, timeout=60.0) as db:
            col = db.collection("c")
            try:
                check(col, operations(seed, OPS), acked)
                check_self_neighbours(col)
                problem = None
            except AssertionError as exc:
                problem = str(exc)
    finally:
        server.stop(signal.SIGKILL)
    return {"seed": seed, "delay_s": round(delay, 3), "acked": acked, "problem": problem}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/reliability-crash.json"))
    args = parser.parse_args()
    start = time.monotonic()
    results = []
    for trial in range(args.trials):
        if time.monotonic() - start > args.seconds:
            break
        with tempfile.TemporaryDirectory(prefix="vecdb-crash-") as tmp:
            results.append(one_trial(Path(tmp), 5000 + trial))
        print(json.dumps(results[-1]), flush=True)
    kinds = [classify(str(r["problem"])) for r in results if r["problem"]]
    summary = {
        "trials": len(results), "trials_requested": args.trials, "ops_acked": sum(int(r["acked"]) for r in results),
        "lost": kinds.count("lost"), "resurrected": kinds.count("resurrected"), "partial": kinds.count("partial"),
        "seconds": round(time.monotonic() - start, 1), "ops_per_trial": OPS,
    }
    args.out.write_text(json.dumps({"summary": summary, "trials": results}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
