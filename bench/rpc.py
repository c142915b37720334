"""The cost of the wire: the same work embedded and over gRPC on localhost, in one run (issue 4).

- Streamed upsert: the whole set through ``RemoteCollection.upsert`` (client-streaming, ~4 MiB
  messages, each one a durable engine batch) vs embedded upserts of the same batch size.
- Batched search: batches of --batch queries, k=--k, flat index, vs the same calls embedded.

Targets: gRPC search >= 80% of embedded QPS, streamed upsert >= 70% of embedded durable throughput.

    python bench/rpc.py --rows 50000 --dim 384 --out bench/results/rpc.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.support.server when run as a script

import vecdb  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from vecdb.rpc.client import DEFAULT_CHUNK_BYTES, connect_remote  # noqa: E402


def upsert_rate(col: Any, ids: np.ndarray, x: np.ndarray, batch: int | None) -> float:
    """Vectors/s: one call (the client streams it) when batch is None, else calls of ``batch`` rows."""
    t0 = time.perf_counter()
    if batch is None:
        col.upsert(ids, x)
    else:
        for lo in range(0, len(ids), batch):
            col.upsert(ids[lo : lo + batch], x[lo : lo + batch])
    return len(ids) / (time.perf_counter() - t0)


def search_qps(col: Any, queries: np.ndarray, batch: int, k: int, rounds: int) -> float:
    """Queries/s of the best of ``rounds`` passes of batched searches."""
    col.search(queries[:batch], k=k)  # warm up (kernel dispatch, caches)
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for lo in range(0, len(queries), batch):
            col.search(queries[lo : lo + batch], k=k)
        best = max(best, len(queries) / (time.perf_counter() - t0))
    return best


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate embedded and gRPC rounds and keep each side's best: the machine may be shared."""
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.rows, args.dim)).astype(np.float32)
    ids = np.arange(args.rows, dtype=np.int64)
    queries = rng.standard_normal((args.queries, args.dim)).astype(np.float32)
    chunk_rows = max(1, DEFAULT_CHUNK_BYTES // (args.dim * 4 + 8))  # rows per stream message
    rates: dict[str, list[float]] = {
        "embedded_upsert_vps": [],
        "grpc_upsert_vps": [],
        "embedded_search_qps": [],
        "grpc_search_qps": [],
    }
    with tempfile.TemporaryDirectory(prefix="vecdb-rpc-bench-") as tmp:
        embedded = vecdb.connect(Path(tmp) / "embedded")
        server = ServerProcess(Path(tmp) / "served")
        server.start()
        me, served = psutil.Process(), psutil.Process(server.proc.pid)
        cpu: dict[str, list[float]] = {"embedded_upsert_cpu_s": [], "grpc_upsert_cpu_s": []}
        try:
            remote = connect_remote(server.uri)
            for r in range(args.rounds):
                # A fresh collection per round on each side, so every round does the same work.
                ecol = embedded.create_collection(f"bench{r}", args.dim, metric="l2")
                rcol = remote.create_collection(f"bench{r}", args.dim, metric="l2")
                # Alternate who goes first: fsync latency on a shared disk drifts within a round.
                for side in ("embedded", "grpc") if r % 2 == 0 else ("grpc", "embedded"):
                    before = _cpu(me), _cpu(served)
                    if side == "embedded":
                        rates["embedded_upsert_vps"].append(upsert_rate(ecol, ids, x, chunk_rows))
                    else:
                        rates["grpc_upsert_vps"].append(upsert_rate(rcol, ids, x, None))
                    cpu[f"{side}_upsert_cpu_s"].append(_cpu(me) - before[0] + _cpu(served) - before[1])
                if r + 1 < args.rounds:
                    embedded.drop_collection(f"bench{r}")
                    remote.drop_collection(f"bench{r}")
            ecol.optimize()
            rcol.optimize()
            for _ in range(args.rounds):
                rates["embedded_search_qps"].append(search_qps(ecol, queries, args.batch, args.k, 1))
                rates["grpc_search_qps"].append(search_qps(rcol, queries, args.batch, args.k, 1))
            remote.close()
        finally:
            server.stop()
            embedded.close()
    out: dict[str, Any] = {name: max(values) for name, values in rates.items()}
    out["all_rounds"] = rates
    # CPU seconds (client + server) per upsert pass: what the wire costs, whatever the disk does.
    out.update({name: min(values) for name, values in cpu.items()})
    out["search_ratio"] = out["grpc_search_qps"] / out["embedded_search_qps"]
    out["upsert_ratio"] = out["grpc_upsert_vps"] / out["embedded_upsert_vps"]
    # The same round's two sides ran back to back, so their ratio is less exposed to drift.
    out["search_ratio_paired_median"] = _paired_median(rates["grpc_search_qps"], rates["embedded_search_qps"])
    out["upsert_ratio_paired_median"] = _paired_median(rates["grpc_upsert_vps"], rates["embedded_upsert_vps"])
    out.update(
        rows=args.rows,
        dim=args.dim,
        k=args.k,
        batch=args.batch,
        queries=args.queries,
        upsert_batch_rows=chunk_rows,
        machine=platform.machine(),
        cpu_count=_cpus(),
        load_average=os.getloadavg()[0],
        python=platform.python_version(),
        commit=_commit(),
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    return out


def _paired_median(grpc_rates: list[float], embedded_rates: list[float]) -> float:
    return float(np.median([g / e for g, e in zip(grpc_rates, embedded_rates, strict=True)]))


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; best of each side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="append the result as one JSON line here")
    args = parser.parse_args()
    result = run(args)
    print(
        f"streamed upsert: grpc {result['grpc_upsert_vps']:,.0f} vec/s vs embedded "
        f"{result['embedded_upsert_vps']:,.0f} vec/s, best vs best ({result['upsert_ratio']:.0%}; "
        f"median of paired rounds {result['upsert_ratio_paired_median']:.0%}; target >= 70%)"
    )
    print(
        f"upsert CPU (client + server): grpc {result['grpc_upsert_cpu_s']:.2f}s vs embedded "
        f"{result['embedded_upsert_cpu_s']:.2f}s"
    )
    print(
        f"batched search:  grpc {result['grpc_search_qps']:,.0f} q/s vs embedded "
        f"{result['embedded_search_qps']:,.0f} q/s, best vs best ({result['search_ratio']:.0%}; "
        f"median of paired rounds {result['search_ratio_paired_median']:.0%}; target >= 80%)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
