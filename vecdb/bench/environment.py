"""What a result row must say about where it was measured: machine, CPU, SIMD, versions, commit, threads."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

# The CPU features that decide which kernels run; the full flag list is too long for every row.
_INTERESTING_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "popcnt", "avx512f", "avx512bw", "avx512vl",
    "avx512dq", "avx512_vnni", "avx512_vpopcntdq", "avx512_bf16", "avx512_fp16", "amx_tile", "neon", "asimd",
    "sve",
)
_PACKAGES = ("vecdb", "numpy", "numba", "faiss-cpu", "hnswlib", "pyarrow", "grpcio", "h5py")


def _cpu() -> tuple[str, list[str]]:
    """(model name, interesting feature flags) from /proc/cpuinfo, or platform's guess elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in _INTERESTING_FLAGS if f in flags]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _git_commit() -> str | None:
    """The commit of the vecdb checkout (with '-dirty' if it has changes), None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def _simd() -> dict[str, Any] | None:
    """``vecdb.kernels.info()`` when the kernels expose it (the active backend and SIMD level)."""
    try:
        from vecdb import kernels

        info = getattr(kernels, "info", None)
        return dict(info()) if callable(info) else None
    except Exception as exc:  # a broken kernel build must not stop a benchmark from recording it
        return {"error": repr(exc)}


@functools.lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """Everything that does not change during a process: host, CPU, SIMD, versions, commit."""
    model, flags = _cpu()
    import psutil

    return {
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "simd": _simd(),
        "versions": _versions(),
        "commit": _git_commit(),
    }


def blas_threads() -> list[dict[str, Any]]:
    """The thread pools threadpoolctl sees (BLAS and OpenMP libraries) with their current sizes."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"api": p.get("internal_api"), "lib": Path(p.get("filepath", "")).name,
             "threads": p.get("num_threads")} for p in threadpool_info()]
