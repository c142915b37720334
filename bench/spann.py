"""SPANN benchmark: resident memory, recall@10 vs latency (cold and warm), build, ablations, vs faiss IVF.

One run writes ``bench/results/spann-<tag>.jsonl`` (one JSON object per measurement) and
``bench/results/spann-<tag>.md`` (the tables for docs/spann.md). Everything runs single-threaded
(BLAS, OpenMP and numba capped at one thread before they load), one query per call, as a serving
process would see it.

Datasets (ann-benchmarks HDF5 from /work/shared/datasets):
  glove   glove-50-euclidean.hdf5, 399k x 50, l2
  npm     npm-minilm-384-angular.hdf5, 100k x 384 (float16 -> float32), cosine
  scale   SCALE SET, NOT A REAL DATASET: GloVe's 399k rows repeated with a seeded Gaussian
          perturbation (sigma = 0.1 x each dimension's std) up to --scale-n rows; GloVe's test
          words are the queries; exact neighbours computed here.

SPANN is persisted with the engine's array file and read back as memory maps, so its posting lists
live in the page cache of that file. "cold" = before each query the mapping's pages are released
(madvise DONTNEED) and the file's pages dropped from the page cache (posix_fadvise DONTNEED), so
the query's lists come from the disk; "warm" = the same queries after a warm-up pass.
Baselines: faiss IndexIVFFlat (vectors in RAM), the same with its lists in an OnDiskInvertedLists file
(the equal-memory variant; warm only) and IndexIVFPQ (m = d/5 bytes + 8-byte ids: about 10% of the
raw vectors, the SPANN memory target), with omp threads = 1.

Usage: python bench/spann.py [--datasets glove,npm,scale] [--queries 500] [--cold-queries 100]
"""

# ruff: noqa: E402  (the thread caps must be set before numpy, numba and faiss are imported)
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy/numba/faiss load: single-thread numbers for every contender

import argparse
import json
import math
import mmap
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vecdb.config import SPANN
from vecdb.index.flat import exact_search
from vecdb.index.spann import SPANNIndex
from vecdb.storage.arrayfile import read_array_file, write_array_file
from vecdb.storage.io import FileIO

DATA = Path("/work/shared/datasets")
K = 10
SPANN_LISTS = [4, 6, 8, 16, 32, 64, 128, 256]
SPANN_EPS = [0.6, 1.0]
FAISS_NPROBE = [4, 8, 16, 32, 64, 128, 256]


def load(name: str, nq: int, scale_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str, str]:
    """(base (n, d) float32, queries (nq, d), exact neighbours (nq, K), metric, label)."""
    if name == "npm":
        with h5py.File(DATA / "npm-minilm-384-angular.hdf5") as f:
            x = np.asarray(f["train"], dtype=np.float32)
            q = np.asarray(f["test"][:nq], dtype=np.float32)
            gt = np.asarray(f["neighbors"][:nq, :K])
        return x, q, gt, "cosine", "npm-minilm-384 (100k x 384, cosine)"
    with h5py.File(DATA / "glove-50-euclidean.hdf5") as f:
        x = np.asarray(f["train"], dtype=np.float32)
        q = np.asarray(f["test"][:nq], dtype=np.float32)
        gt = np.asarray(f["neighbors"][:nq, :K])
    if name == "glove":
        return x, q, gt, "l2", "glove-50 (399k x 50, l2)"
    rng = np.random.default_rng(20261126)
    sigma = 0.1 * x.std(axis=0)
    parts, have = [x], x.shape[0]
    while have < scale_n:
        take = min(x.shape[0], scale_n - have)
        parts.append(x[:take] + (rng.standard_normal((take, x.shape[1])) * sigma).astype(np.float32))
        have += take
    big = np.ascontiguousarray(np.concatenate(parts)[:scale_n], dtype=np.float32)
    gt, _ = exact_search(q, big, "l2", K)
    return big, q, gt, "l2", f"SCALE SET glove-50 x{scale_n / x.shape[0]:.2f} perturbed ({scale_n // 1000}k x 50, l2)"


def recall(found: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(g.tolist())) / K for f, g in zip(found, gt, strict=True)]))


