"""What BEBR would reach against 8-bit PQ with a tighter code format (a what-if, not the stored one).

The stored BEBR row is ``u`` bit planes of 64-bit words plus two float32 factors, so on a 50-d data
set every plane spends 64 bits and 8 bytes go to the factors: at u = 1, 2, 4 that is 16, 24 and 40
bytes, where 8-bit PQ spends 2.56, 3.84 and 6.4 bits per dimension. This script measures how much of
the gap the format explains: recall@10 (no re-rank, exact bit-plane kernels) with the factors rounded
to float16 and the bytes counted as a byte-granular format would store them
(``u * ceil(dim_out / 8) + 4``), next to our 8-bit PQ at those same bytes, and at the bytes of the
planes alone (as if the per-vector factors cost nothing).

    python bench/bebr_byte_budget.py ../shared/datasets/glove-50-euclidean.hdf5 --base-limit 100000

Writes ``bench/results/bebr-byte-budget-<dataset>.{jsonl,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from compression import RESULTS, Dataset, load, recall_of, train_sample
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from vecdb.quant import BEBRQuantizer, ProductQuantizer
from vecdb.quant.bebr_train import Settings

# (u, dim_out) pairs: the stored format's 64-bit planes, and 56 outputs (7 bytes a plane) for 50-d.
DEFAULT_CONFIGS = ("1:64", "2:64", "4:56", "4:64", "5:56")


def recall_no_rerank(ds: Dataset, distances: Callable[[np.ndarray], np.ndarray], quiet: bool) -> float:
    """Mean recall@10 of the 10 smallest estimates per query."""
    found = (np.argsort(distances(q), kind="stable")[:10] for q in ds.queries)
    pairs = zip(found, ds.truth, strict=True)
    return float(np.mean([recall_of(f, t) for f, t in tqdm(pairs, total=len(ds.truth), disable=quiet,
                                                              desc="queries", leave=False)]))


def fp16_factors(codes: np.ndarray) -> np.ndarray:
    """The codes with their two float32 factors rounded through float16 (what 4 bytes would hold)."""
    out = codes.copy()
    factors = out[:, -8:].view(np.float32)
    out[:, -8:] = factors.astype(np.float16).astype(np.float32).view(np.uint8)
    return out


def bebr_rows(ds: Dataset, configs: list[tuple[int, int]], args: argparse.Namespace) -> list[dict]:
    d = ds.base.shape[1]
    rows = []
    for u, dim_out in configs:
        for learned in (False, True):
            q = BEBRQuantizer(d, ds.metric, bits=u, dim_out=dim_out, learned=learned, seed=args.seed,
                              settings=Settings(progress=not args.quiet))
            start = time.perf_counter()
            q.train(ds.base)
            train_s = time.perf_counter() - start
            codes = fp16_factors(q.encode(ds.base))
            for mode in ("sdc", "asym"):
                rec = recall_no_rerank(ds, lambda x, q=q, c=codes, m=mode: q.distances(q.prepare(x, m), c),
                                       args.quiet)
                rows.append({"method": f"BEBR u={u} dim_out={dim_out} {'learned' if learned else 'baseline'} "
                             f"{mode.upper()}", "bytes": u * ((dim_out + 7) // 8) + 4,
                             "plane_bytes": u * ((dim_out + 7) // 8),
                             "stored_bytes": q.code_size, "recall@10": round(rec, 4),
                             "train_s": round(train_s, 1)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def pq_rows(ds: Dataset, budgets: list[int], args: argparse.Namespace) -> list[dict]:
    d = ds.base.shape[1]
    sample = train_sample(ds, args.pq_train_rows, args.seed)
    rows = []
    for m in sorted({min(b, d) for b in budgets}):
        pq = ProductQuantizer(d, ds.metric, m=m, bits=8, seed=args.seed, niter=args.pq_iters)
        pq.train(sample)
        codes = pq.encode(ds.base)
        rec = recall_no_rerank(ds, lambda x, pq=pq, c=codes: pq.distances(pq.prepare(x), c), args.quiet)
        rows.append({"method": f"PQ m={m} 8-bit", "bytes": pq.code_size, "stored_bytes": pq.code_size,
                     "recall@10": round(rec, 4)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def render(ds: Dataset, rows: list[dict], header: str) -> str:
    lines = [f"# BEBR byte budgets vs 8-bit PQ: {ds.name}", "", header, "",
             "| method | bytes (byte-granular, fp16 factors) | stored bytes today | recall@10 (no re-rank) |",
             "|---|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["bytes"], r["method"])):
        lines.append(f"| {r['method']} | {r['bytes']} | {r['stored_bytes']} | {r['recall@10']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path, help="ann-benchmarks HDF5 file")
    parser.add_argument("--base-limit", type=int, default=None)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS), help="u:dim_out pairs")
    parser.add_argument("--pq-train-rows", type=int, default=10000)
    parser.add_argument("--pq-iters", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    configs = [(int(u), int(k)) for u, k in (c.split(":") for c in args.configs)]
    ds = load(args.dataset, args.base_limit, args.queries, args.seed)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    with threadpool_limits(1):
        rows = bebr_rows(ds, configs, args)
        # PQ at the byte-granular budgets, and at the planes' bytes alone (as if the factors were free)
        rows += pq_rows(ds, sorted({r["bytes"] for r in rows} | {r["plane_bytes"] for r in rows}), args)
    header = (f"{ds.metric}; {ds.note}; {len(ds.queries)} queries; commit {commit}; one thread. Bytes: "
              "what a byte-granular BEBR format with float16 factors would store (recall measured with the "
              "factors rounded to float16); stored bytes: today's 64-bit planes and float32 factors.")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"bebr-byte-budget-{ds.name}"
    stem.with_suffix(".jsonl").write_text("".join(json.dumps({**r, "dataset": ds.name, "commit": commit}) + "\n"
                                                  for r in rows))
    stem.with_suffix(".md").write_text(render(ds, rows, header))
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
