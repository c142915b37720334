"""Compression benchmark (issue 7): bytes/vector, recall@10 with and without re-ranking, one-thread scan
throughput and training time for fp32, fp16, SQ8, PQ, BEBR and faiss's PQ / SQ8 / RaBitQ.

    python bench/compression.py /work/shared/datasets/npm-minilm-384-angular.hdf5 \
        /work/shared/datasets/glove-50-euclidean.hdf5 --base-limit 100000 --queries 500

Everything runs on one thread (BLAS, OpenMP, numba) so throughputs compare kernels, not core counts.
Recall@10 is against the exact top-10 of the (possibly subsampled) base: ann-benchmarks' neighbours when
the base is whole, faiss IndexFlat ground truth otherwise. "rerank r" re-scores the best 10*r candidates
of the compressed scan with the fp32 vectors (``vecdb.quant.rerank``). Results: JSON lines and a
markdown table under bench/results/ (compression-results.jsonl / .md).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import h5py
import numpy as np
from threadpoolctl import threadpool_limits

from vecdb import kernels
from vecdb.quant import BEBRQuantizer, ProductQuantizer, ScalarQuantizer, rerank
from vecdb.quant.bebr_train import Settings

RERANKS = (2, 4, 10)
THROUGHPUT_QUERIES = 20
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Dataset:
    name: str
    metric: str
    base: np.ndarray  # (n, d) float32
    queries: np.ndarray  # (q, d) float32
    truth: np.ndarray  # (q, 10) int64
    note: str = ""


@dataclass
class Row:
    """One method's measurements on one dataset."""

    dataset: str
    method: str
    family: str
    bytes_per_vector: float
    train_s: float
    recall: dict[str, float] = field(default_factory=dict)
    scan_vps: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def load(path: Path, base_limit: int | None, n_queries: int, seed: int) -> Dataset:
    """ann-benchmarks HDF5 -> float32 arrays; a seeded base subsample gets faiss exact ground truth."""
    with h5py.File(path, "r") as f:
        base = np.asarray(f["train"], dtype=np.float32)
        queries = np.asarray(f["test"][:n_queries], dtype=np.float32)
        truth = np.asarray(f["neighbors"][:n_queries, :10], dtype=np.int64)
        metric = {"angular": "cosine", "euclidean": "l2"}[str(f.attrs["distance"])]
    note = f"full base ({len(base)} rows), ann-benchmarks ground truth"
    if base_limit is not None and base.shape[0] > base_limit:
        keep = np.sort(np.random.default_rng(seed).choice(base.shape[0], base_limit, replace=False))
        full = base.shape[0]
        base = np.ascontiguousarray(base[keep])
        truth = exact_top10(base, queries, metric)
        note = f"base subsampled {base_limit} of {full} rows (seed {seed}), faiss IndexFlat ground truth"
    return Dataset(path.stem, metric, base, queries, truth, note)


