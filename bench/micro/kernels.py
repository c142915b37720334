"""Micro-benchmark of vecdb's kernels per backend, against numpy/BLAS, faiss and memory bandwidth.

Single-threaded throughout (BLAS and faiss are pinned to one thread) so the figures compare
inner loops, not thread counts. Every kernel scans n rows against one query; we report the best
of ``--repeat`` runs as rows/s and GB/s of data read, next to this machine's memory read
bandwidth measured in the same run (the faster of ``np.sum`` / ``np.max`` over the fp32 matrix).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/micro/kernels.py            # ~2 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/micro/kernels.py --quick    # smoke

Writes JSON lines (first line: machine, CPU flags, SIMD level, versions, git commit) to
``--out`` (default bench/results/kernels-<date>.jsonl) and a Markdown table to ``--md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vecdb import kernels as K
from vecdb.kernels import dispatch
from vecdb.kernels import reference as R

ROOT = Path(__file__).resolve().parents[2]
K_NN = 10


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    dispatch.reload(name)
    try:
        yield
    finally:
        dispatch.reload()


def _load() -> float | None:
    return round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    import faiss
    import numba

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    cpu = ""
    flags: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                wanted = ("avx", "fma", "f16c", "popcnt", "bmi2")
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(wanted)]
    info = K.info()
    return {
        "type": "machine",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--", "vecdb/kernels", "native", "setup.py")),
        "cpu": cpu,
        "cpu_flags": flags,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "numba": numba.__version__,
        "faiss": faiss.__version__,
        "native_loaded": info["native_loaded"],
        "simd_level": info["simd_level"],
        "kernel_backends": info["backends"],
        "threads": 1,
        "cpus": os.cpu_count(),
        "load_avg_1m_start": _load(),
        "n": args.n,
        "d": args.d,
        "repeat": args.repeat,
        "quick": args.quick,
    }


class Bench:
    """Queues (kernel, backend) timings and runs each group round-robin.

    The machine is shared, so its load drifts: timing every contender once per round, and
    keeping each one's best round, compares them under the same conditions.
    """

    def __init__(self, n: int, repeat: int) -> None:
        self.n = n
        self.repeat = repeat
        self.records: list[dict[str, Any]] = []
        self._queue: list[tuple[str, str, str | None, Callable[[], object], float, dict[str, Any]]] = []

    def run(self, kernel: str, name: str, fn: Callable[[], object], bytes_per_row: float, **extra: Any) -> None:
        """Queue ``fn`` (an external baseline: no vecdb backend switch)."""
        self._queue.append((kernel, name, None, fn, bytes_per_row, extra))

    def vecdb(self, kernel: str, op: str, fn: Callable[[], object], bytes_per_row: float, **extra: Any) -> None:
        """Queue ``fn`` once per vecdb backend that serves ``op``: C when it has it, then numba."""
        dispatch.reload("c")
        st = dispatch.state()
        if dispatch.backend(op) == "c":
            self._queue.append((kernel, f"vecdb-c-{st.native.simd_level()}", "c", fn, bytes_per_row, extra))
        dispatch.reload()
        self._queue.append((kernel, "vecdb-numba", "numba", fn, bytes_per_row, extra))

    def flush(self) -> None:
        """Time everything queued: a warm-up call each, then ``repeat`` rounds; keep the best."""
        queue, self._queue = self._queue, []
        best = [float("inf")] * len(queue)
        for rnd in range(self.repeat + 1):
            for i, (_, _, name, fn, _, _) in enumerate(queue):
                with backend(name or "auto"):
                    t0 = time.perf_counter()
                    fn()
                    t = time.perf_counter() - t0
                if rnd:  # round 0 compiles and faults pages in
                    best[i] = min(best[i], t)
        for (kernel, label, _, _, bpr, extra), t in zip(queue, best, strict=True):
            rec = {"type": "result", "kernel": kernel, "backend": label, "n": self.n, "seconds": t,
                   "rows_per_s": self.n / t, "gb_per_s": self.n * bpr / t / 1e9, "bytes_per_row": bpr, **extra}
            self.records.append(rec)
            print(f"{kernel:<29} {label:<22} {rec['rows_per_s'] / 1e6:9.1f} Mrows/s {rec['gb_per_s']:7.2f} GB/s"
                  f"  {t * 1e3:8.2f} ms", flush=True)


def bench_float(b: Bench, x: np.ndarray, q: np.ndarray) -> None:
    import faiss

    n, d = x.shape
    nbytes = d * 4.0
    b.run("memory-read", "np.sum", lambda: x.sum(), nbytes)
    b.run("memory-read", "np.max", lambda: x.max(), nbytes)
    for metric in ("l2", "ip"):
        b.vecdb(f"fp32-{metric}", "distances", lambda m=metric: K.distances(q, x, m), nbytes)
    b.run("fp32-ip", "numpy-blas X@q", lambda: x @ q, nbytes)
    b.run("fp32-l2", "faiss.knn k=10", lambda: faiss.knn(q[None], x, K_NN), nbytes)
    offsets = np.random.default_rng(1).integers(0, n, min(n, 100_000))
    b.vecdb("fp32-l2-gather", "distances_at", lambda: K.distances_at(q, x, offsets, "l2"),
            nbytes * len(offsets) / n, note=f"{len(offsets)} random offsets")


def bench_fp16(b: Bench, x16: np.ndarray, q: np.ndarray) -> None:
    b.vecdb("fp16-l2", "distances_f16", lambda: K.distances_f16(q, x16, "l2"), x16.shape[1] * 2.0)
    b.flush()


def bench_sq8(b: Bench, x: np.ndarray, q: np.ndarray) -> None:
    import faiss

    n, d = x.shape
    sq = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)
    sq.train(x[: min(n, 50_000)])
    sq.add(x)
    codes = faiss.vector_to_array(sq.codes).reshape(n, d)
    trained = faiss.vector_to_array(sq.sq.trained)
    # faiss decodes vmin + (code + 0.5) / 255 * vdiff: the same codes as offset + scale * code
    scale = (trained[d:] / 255.0).astype(np.float32)
    offset = (trained[:d] + 0.5 * scale).astype(np.float32)
    b.vecdb("sq8-l2", "distances_sq8", lambda: K.distances_sq8(q, codes, scale, offset, "l2"), float(d))
    b.run("sq8-l2", "faiss SQ8 k=10", lambda: sq.search(q[None], K_NN), float(d))
    b.flush()


def bench_binary(b: Bench, n: int, d: int) -> None:
    import faiss

    rng = np.random.default_rng(2)
    w = (d + 63) // 64
    codes = rng.integers(0, 2**63, (n, w), dtype=np.uint64, endpoint=True)
    qcode = codes[7].copy()
    b.vecdb("hamming-1bit", "hamming", lambda: K.hamming(qcode, codes), w * 8.0, bits=1)
    index = faiss.IndexBinaryFlat(w * 64)
    index.add(codes.view(np.uint8))
    qbytes = qcode.view(np.uint8)[None]
    b.run("hamming-1bit", "faiss BinaryFlat k=10", lambda: index.search(qbytes, K_NN), w * 8.0, bits=1)
    query = rng.standard_normal(d).astype(np.float32)
    lut = R.bitplane_lut(query)
    qsum = float(query.sum())
    for u in (2, 4):
        planes = rng.integers(0, 2**63, (n, u, w), dtype=np.uint64, endpoint=True)
        cw = (2.0 ** -np.arange(u)).astype(np.float32)
        q1 = planes[3, :1].copy()
        qu = planes[3].copy()
        b.vecdb(f"bitplane-sym-{u}bit", "bitplane_ip_sym",
                lambda p=planes, q=q1, c=cw: K.bitplane_ip_sym(q, p, np.ones(1, np.float32), c, d),
                u * w * 8.0, bits=u, note="1-bit query")
        b.vecdb(f"bitplane-sym-{u}x{u}bit", "bitplane_ip_sym",
                lambda p=planes, q=qu, c=cw: K.bitplane_ip_sym(q, p, c, c, d),
                u * w * 8.0, bits=u, note=f"{u}-bit query")
        b.vecdb(f"bitplane-asym-{u}bit", "bitplane_ip_asym",
                lambda p=planes, c=cw: K.bitplane_ip_asym(lut, p, c, qsum), u * w * 8.0, bits=u)
        # the same codes in the 4-bit fast-scan layout: u8 tables, uint16 sums (approximate, as faiss's)
        packed = K.bitplane_fastscan_pack(planes, d)
        b.vecdb(f"bitplane-sym-{u}x{u}bit-fastscan", "pq4_fastscan",
                lambda p=packed, q=qu, c=cw: _bitplane_fastscan(p, K.bitplane_decode(q, c, d), c, n),
                u * w * 8.0, bits=u, note=f"{u}-bit query, u8 LUT")
        b.vecdb(f"bitplane-asym-{u}bit-fastscan", "pq4_fastscan",
                lambda p=packed, c=cw: _bitplane_fastscan(p, query, c, n), u * w * 8.0, bits=u, note="u8 LUT")


def _bitplane_fastscan(packed: np.ndarray, query: np.ndarray, code_weights: np.ndarray, n: int) -> np.ndarray:
    """Bit-plane scan through the fast-scan kernel, table building included: uint16 sums of n rows."""
    lut, _ = K.bitplane_fastscan_lut(query, code_weights)
    lut_u8, _, _ = K.quantize_lut(lut)
    return K.pq4_fastscan(lut_u8, packed, n)


def _pq_index(x: np.ndarray, m: int, nbits: int) -> Any:
    import faiss

    index = faiss.IndexPQ(x.shape[1], m, nbits)
    index.pq.cp.niter = 4  # the codebooks' quality is irrelevant to scan speed
    index.train(x[: min(len(x), 10_000)])  # 39 points per centroid: faiss's minimum, no warning
    return index


def _pq_lut(index: Any, q: np.ndarray) -> np.ndarray:
    import faiss

    pq = index.pq
    cents = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)
    qs = q.reshape(pq.M, 1, pq.dsub)
    return ((cents - qs) ** 2).sum(-1).astype(np.float32)


def bench_pq(b: Bench, x: np.ndarray, q: np.ndarray, m8: int, m4: int) -> None:
    bench_pq8(b, x, q, m8)
    bench_pq4(b, x, q, m4)


def bench_pq8(b: Bench, x: np.ndarray, q: np.ndarray, m8: int) -> None:
    import faiss

    n = x.shape[0]
    index = _pq_index(x, m8, 8)
    codes = np.random.default_rng(3).integers(0, 256, (n, m8), dtype=np.uint8)
    faiss.copy_array_to_vector(codes.ravel(), index.codes)
    index.ntotal = n
    lut = _pq_lut(index, q)
    b.vecdb("pq8-adc", "pq_adc", lambda: K.pq_adc(lut, codes), float(m8), m=m8)
    b.run("pq8-adc", "faiss IndexPQ k=10", lambda: index.search(q[None], K_NN), float(m8), m=m8)
    b.flush()


def bench_pq4(b: Bench, x: np.ndarray, q: np.ndarray, m4: int) -> None:
    import faiss

    n = x.shape[0]
    rng = np.random.default_rng(6)
    index = _pq_index(x, m4, 4)
    codes4 = rng.integers(0, 16, (n, m4), dtype=np.uint8)
    # IndexPQ packs 4-bit codes two per byte, first code in the low nibble
    faiss.copy_array_to_vector(np.ascontiguousarray(codes4[:, 0::2] | (codes4[:, 1::2] << 4)).ravel(),
                               index.codes)
    index.ntotal = n
    fast = faiss.IndexPQFastScan(index)  # the same codes, in faiss's fast-scan layout
    lut_u8, _, _ = K.quantize_lut(_pq_lut(index, q))
    packed = K.pq4_pack(codes4)
    del codes4, index
    bpr = m4 / 2.0

    def scan_topk() -> tuple[np.ndarray, np.ndarray]:
        return K.pq4_fastscan_topk(lut_u8, packed, n, K_NN)  # fused: sums filtered while in L1

    b.vecdb("pq4-fastscan", "pq4_fastscan", lambda: K.pq4_fastscan(lut_u8, packed, n), bpr, m=m4)
    b.vecdb("pq4-fastscan+top10", "pq4_fastscan_topk", scan_topk, bpr, m=m4)
    b.run("pq4-fastscan+top10", "faiss PQFastScan", lambda: fast.search(q[None], K_NN), bpr, m=m4)
    b.flush()
    overlap = len(set(scan_topk()[0].tolist()) & set(fast.search(q[None], K_NN)[1][0].tolist()))
    print(f"  (same codes: top-{K_NN} overlap vecdb vs faiss fast scan = {overlap}/{K_NN})")


def bench_topk(b: Bench, n: int) -> None:
    dist = np.random.default_rng(4).random(n, dtype=np.float32)
    for k in (10, 100):
        b.vecdb(f"topk-k{k}", "topk", lambda k=k: K.topk(dist, k), 4.0)

        def np_topk(k: int = k) -> np.ndarray:
            part = np.argpartition(dist, k)[:k]
            return part[np.argsort(dist[part], kind="stable")]

        b.run(f"topk-k{k}", "numpy argpartition", np_topk, 4.0)
    b.flush()


def _best(records: list[dict], kernel: str, prefix: str) -> dict | None:
    hits = [r for r in records if r["kernel"] == kernel and r["backend"].startswith(prefix)]
    return max(hits, key=lambda r: r["rows_per_s"]) if hits else None


def targets(records: list[dict]) -> list[dict[str, Any]]:
    """Issue 2's done-when figures per vecdb backend (C first: what the dispatch picks), each with
    its measured value and whether it is met. Speed-ups compare with the same backend's fp32 scan."""
    out: list[dict[str, Any]] = []

    def add(backend: str, name: str, value: float, goal: float, unit: str) -> None:
        out.append({"type": "target", "backend": backend, "target": name, "value": value, "goal": goal,
                    "unit": unit, "met": bool(value >= goal)})

    bw = max(r["gb_per_s"] for r in records if r["kernel"] == "memory-read")
    blas = _best(records, "fp32-ip", "numpy-blas")
    faiss_fs = _best(records, "pq4-fastscan+top10", "faiss")
    for prefix in ("vecdb-c", "vecdb-numba"):
        fp32 = _best(records, "fp32-l2", prefix)
        if fp32 is None:
            continue
        name = fp32["backend"]
        add(name, "fp32 l2 scan vs memory read bandwidth", fp32["gb_per_s"] / bw, 0.8, "fraction")
        if blas:
            add(name, "fp32 l2 scan vs numpy BLAS X@q", fp32["rows_per_s"] / blas["rows_per_s"], 1.0, "ratio")
        for kernel, bits in (("hamming-1bit", 1), ("bitplane-sym-2bit", 2), ("bitplane-sym-4bit", 4),
                             ("bitplane-sym-2x2bit", 2), ("bitplane-sym-4x4bit", 4),
                             ("bitplane-asym-2bit", 2), ("bitplane-asym-4bit", 4),
                             ("bitplane-sym-2x2bit-fastscan", 2), ("bitplane-sym-4x4bit-fastscan", 4),
                             ("bitplane-asym-2bit-fastscan", 2), ("bitplane-asym-4bit-fastscan", 4)):
            rec = _best(records, kernel, prefix)
            if rec:
                add(name, f"{kernel} speed-up over fp32 scan (ideal {32 // bits}x)",
                    rec["rows_per_s"] / fp32["rows_per_s"], 32 / bits / 2, "x")
        mine = _best(records, "pq4-fastscan+top10", prefix)
        if mine and faiss_fs:
            add(name, "pq4 fast scan + top-10 vs faiss IndexPQFastScan",
                mine["rows_per_s"] / faiss_fs["rows_per_s"], 1.0, "ratio")
    return out


