"""Filtered runs: which train rows a filter keeps, and the exact neighbours among only those rows."""

from __future__ import annotations

import dataclasses

import numpy as np

from vecdb.bench.datasets import Dataset, ground_truth

SELECTIVITY_FIELD = "bench_bucket"
_BUCKETS = 1_000_000


def add_selectivity_column(ds: Dataset, selectivity: float, seed: int = 0) -> tuple[Dataset, str]:
    """Add a uniform random int column and return (dataset, filter keeping ~``selectivity`` of rows)."""
    if not 0.0 < selectivity <= 1.0:
        raise ValueError(f"selectivity must be in (0, 1], got {selectivity}")
    buckets = np.random.default_rng(seed).integers(0, _BUCKETS, size=len(ds.train), dtype=np.int64)
    attrs = {**ds.attributes, SELECTIVITY_FIELD: buckets}
    expr = f"{SELECTIVITY_FIELD} < {max(1, round(selectivity * _BUCKETS))}"
    return dataclasses.replace(ds, attributes=attrs), expr


def filter_mask(expr: str, attributes: dict[str, np.ndarray], n: int) -> np.ndarray:
    """(n,) bool: rows where ``expr`` is TRUE, evaluated by vecdb's own filter module."""
    import pyarrow as pa

    from vecdb.bench.algorithms.vecdb_adapter import arrow_schema_of
    from vecdb.filter.evaluate import compile_filter
    from vecdb.filter.schema import parse_schema

    if not attributes:
        raise ValueError("this dataset has no attribute columns to filter on (use --selectivity instead)")
    schema = arrow_schema_of(attributes)
    table = pa.table({k: np.asarray(v) for k, v in attributes.items()})
    compiled = compile_filter(expr, parse_schema(schema), None)
    mask = np.asarray(compiled.mask(table), dtype=bool)
    if mask.shape != (n,):
        raise ValueError(f"filter mask has shape {mask.shape}, expected ({n},)")
    return mask


def filtered_ground_truth(ds: Dataset, mask: np.ndarray, k: int = 100) -> Dataset:
    """``ds`` whose neighbours/distances are the exact top-k among rows where ``mask`` holds."""
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        raise ValueError("the filter keeps no rows")
    k = min(k, rows.size)
    local, dist = ground_truth(ds.train[rows], ds.test, ds.metric, k)
    return dataclasses.replace(ds, neighbors=rows[local], distances=dist)