def exact_top10(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(normalise(base))
        _, ids = index.search(normalise(queries), 10)
    else:
        index = faiss.IndexFlatL2(base.shape[1])
        index.add(base)
        _, ids = index.search(queries, 10)
    return ids.astype(np.int64)


def normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def recall_of(found: np.ndarray, truth: np.ndarray) -> float:
    return len(np.intersect1d(found[:10], truth)) / 10.0


def evaluate_scan(ds: Dataset, scan: Callable[[np.ndarray], np.ndarray]) -> tuple[dict[str, float], float]:
    """Recall (no re-rank, re-rank r) of a full compressed scan, and its one-thread vectors/s."""
    top = 10 * max(RERANKS)
    sums = {"r0": 0.0, **{f"r{r}": 0.0 for r in RERANKS}}
    for query, truth in zip(ds.queries, ds.truth, strict=True):
        est = scan(query)
        cand = np.argpartition(est, top)[:top]
        cand = cand[np.lexsort((cand, est[cand]))]
        sums["r0"] += recall_of(cand, truth)
        for r in RERANKS:
            ids, _ = rerank(query, cand[: 10 * r], ds.base, ds.metric, 10)
            sums[f"r{r}"] += recall_of(ids, truth)
    start = time.perf_counter()
    for query in ds.queries[:THROUGHPUT_QUERIES]:
        scan(query)
    vps = THROUGHPUT_QUERIES * ds.base.shape[0] / (time.perf_counter() - start)
    return {k: v / len(ds.queries) for k, v in sums.items()}, vps


def evaluate_faiss(ds: Dataset, index: Any, queries: np.ndarray) -> tuple[dict[str, float], float]:
    """Same measurements for a faiss index (its own search, k = 100, then our exact re-rank)."""
    top = 10 * max(RERANKS)
    _, ids = index.search(queries, top)
    sums = {"r0": 0.0, **{f"r{r}": 0.0 for r in RERANKS}}
    for query, truth, cand in zip(ds.queries, ds.truth, ids, strict=True):
        sums["r0"] += recall_of(cand, truth)
        for r in RERANKS:
            found, _ = rerank(query, cand[: 10 * r], ds.base, ds.metric, 10)
            sums[f"r{r}"] += recall_of(found, truth)
    start = time.perf_counter()
    for q in queries[:THROUGHPUT_QUERIES]:
        index.search(q[None, :], 10)
    vps = THROUGHPUT_QUERIES * ds.base.shape[0] / (time.perf_counter() - start)
    return {k: v / len(ds.queries) for k, v in sums.items()}, vps


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_sample(ds: Dataset, rows: int, seed: int) -> np.ndarray:
    if ds.base.shape[0] <= rows:
        return ds.base
    return ds.base[np.sort(np.random.default_rng(seed).choice(ds.base.shape[0], rows, replace=False))]


def run_ours(ds: Dataset, args: argparse.Namespace, rows: list[Row]) -> None:
    """fp32, fp16, SQ8, PQ (8 and 4 bit) and BEBR (u = 1, 2, 4; learned or not; SDC and asymmetric)."""
    d = ds.base.shape[1]
    sample = train_sample(ds, args.train_rows, args.seed)

    def add(method: str, family: str, nbytes: float, train_s: float, scan: Callable, **extra: Any) -> None:
        rec, vps = evaluate_scan(ds, scan)
        rows.append(Row(ds.name, method, family, nbytes, train_s, rec, vps, extra))
        print(json.dumps(asdict_row(rows[-1])), flush=True)

    add("fp32 (exact scan)", "fp32", 4 * d, 0.0, lambda q: kernels.distances(q, ds.base, ds.metric))
    for bits, label in ((16, "fp16"), (8, "SQ8")):
        sq = ScalarQuantizer(d, ds.metric, bits=bits)
        t = timed(lambda sq=sq: sq.train(sample))
        codes = sq.encode(ds.base)
        add(label, "sq", sq.code_size, t, lambda q, sq=sq, c=codes: sq.distances(sq.prepare(q), c))
    pq_sample = train_sample(ds, args.pq_train_rows, args.seed)
    for m, bits in pq_grid(d, ds.name):
        pq = ProductQuantizer(d, ds.metric, m=m, bits=bits, seed=args.seed, niter=args.pq_iters)
        t = timed(lambda pq=pq, s=pq_sample: pq.train(s))
        codes = pq.encode(ds.base)
        if bits == 8:
            scan = lambda q, pq=pq, c=codes: pq.distances(pq.prepare(q), c)  # noqa: E731
        else:
            packed = pq.fastscan_layout(codes)
            scan = lambda q, pq=pq, p=packed: pq.fastscan(pq.prepare(q), p, len(ds.base))  # noqa: E731
        add(f"PQ m={m} {bits}-bit" + (" fast-scan" if bits == 4 else ""), "pq", pq.code_size, t, scan)
    # The last 64-bit word of each plane is stored whole anyway, so BEBR fills it: same bytes, more bits.
    dim_out = args.dim_out or 64 * ((d + 63) // 64)
    for u in (1, 2, 4):
        for learned in (False, True):
            q = BEBRQuantizer(d, ds.metric, bits=u, dim_out=dim_out, learned=learned, seed=args.seed,
                              train_rows=args.train_rows, settings=Settings(progress=not args.quiet))
            t = timed(lambda q=q: q.train(ds.base))
            layout = q.scan_layout(q.encode(ds.base))
            for mode in ("sdc", "asym"):
                name = f"BEBR u={u} {'learned' if learned else 'baseline'} {mode.upper()}"
                add(name, "bebr", q.code_size, t, lambda x, q=q, m=mode, lay=layout: q.scan(q.prepare(x, m), lay),
                    selected_stages=dict(q.report))


def pq_grid(d: int, name: str) -> list[tuple[int, int]]:
    """PQ settings spanning the byte budgets of the other rows (m sub-quantizers, bits)."""
    words = (d + 63) // 64
    bebr_bytes = [(u * words + 1) * 8 for u in (1, 2, 4)]
    grid = [(min(b, d), 8) for b in bebr_bytes]  # 8-bit PQ at BEBR's exact byte budgets
    grid += [(min(2 * b, d), 4) for b in bebr_bytes if 2 * b <= d]  # 4-bit fast-scan, same bytes
    return sorted(set(grid), key=lambda mb: (mb[1], mb[0]))


def faiss_indexes(
    ds: Dataset, args: argparse.Namespace, sample: np.ndarray, kmeans_iters: int
) -> list[tuple[str, Any, np.ndarray, float]]:
    """faiss's SQ8, PQ (m dividing d, nearest to BEBR's budgets) and RaBitQ (1, 2, 4 bits), trained on
    ``sample`` and filled with the base -> (name, index, the queries in the index's space, train s)."""
    d = ds.base.shape[1]
    cosine = ds.metric == "cosine"
    base = normalise(ds.base) if cosine else ds.base
    queries = normalise(ds.queries) if cosine else ds.queries
    sample = normalise(sample) if cosine else sample
    metric = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
    words = (d + 63) // 64
    divisors = [m for m in range(1, d + 1) if d % m == 0]
    pq_ms = sorted({min(divisors, key=lambda m, b=(u * words + 1) * 8: abs(m - b)) for u in (1, 2, 4)})
    makers: list[tuple[str, Callable[[], Any]]] = [
        ("faiss SQ8", lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, metric)),
        *[(f"faiss PQ m={m} 8-bit", lambda m=m: faiss.IndexPQ(d, m, 8, metric)) for m in pq_ms],
        *[(f"faiss RaBitQ {b}-bit", lambda b=b: faiss.IndexRaBitQ(d, metric, b)) for b in (1, 2, 4)],
    ]
    out = []
    for name, make in makers:
        index = make()
        if isinstance(index, faiss.IndexPQ):
            index.pq.cp.niter = kmeans_iters  # same k-means budget as our PQ
        train_s = timed(lambda index=index: index.train(sample))
        index.add(base)
        out.append((name, index, queries, train_s))
    return out


def run_faiss(ds: Dataset, args: argparse.Namespace, rows: list[Row]) -> None:
    """faiss rows, measured like ours (recall of its own search, our exact re-rank)."""
    sample = train_sample(ds, args.pq_train_rows, args.seed)
    for name, index, queries, train_s in faiss_indexes(ds, args, sample, args.pq_iters):
        rec, vps = evaluate_faiss(ds, index, queries)
        rows.append(Row(ds.name, name, "faiss", float(index.sa_code_size()), train_s, rec, vps,
                        {"throughput": "faiss search k=10, one thread"}))
        print(json.dumps(asdict_row(rows[-1])), flush=True)


def throughput_pass(ds: Dataset, args: argparse.Namespace) -> dict[str, float]:
    """Scan-only throughput (vectors/s, one thread), best of ``--repeats`` interleaved rounds.

    On a shared machine single timings swing with other jobs; the best of several interleaved rounds
    is the stable number. Models are trained cheaply (tiny samples, few k-means iterations) because a
    scan's cost depends only on the code layout; learned BEBR shares the baseline's layout and kernels.
    """
    d = ds.base.shape[1]
    sample = train_sample(ds, 5000, args.seed)
    scans: dict[str, Callable[[np.ndarray], Any]] = {
        "fp32 (exact scan)": lambda q: kernels.distances(q, ds.base, ds.metric)}
    for bits, label in ((16, "fp16"), (8, "SQ8")):
        sq = ScalarQuantizer(d, ds.metric, bits=bits)
        sq.train(sample)
        codes = sq.encode(ds.base)
        scans[label] = lambda q, sq=sq, c=codes: sq.distances(sq.prepare(q), c)
    for m, bits in pq_grid(d, ds.name):
        pq = ProductQuantizer(d, ds.metric, m=m, bits=bits, seed=args.seed, niter=2)
        pq.train(sample[:2000])
        codes = pq.encode(ds.base)
        if bits == 8:
            scans[f"PQ m={m} 8-bit"] = lambda q, pq=pq, c=codes: pq.distances(pq.prepare(q), c)
        else:
            packed = pq.fastscan_layout(codes)
            scans[f"PQ m={m} 4-bit fast-scan"] = lambda q, pq=pq, p=packed: pq.fastscan(
                pq.prepare(q), p, len(ds.base))
    dim_out = args.dim_out or 64 * ((d + 63) // 64)
    for u in (1, 2, 4):
        bq = BEBRQuantizer(d, ds.metric, bits=u, dim_out=dim_out, learned=False, seed=args.seed)
        bq.train(sample)
        layout = bq.scan_layout(bq.encode(ds.base))
        for mode in ("sdc", "asym"):
            scans[f"BEBR u={u} baseline {mode.upper()}"] = (
                lambda q, bq=bq, m=mode, lay=layout: bq.scan(bq.prepare(q, m), lay))
    for name, index, _, _ in faiss_indexes(ds, args, sample, kmeans_iters=2):
        scans[name] = lambda q, index=index: index.search(q[None, :], 10)
    best = dict.fromkeys(scans, 0.0)
    queries = ds.queries[:THROUGHPUT_QUERIES]
    for _ in range(args.repeats):
        for name, scan in scans.items():
            start = time.perf_counter()
            for q in queries:
                scan(q)
            best[name] = max(best[name], len(queries) * ds.base.shape[0] / (time.perf_counter() - start))
    return best


def render(out: Path) -> None:
    """compression-results.md from the JSON lines (throughput column from the best-of-N pass if present)."""
    rows = [json.loads(line) for line in (out / "compression-results.jsonl").read_text().splitlines()]
    tp_path = out / "compression-throughput.jsonl"
    ctx = rows[0]
    # The latest pass over a base of the same size, on the same kernels (the SIMD level is in
    # "threads"), as the recall run's: a pass on another machine must not fill this table.
    tp = {}
    if tp_path.exists():
        for line in tp_path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("threads") == ctx["threads"]:
                tp[(rec["dataset"], rec["method"], rec.get("base_rows"))] = rec["scan_vectors_per_s"]
    lines = [f"Machine: {ctx['machine']}; commit {ctx['commit']}; {ctx['threads']}.",
             "scan Mvec/s: best of the interleaved throughput pass (learned BEBR has the baseline's layout "
             "and kernels); faiss rows time faiss's own search (k=10). 'single' is the one timing taken "
             "during the recall run on the shared machine.", ""]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == name]
        lines += [f"### {name} ({sub[0].get('note', '')})", "",
                  "| method | bytes/vec | recall@10 | rerank 2 | rerank 4 | rerank 10 | scan Mvec/s | single "
                  "| train s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in sub:
            size = r.get("base_rows")
            best = tp.get((name, r["method"].replace("learned", "baseline"), size), tp.get((name, r["method"], size)))
            lines.append(
                f"| {r['method']} | {r['bytes_per_vector']:g} | {r['recall@10']:.3f} "
                f"| {r['recall@10_rerank2']:.3f} | {r['recall@10_rerank4']:.3f} | {r['recall@10_rerank10']:.3f} "
                f"| {'-' if best is None else f'{best / 1e6:.1f}'} | {r['scan_vectors_per_s'] / 1e6:.1f} "
                f"| {r['train_s']:.1f} |")
        lines.append("")
    (out / "compression-results.md").write_text("\n".join(lines))


def asdict_row(row: Row) -> dict[str, Any]:
    return {
        "dataset": row.dataset, "method": row.method, "family": row.family,
        "bytes_per_vector": row.bytes_per_vector, "train_s": round(row.train_s, 2),
        **{("recall@10" if k == "r0" else f"recall@10_rerank{k[1:]}"): round(v, 4) for k, v in row.recall.items()},
        "scan_vectors_per_s": round(row.scan_vps), **row.extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="*", type=Path, help="ann-benchmarks HDF5 files")
    parser.add_argument("--base-limit", type=int, default=None, help="subsample the base to this many rows")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--train-rows", type=int, default=20000)
    parser.add_argument("--pq-train-rows", type=int, default=10000, help="k-means sample for PQ / faiss")
    parser.add_argument("--pq-iters", type=int, default=10, help="k-means iterations for PQ / faiss PQ")
    parser.add_argument("--dim-out", type=int, default=0, help="BEBR output dimension (0 = 64*ceil(d/64))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--throughput-only", action="store_true",
                        help="only the best-of-N scan throughput pass (compression-throughput.jsonl)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the throughput pass")
    parser.add_argument("--render", action="store_true", help="only rebuild the markdown from the JSON lines")
    args = parser.parse_args()
    if args.render:
        render(args.out)
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    context = {"machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
               "commit": commit, "threads": "one thread for BLAS/OpenMP/faiss, kernels " +
               str(kernels.info().get("simd_level"))}
    rows: list[Row] = []
    notes = {}
    sizes = {}
    args.out.mkdir(parents=True, exist_ok=True)
    faiss.omp_set_num_threads(1)
    with threadpool_limits(1):
        for path in args.datasets:
            ds = load(path, args.base_limit, args.queries, args.seed)
            notes[ds.name] = f"{ds.metric}; {ds.note}; {len(ds.queries)} queries"
            sizes[ds.name] = len(ds.base)
            print(f"# {ds.name}: {ds.note}", flush=True)
            if args.throughput_only:
                with open(args.out / "compression-throughput.jsonl", "a") as f:
                    for method, vps in throughput_pass(ds, args).items():
                        rec = {"dataset": ds.name, "method": method, "scan_vectors_per_s": round(vps),
                               "base_rows": len(ds.base), "repeats": args.repeats, **context}
                        f.write(json.dumps(rec) + "\n")
                        print(json.dumps(rec), flush=True)
                continue
            run_ours(ds, args, rows)
            run_faiss(ds, args, rows)
    if args.throughput_only:
        return
    with open(args.out / "compression-results.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({**asdict_row(row), "note": notes[row.dataset], "base_rows": sizes[row.dataset],
                                **context}) + "\n")
    render(args.out)


if __name__ == "__main__":
    main()
