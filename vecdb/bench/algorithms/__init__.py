"""Adapters for the systems under test, created by name: vecdb, vecdb-grpc, faiss, hnswlib."""

from __future__ import annotations

from typing import Any

from vecdb.bench.algorithms.base import Algorithm

SYSTEMS = ("vecdb", "vecdb-grpc", "faiss", "hnswlib")


def make_algorithm(system: str, spec: str, metric: str, build_args: dict[str, Any] | None = None,
                   threads: int = 1, url: str | None = None) -> Algorithm:
    """The adapter for ``system`` with index ``spec``; imports the library only when asked for."""
    system = system.lower()
    if system == "vecdb":
        from vecdb.bench.algorithms.vecdb_adapter import VecdbAlgorithm

        return VecdbAlgorithm(spec, metric, build_args, threads)
    if system == "vecdb-grpc":
        from vecdb.bench.algorithms.vecdb_adapter import VecdbGrpcAlgorithm

        return VecdbGrpcAlgorithm(spec, metric, build_args, threads, url=url)
    if system == "faiss":
        from vecdb.bench.algorithms.faiss_adapter import FaissAlgorithm

        return FaissAlgorithm(spec, metric, build_args, threads)
    if system == "hnswlib":
        try:
            import hnswlib  # noqa: F401  (an optional extra: say how to get it)
        except ImportError:
            raise ValueError("hnswlib is not installed: pip install 'vecdb[bench]'") from None
        from vecdb.bench.algorithms.hnswlib_adapter import HnswlibAlgorithm

        return HnswlibAlgorithm(spec, metric, build_args, threads)
    raise ValueError(f"unknown system {system!r}: expected one of {', '.join(SYSTEMS)}")


__all__ = ["SYSTEMS", "Algorithm", "make_algorithm"]
