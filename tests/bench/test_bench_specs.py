"""Index strings, baseline lists and sweeps as typed on the command line."""

from __future__ import annotations

import pytest

import vecdb.config as cfg
from vecdb.bench.specs import parse_sweep, parse_vecdb_spec, split_baseline


@pytest.mark.parametrize(("spec", "index", "quant"), [
    ("Flat", cfg.Flat(), None),
    ("HNSW16", cfg.HNSW(m=16), None),
    ("hnsw32,SQ8", cfg.HNSW(m=32), cfg.SQ(bits=8)),
    ("HNSW32,FP16", cfg.HNSW(m=32), cfg.SQ(bits=16)),
    ("IVF1024", cfg.IVF(nlist=1024), None),
    ("IVF", cfg.IVF(), None),
    ("IVF256,PQ16x4", cfg.IVF(nlist=256), cfg.PQ(m=16, bits=4)),
    ("SPANN", cfg.SPANN(), None),
    ("SPANN128,BEBR4", cfg.SPANN(target_list_size=128), cfg.BEBR(bits=4)),
    ("Flat,BEBR2x64", cfg.Flat(), cfg.BEBR(bits=2, dim_out=64)),
])
def test_vecdb_specs(spec: str, index: object, quant: object) -> None:
    assert parse_vecdb_spec(spec) == (index, quant)


def test_build_args_go_to_the_config_that_has_the_field() -> None:
    index, quant = parse_vecdb_spec("HNSW16,PQ8", {"ef_construction": 100, "opq": True})
    assert index == cfg.HNSW(m=16, ef_construction=100) and quant == cfg.PQ(m=8, opq=True)
    with pytest.raises(ValueError, match="do not apply"):
        parse_vecdb_spec("Flat", {"ef_construction": 100})


@pytest.mark.parametrize("bad", ["HNSW", "Graph16", "HNSW16,SQ4", "HNSW16,SQ8,PQ4", ""])
def test_bad_vecdb_specs(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_vecdb_spec(bad)


@pytest.mark.parametrize(("text", "expected"), [
    ("faiss:HNSW16,Flat", ("faiss", ["HNSW16", "Flat"])),
    ("faiss:IVF1024,Flat", ("faiss", ["IVF1024,Flat"])),
    ("faiss:IVF1024,PQ16,HNSW32,SQ8,RaBitQ", ("faiss", ["IVF1024,PQ16", "HNSW32,SQ8", "RaBitQ"])),
    ("faiss:OPQ16,IVF256,PQ16,Flat", ("faiss", ["OPQ16,IVF256,PQ16", "Flat"])),
    ("faiss:HNSW32,Flat;IVF64,Flat", ("faiss", ["HNSW32,Flat", "IVF64,Flat"])),
    ("hnswlib:M32", ("hnswlib", ["M32"])),
    ("vecdb:HNSW16,SQ8,Flat", ("vecdb", ["HNSW16,SQ8", "Flat"])),
])
def test_split_baseline(text: str, expected: tuple) -> None:
    assert split_baseline(text) == expected


def test_parse_sweep() -> None:
    assert parse_sweep(["ef=16,32", "eps=0.1", "exact=true"]) == {"ef": [16, 32], "eps": [0.1], "exact": [True]}
    with pytest.raises(ValueError, match="name=v1"):
        parse_sweep(["ef"])