def markdown(meta: dict, records: list[dict], goals: list[dict], command: str) -> str:
    lines = [
        f"# Kernel micro-benchmark ({meta['date']}, commit {meta['git_commit'][:10]})",
        "",
        f"`{command}`",
        "",
        f"CPU: {meta['cpu']} ({', '.join(meta['cpu_flags'])}); 1 thread; n = {meta['n']:,} rows, "
        f"d = {meta['d']}; C module: {'loaded, ' + str(meta['simd_level']) if meta['native_loaded'] else 'absent'};"
        f" numpy {meta['numpy']}, numba {meta['numba']}, faiss {meta['faiss']}. Load average (1 min) "
        f"{meta['load_avg_1m_start']} at start, {meta['load_avg_1m_end']} at end on {meta['cpus']} CPUs: "
        "a shared machine, so contenders run round-robin and each keeps its best round.",
        "",
        "| kernel | backend | Mrows/s | GB/s | ms |",
        "|---|---|---:|---:|---:|",
    ]
    for r in records:
        lines.append(f"| {r['kernel']} | {r['backend']} | {r['rows_per_s'] / 1e6:.1f} | {r['gb_per_s']:.2f} "
                     f"| {r['seconds'] * 1e3:.2f} |")
    lines += ["", "| backend | target | measured | goal | met |", "|---|---|---:|---:|---|"]
    for g in goals:
        lines.append(f"| {g['backend']} | {g['target']} | {g['value']:.2f} {g['unit']} | {g['goal']:.2f} | "
                     f"{'yes' if g['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke size (50k rows, 1 repeat)")
    parser.add_argument("--n", type=int, default=None, help="rows (default 1,000,000; 50,000 with --quick)")
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines file")
    parser.add_argument("--md", type=Path, default=None, help="Markdown table file")
    args = parser.parse_args(argv)
    args.n = args.n or (50_000 if args.quick else 1_000_000)
    args.repeat = args.repeat or (1 if args.quick else 5)
    if args.d % 8:
        parser.error("--d must be a multiple of 8 (PQ sub-quantizers)")

    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    meta = machine_info(args)
    if not meta["native_loaded"]:
        print("C module vecdb._native not built: timing the numba kernels only")
    print(f"{meta['cpu']}, simd {meta['simd_level']}, n={args.n:,} d={args.d}, best of {args.repeat}")
    b = Bench(args.n, args.repeat)
    with threadpool_limits(1):
        x = np.random.default_rng(0).standard_normal((args.n, args.d), dtype=np.float32)
        q = np.random.default_rng(5).standard_normal(args.d, dtype=np.float32)
        # fp32 and the binary scans in one round-robin group: their ratios are the targets
        bench_float(b, x, q)
        bench_binary(b, args.n, args.d)
        b.flush()
        bench_fp16(b, x.astype(np.float16), q)
        bench_sq8(b, x, q)
        bench_pq(b, x, q, args.d // 8, args.d // 8)
        del x
        bench_topk(b, args.n)
    goals = targets(b.records)
    meta["load_avg_1m_end"] = _load()
    print()
    for g in goals:
        print(f"{'met ' if g['met'] else 'MISS'}  [{g['backend']}] {g['target']}: {g['value']:.2f} {g['unit']}"
              f" (goal {g['goal']:.2f})")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M")
    out = args.out or ROOT / "bench" / "results" / f"kernels-{stamp}{'-quick' if args.quick else ''}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for rec in [meta, *b.records, *goals]:
            fh.write(json.dumps(rec) + "\n")
    command = " ".join(["python", "bench/micro/kernels.py", *(argv if argv is not None else sys.argv[1:])])
    if args.md:
        args.md.write_text(markdown(meta, b.records, goals, command))
    print(f"wrote {out}" + (f" and {args.md}" if args.md else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