def drop_pages(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Release our mapping's pages and drop the file from the page cache (the next read is cold)."""
    seen: set[int] = set()
    for a in arrays.values():
        base: Any = a
        while isinstance(base, np.ndarray):
            base = base.base
        mm = base.obj if isinstance(base, memoryview) else base
        if isinstance(mm, mmap.mmap) and id(mm) not in seen:
            seen.add(id(mm))
            mm.madvise(mmap.MADV_DONTNEED)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def time_queries(search: Any, q: np.ndarray, before: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-query latencies (s) and results, one query per call; ``before()`` runs untimed first."""
    lat = np.empty(q.shape[0])
    found = np.empty((q.shape[0], K), dtype=np.int64)
    for i in range(q.shape[0]):
        if before is not None:
            before()
        t = time.perf_counter()
        found[i] = search(q[i : i + 1])[0]
        lat[i] = time.perf_counter() - t
    return lat, found


_SINK: list[Any] = []
_MACHINE: list[str] = []


def emit(r: dict[str, Any]) -> None:
    """Print a result and append it to the JSON lines file at once (a long run keeps what it measured)."""
    r.setdefault("machine", _MACHINE[0] if _MACHINE else "")
    line = json.dumps(r)
    print(line, flush=True)
    for f in _SINK:
        f.write(line + "\n")
        f.flush()


def row(**kw: Any) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in kw.items()}


def bench_spann(x: np.ndarray, q: np.ndarray, gt: np.ndarray, metric: str, label: str, config: SPANN,
                sweeps: dict[str, tuple[list[tuple[int, float]], int, dict[str, Any]]],
                workdir: Path) -> list[dict[str, Any]]:
    """Build once, persist, reopen memory-mapped; then per variant name: (sweep of (max_lists, eps),
    cold queries, extra search params)."""
    t0 = time.perf_counter()
    built = SPANNIndex.build(x, metric, config, progress=True)
    build_s = time.perf_counter() - t0
    meta, arrays = built.to_arrays()
    path = workdir / "spann.idx"
    write_array_file(path, {"index": meta}, arrays, FileIO())
    del built, arrays
    meta, arrays = read_array_file(path)
    index = SPANNIndex.from_arrays(meta["index"], arrays, x)
    raw = x.nbytes
    common = dict(dataset=label, index="vecdb-spann", n=x.shape[0], dim=x.shape[1], build_s=build_s,
                  resident_bytes=index.resident_bytes, resident_pct_raw=100 * index.resident_bytes / raw,
                  disk_bytes=path.stat().st_size, replication=index.info["replication"], lists=index.n_lists,
                  target_list_size=config.target_list_size, replicas=config.replicas, closure_eps=config.closure_eps,
                  rng_factor=config.rng_factor)
    out = []
    for variant, (sweep, n_cold, extra) in sweeps.items():
        out += _sweep(index, path, arrays, q, gt, {**common, "variant": variant}, sweep, n_cold, extra)
    del index, arrays
    path.unlink()
    return out


def _sweep(index: SPANNIndex, path: Path, arrays: dict[str, np.ndarray], q: np.ndarray, gt: np.ndarray,
           common: dict[str, Any], sweep: list[tuple[int, float]], n_cold: int,
           extra: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for max_lists, eps in sweep:
        params = {"max_lists": max_lists, "eps": eps, **extra}

        def search(qq: np.ndarray, p: dict[str, Any] = params) -> np.ndarray:
            return index.search(qq, K, p)[0]

        _, _, stats = index.search_with_stats(q, K, params)
        time_queries(search, q[: min(50, q.shape[0])])  # warm-up: pages and caches
        time_queries(search, q)
        warm, found = time_queries(search, q)
        cold = np.full(1, np.nan)
        if n_cold:
            cold, _ = time_queries(search, q[:n_cold], lambda: drop_pages(path, arrays))
        out.append(row(**common, max_lists=max_lists, eps=eps, recall=recall(found, gt),
                       p50_ms=1e3 * float(np.median(warm)), p99_ms=1e3 * float(np.percentile(warm, 99)),
                       qps=1.0 / float(warm.mean()), cold_p50_ms=1e3 * float(np.median(cold)),
                       cold_p99_ms=1e3 * float(np.percentile(cold, 99)),
                       lists_probed=float(np.mean(stats["lists_probed"])),
                       kib_read=float(np.mean(stats["bytes_read"])) / 1024,
                       scored=float(np.mean(stats["candidates_scored"]))))
        emit(out[-1])
    return out


def bench_faiss(x: np.ndarray, q: np.ndarray, gt: np.ndarray, metric: str, label: str, kind: str,
                nlist: int, workdir: Path) -> list[dict[str, Any]]:
    """faiss IVFFlat / IVFPQ in RAM, or IVFFlat with its lists in an ``OnDiskInvertedLists`` file
    ("IVFFlat-ondisk": the equal-memory variant; warm only, since faiss maps the file itself and
    its mapped pages cannot be dropped from outside)."""
    import faiss

    faiss.omp_set_num_threads(1)
    d = x.shape[1]
    base, qq = x, q
    if metric == "cosine":  # unit vectors + l2 orders exactly like cosine
        base = x / np.linalg.norm(x, axis=1, keepdims=True)
        qq = q / np.linalg.norm(q, axis=1, keepdims=True)
    coarse = faiss.IndexFlatL2(d)
    m = max(1, d // 5)
    while d % m:
        m -= 1
    flat = kind.startswith("IVFFlat")
    index = faiss.IndexIVFFlat(coarse, d, nlist) if flat else faiss.IndexIVFPQ(coarse, d, nlist, m, 8)
    index.cp.niter = 10
    rng = np.random.default_rng(0)
    sample = base[rng.choice(base.shape[0], min(base.shape[0], 64 * nlist), replace=False)]
    t0 = time.perf_counter()
    index.train(np.ascontiguousarray(sample))
    index.add(np.ascontiguousarray(base))
    disk = 0
    if kind == "IVFFlat-ondisk":  # faiss's recipe: merge the in-RAM lists into an on-disk list file
        path = workdir / f"{label}-ivfflat.ivfdata"
        ondisk = faiss.OnDiskInvertedLists(nlist, index.code_size, str(path))
        in_ram = faiss.InvertedListsPtrVector()
        in_ram.push_back(index.invlists)
        ondisk.merge_from_multiple(in_ram.data(), in_ram.size())
        index.replace_invlists(ondisk, False)
        disk = path.stat().st_size
    build_s = time.perf_counter() - t0
    # resident: the coarse centroids, plus (on disk) each list's offset, size and capacity
    size = nlist * d * 4 + 24 * nlist if disk else int(faiss.serialize_index(index).nbytes)
    out = []
    for nprobe in FAISS_NPROBE:
        index.nprobe = nprobe

        def search(one: np.ndarray) -> np.ndarray:
            return index.search(one, K)[1]

        time_queries(search, qq)  # warm-up pass over every query, as SPANN's sweep gets
        warm, found = time_queries(search, qq)
        variant = f"nlist={nlist}" + ("" if flat else f",m={m}")
        out.append(row(dataset=label, index=f"faiss-{kind}", variant=variant,
                       n=x.shape[0], dim=d, build_s=build_s, resident_bytes=size,
                       resident_pct_raw=100 * size / x.nbytes, disk_bytes=disk, nprobe=nprobe, recall=recall(found, gt),
                       p50_ms=1e3 * float(np.median(warm)), p99_ms=1e3 * float(np.percentile(warm, 99)),
                       qps=1.0 / float(warm.mean())))
        emit(out[-1])
    return out


def _num(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "", "| dataset | index | variant | setting | recall@10 | p50 ms | p99 ms | QPS | cold p50 ms | "
             "cold p99 ms | lists | KiB read | resident MiB (% raw) | disk MiB | build s |", "|" + "---|" * 15]
    for r in rows:
        setting = f"nprobe={r['nprobe']}" if "nprobe" in r else f"max_lists={r['max_lists']}, eps={r['eps']}"
        cold = "" if math.isnan(r.get("cold_p50_ms", math.nan)) else f"{r['cold_p50_ms']:.2f}"
        cold99 = "" if math.isnan(r.get("cold_p99_ms", math.nan)) else f"{r['cold_p99_ms']:.2f}"
        variant = r["variant"] + (f" (repl {r['replication']:.2f}, {r['lists']} lists)" if "replication" in r else "")
        lines.append(
            f"| {r['dataset']} | {r['index']} | {variant} | {setting} | {r['recall']:.3f} | {r['p50_ms']:.3f} | "
            f"{r['p99_ms']:.3f} | {r['qps']:.0f} | {cold} | {cold99} | {_num(r.get('lists_probed'), 1)} | "
            f"{_num(r.get('kib_read'), 0)} | {r['resident_bytes'] / 2**20:.1f} ({r['resident_pct_raw']:.1f}%) | "
            f"{r['disk_bytes'] / 2**20:.0f} | {r['build_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="glove,npm,scale")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--cold-queries", type=int, default=100)
    ap.add_argument("--scale-n", type=int, default=1_000_000)
    ap.add_argument("--target-list-size", type=int, default=128)
    ap.add_argument("--rng-factor", type=float, default=0.5, help="SPANN(rng_factor=...): 1.0 is the paper's rule")
    ap.add_argument("--lists", default=",".join(map(str, SPANN_LISTS)), help="SPANN max_lists sweep")
    ap.add_argument("--ablation", default="glove", help="datasets that also run replication-off / pruning-off")
    ap.add_argument("--baselines", default="glove,npm,scale")
    ap.add_argument("--tag", default=time.strftime("%Y%m%d"))
    ap.add_argument("--workdir", default=None, help="where index files go (a real disk, not tmpfs)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the .md from an existing .jsonl")
    ap.add_argument("--prefetch-only", action="store_true",
                    help="only SPANN, cold and warm, without and with prefetching the chosen lists")
    args = ap.parse_args()
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus (shared), commit {commit}"
    _MACHINE.append(machine)
    stem = out_dir / f"spann-{args.tag}"
    stem_jsonl = stem.with_suffix(".jsonl")
    if args.report_only and stem_jsonl.exists():  # the machine/commit line of the run, not of today's checkout
        machine = json.loads(stem_jsonl.read_text().splitlines()[0]).get("machine", machine)
    header = (f"SPANN benchmark {args.tag}: {machine}; {args.queries} queries (cold: first {args.cold_queries}), "
              "k=10, one thread, one query per call")
    if not args.report_only:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="spann-bench-", dir="/var/tmp"))
        with open(stem.with_suffix(".jsonl"), "w") as sink:
            _SINK.append(sink)
            for name in args.datasets.split(","):
                run_dataset(name, args, workdir)
    rows = [json.loads(line) for line in stem.with_suffix(".jsonl").read_text().splitlines() if line]
    stem.with_suffix(".md").write_text(markdown(rows, header))
    print(f"wrote {stem}.jsonl and .md")


def run_dataset(name: str, args: argparse.Namespace, workdir: Path) -> None:
    x, q, gt, metric, label = load(name, args.queries, args.scale_n)
    print(f"== {label}: {x.shape}", flush=True)
    tls = args.target_list_size
    lists = [int(v) for v in args.lists.split(",")]
    main_sweep = [(ml, eps) for ml in lists for eps in SPANN_EPS]
    sweeps: dict[str, Any] = {"default": (main_sweep, args.cold_queries, {})}
    if args.prefetch_only:  # cold reads one list at a time vs all of a query's lists at once
        one_eps = [(ml, 1.0) for ml in lists]
        sweeps = {"default": (one_eps, args.cold_queries, {}),
                  "prefetch (madvise WILLNEED)": (one_eps, args.cold_queries, {"prefetch": True})}
        cfg = SPANN(target_list_size=tls, replicas=8, closure_eps=1.0, rng_factor=args.rng_factor)
        bench_spann(x, q, gt, metric, label, cfg, sweeps, workdir)
        return
    if name in args.ablation.split(","):
        sweeps["pruning off (eps=inf)"] = ([(ml, math.inf) for ml in lists], 0, {})
    cfg = SPANN(target_list_size=tls, replicas=8, closure_eps=1.0, rng_factor=args.rng_factor)
    bench_spann(x, q, gt, metric, label, cfg, sweeps, workdir)
    if name in args.ablation.split(","):
        off = SPANN(target_list_size=tls, replicas=1, closure_eps=1.0)
        bench_spann(x, q, gt, metric, label, off, {"replication off": (main_sweep, 0, {})}, workdir)
    if name in args.baselines.split(","):
        nlist = round(4 * math.sqrt(x.shape[0]))
        for kind in ("IVFFlat", "IVFFlat-ondisk", "IVFPQ"):
            bench_faiss(x, q, gt, metric, label, kind, nlist, workdir)


if __name__ == "__main__":
    main()
