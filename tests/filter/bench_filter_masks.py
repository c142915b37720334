"""Mask time with and without attribute indexes on a synthetic segment (not a pytest module).

Run: ``python tests/filter/bench_filter_masks.py [rows]`` (default 1,000,000 rows). Prints one line
per filter: selectivity, plain pyarrow mask time, indexed mask time (best of 5), and the index
build time and memory.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from vecdb.filter import coerce_attributes, compile_filter, parse_schema
from vecdb.filter.attrindex import AttributeIndex

FILTERS = [
    "year = 2015",
    "year BETWEEN 2000 AND 2004",
    "year >= 1990",
    "lang = 'en'",
    "lang IN ('de', 'fr', 'it')",
    "price < 1.0",
    "price BETWEEN 10 AND 20",
    "price > 50",
    "brand = 'b123456'",
    "array_contains(tags, 't7')",
    "year >= 2010 AND lang = 'en' AND price < 50",
    "NOT (lang = 'en' OR year < 2000)",
    "score IS NULL",
]


def make_table(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    schema = parse_schema({"year": "int32", "lang": "string", "price": "float64", "brand": "string",
                           "tags": "list<string>", "score": "float32"})
    langs = np.array(["en", "de", "fr", "it", "es", "ja", "zh", "pt", "ru", "ko"])
    score = rng.random(n).astype(np.float32)
    cols = {
        "year": rng.integers(1970, 2025, n).astype(np.int32),
        "lang": langs[np.minimum(rng.zipf(1.5, n) - 1, 9)].tolist(),
        "price": rng.exponential(20.0, n),
        "brand": [f"b{v}" for v in rng.integers(0, 200_000, n)],
        "tags": [[f"t{t}" for t in rng.integers(0, 100, k)] for k in rng.integers(0, 4, n)],
        "score": [None if rng.random() < 0.1 else float(s) for s in score],
    }
    return schema, coerce_attributes(cols, schema, n)


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(n: int) -> None:
    schema, table = make_table(n)
    t0 = time.perf_counter()
    index = AttributeIndex.build(table)
    build = time.perf_counter() - t0
    print(f"rows={n:,}  index build {build:.2f} s  memory {index.nbytes / 2**20:.1f} MiB")
    for name, f in index.fields.items():
        bitmaps = "bitmaps" if f.bitmaps is not None else "no bitmaps"
        print(f"  {name:6s} card={f.cardinality:>9,}  {f.nbytes / 2**20:7.1f} MiB  {bitmaps}")
    print(f"{'filter':48s} {'select.':>8s} {'plain ms':>9s} {'index ms':>9s} {'speedup':>8s}")
    for text in FILTERS:
        compiled = compile_filter(text, schema)
        assert compiled is not None
        plain = compiled.mask(table)
        indexed = compiled.mask(table, index)
        assert np.array_equal(plain, indexed), text
        tp = best_of(lambda c=compiled: c.mask(table))
        ti = best_of(lambda c=compiled: c.mask(table, index))
        sel = plain.mean()
        print(f"{text:48s} {sel:8.4f} {tp * 1e3:9.2f} {ti * 1e3:9.2f} {tp / ti:7.1f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
