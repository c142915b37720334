"""A/B of the C module's SIMD levels on this CPU: each kernel at every level, interleaved in one process.

Separate runs per level (``VECDB_SIMD=avx2 bench/micro/kernels.py`` then the default) swing by
10-35% on a shared machine, more than the differences between levels; this script switches the
level between rounds (``_native.set_simd_level``) and reports, per kernel and level, the median
of the rounds and the ratio to the AVX2 level. Small n keeps the rows in cache (compute-bound),
large n streams them from memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/micro/simd_levels.py --md out.md
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vecdb import _native as native
from vecdb import kernels as K
from vecdb.kernels import reference as R

LEVELS = ("scalar", "avx2", "avx512")


def available_levels() -> list[str]:
    start = native.simd_level()
    out = [name for name in LEVELS if native.set_simd_level(name) == name]
    native.set_simd_level(start)
    return [name for name in out if name != "scalar"]


def cases(n: int, d: int, rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    """Kernel calls on n rows of dimension d, each a closure over prepared inputs."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = x[0].copy()
    x16 = x.astype(np.float16)
    lo, hi = x.min(0), x.max(0)
    scale = ((hi - lo) / 255.0).astype(np.float32)
    offset = lo.astype(np.float32)
    codes8 = np.clip(np.rint((x - offset) / np.where(scale > 0, scale, 1.0)), 0, 255).astype(np.uint8)
    w = (d + 63) // 64
    lut = K.bitplane_lut(q)
    out: dict[str, Callable[[], object]] = {
        "fp32 l2": lambda: K.distances(q, x, "l2"),
        "fp32 ip": lambda: K.distances(q, x, "ip"),
        "fp16 l2": lambda: K.distances_f16(q, x16, "l2"),
        "sq8 l2": lambda: K.distances_sq8(q, codes8, scale, offset, "l2"),
    }
    bits = R.pack_bits(x > 0)
    out["hamming"] = lambda: K.hamming(bits[0], bits)
    for u in (1, 4):
        planes = rng.integers(0, 2**63, (n, u, w), dtype=np.uint64)
        cw = (0.5 ** np.arange(u)).astype(np.float32)
        out[f"bit planes u={u}, 1-bit query"] = (
            lambda p=planes, c=cw: K.bitplane_ip_sym(p[0, :1], p, np.ones(1, np.float32), c, d))
        out[f"bit planes u={u}, u-bit query"] = lambda p=planes, c=cw: K.bitplane_ip_sym(p[0], p, c, c, d)
        out[f"bit planes u={u}, fp32 query"] = lambda p=planes, c=cw: K.bitplane_ip_asym(lut, p, c, float(q.sum()))
        packed = K.bitplane_fastscan_pack(planes, d)
        table, _ = K.bitplane_fastscan_lut(q, cw)
        table_u8, _, _ = K.quantize_lut(table)
        out[f"bit planes u={u}, fast scan"] = lambda t=table_u8, p=packed: K.pq4_fastscan(t, p, n)
    m = max(1, d // 8)
    pq_codes = rng.integers(0, 16, (n, m), dtype=np.uint8)
    pq_packed = K.pq4_pack(pq_codes)
    pq_lut = rng.integers(0, 256, (m, 16), dtype=np.uint8)
    out[f"PQ {m}x4 fast scan + top-10"] = lambda: K.pq4_fastscan_topk(pq_lut, pq_packed, n, 10)
    dist = rng.standard_normal(n).astype(np.float32)
    out["top-10"] = lambda: K.topk(dist, 10)
    return out


def measure(fn: Callable[[], object], levels: list[str], rounds: int, n: int) -> dict[str, float]:
    """Median rows/s per level over ``rounds`` rounds, the levels taking turns within each round."""
    reps = max(1, int(2_000_000 // n))
    times: dict[str, list[float]] = {lvl: [] for lvl in levels}
    for _ in range(rounds):
        for lvl in levels:
            native.set_simd_level(lvl)
            fn()
            start = time.perf_counter()
            for _ in range(reps):
                fn()
            times[lvl].append((time.perf_counter() - start) / reps)
    return {lvl: n / float(np.median(t)) for lvl, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="*", default=[50, 384])
    parser.add_argument("--rows", type=int, nargs="*", default=[2000, 300000], help="in cache, from memory")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON lines")
    args = parser.parse_args()
    start_level = native.simd_level()
    levels = available_levels()
    if len(levels) < 2:
        raise SystemExit(f"this CPU runs only {levels}: nothing to compare")
    rng = np.random.default_rng(0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    records = []
    for d in args.dims:
        for n in args.rows:
            for name, fn in cases(n, d, rng).items():
                rate = measure(fn, levels, args.rounds, n)
                speeds = {f"{lvl}_mrows_s": round(v / 1e6, 1) for lvl, v in rate.items()}
                rec = {"kernel": name, "d": d, "n": n, **speeds,
                       "ratio_vs_avx2": {lvl: round(rate[lvl] / rate["avx2"], 2) for lvl in levels}}
                records.append(rec)
                print(json.dumps(rec), flush=True)
    native.set_simd_level(start_level)
    header = (f"CPU: {platform.processor() or platform.machine()}, levels {levels}; commit {commit}; one thread; "
              f"median of {args.rounds} interleaved rounds")
    others = [lvl for lvl in levels if lvl != "avx2"]
    lines = [f"# SIMD levels A/B\n\n{header}\n",
             "| kernel | d | rows | " + " | ".join(f"{lvl} Mrows/s" for lvl in levels) + " | "
             + " | ".join(f"{lvl} / avx2" for lvl in others) + " |",
             "|---|---:|---:|" + "---:|" * (2 * len(levels) - 1)]
    for r in records:
        lines.append(f"| {r['kernel']} | {r['d']} | {r['n']} | "
                     + " | ".join(f"{r[f'{lvl}_mrows_s']:.1f}" for lvl in levels) + " | "
                     + " | ".join(f"{r['ratio_vs_avx2'][lvl]:.2f}x" for lvl in others) + " |")
    text = "\n".join(lines) + "\n"
    if args.md:
        args.md.write_text(text)
    if args.out:
        args.out.write_text("".join(json.dumps({**r, "commit": commit}) + "\n" for r in records))
    print(text)


if __name__ == "__main__":
    main()
