"""Short index strings on the command line and in suites -> configurations.

vecdb: ``<index>[,<quantization>]`` with index ``Flat`` | ``HNSW<m>`` | ``IVF[<nlist>]`` |
``SPANN[<target_list_size>]`` and quantization ``SQ8`` | ``SQ16``/``FP16`` | ``PQ<m>[x<bits>]`` |
``BEBR<bits>[x<dim_out>]``. Examples: "Flat", "HNSW16", "HNSW32,SQ8", "IVF1024,PQ16x4", "SPANN".
Baselines: ``faiss:HNSW16,Flat`` lists two faiss factory strings; "IVF1024,Flat" stays one.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from vecdb.config import BEBR, HNSW, IVF, PQ, SPANN, SQ, Flat

_INDEX = re.compile(r"^(FLAT|HNSW(\d+)|IVF(\d*)|SPANN(\d*))$", re.IGNORECASE)
_QUANT = re.compile(r"^(SQ(8|16)|FP16|PQ(\d+)(?:X(\d+))?|BEBR(\d+)(?:X(\d+))?)$", re.IGNORECASE)


def parse_vecdb_spec(spec: str, build_args: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """Return (index config, quantization config or None) for ``spec``.

    ``build_args`` override dataclass fields by name (``ef_construction``, ``replicas``, ``opq``,
    ``learned``...); each goes to whichever of the two configs has that field, unknown names raise.
    """
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"bad vecdb index {spec!r}: expected <index>[,<quantization>], e.g. HNSW32,SQ8")
    m = _INDEX.match(parts[0])
    if m is None:
        raise ValueError(f"bad vecdb index {parts[0]!r} in {spec!r}: expected Flat, HNSW<m>, IVF[<nlist>] "
                         "or SPANN[<list size>]")
    head = parts[0].upper()
    index: Any
    if head == "FLAT":
        index = Flat()
    elif head.startswith("HNSW"):
        index = HNSW(m=int(m[2]))
    elif head.startswith("IVF"):
        index = IVF(nlist=int(m[3]) if m[3] else None)
    else:
        index = SPANN(target_list_size=int(m[4])) if m[4] else SPANN()
    quant = _parse_quant(parts[1], spec) if len(parts) == 2 else None
    return _override(index, quant, dict(build_args or {}), spec)


def vecdb_fields(spec: str) -> set[str]:
    """The build-argument names ``spec`` accepts (fields of its index and quantization configs)."""
    index, quant = parse_vecdb_spec(spec)
    return {f.name for c in (index, quant) if c is not None for f in dataclasses.fields(c)}


def _parse_quant(text: str, spec: str) -> Any:
    m = _QUANT.match(text)
    if m is None:
        raise ValueError(f"bad quantization {text!r} in {spec!r}: expected SQ8, SQ16, FP16, PQ<m>[x<bits>] "
                         "or BEBR<bits>[x<dim_out>]")
    up = text.upper()
    if up.startswith("SQ"):
        return SQ(bits=int(m[2]))
    if up == "FP16":
        return SQ(bits=16)
    if up.startswith("PQ"):
        return PQ(m=int(m[3]), bits=int(m[4] or 8))
    return BEBR(bits=int(m[5]), dim_out=int(m[6]) if m[6] else None)


def _override(index: Any, quant: Any, args: dict[str, Any], spec: str) -> tuple[Any, Any]:
    """Apply build args by field name; a name both configs have goes to the index."""
    index_fields = {f.name for f in dataclasses.fields(index)}
    quant_fields = {f.name for f in dataclasses.fields(quant)} if quant is not None else set()
    unknown = set(args) - index_fields - quant_fields
    if unknown:
        raise ValueError(f"build args {sorted(unknown)} do not apply to {spec!r} "
                         f"(index takes {sorted(index_fields)}, quantization {sorted(quant_fields)})")
    index = dataclasses.replace(index, **{k: v for k, v in args.items() if k in index_fields})
    if quant is not None:
        quant = dataclasses.replace(quant, **{k: v for k, v in args.items()
                                              if k in quant_fields and k not in index_fields})
    return index, quant


# A faiss factory component that cannot stand alone (needs an encoding after it).
_FAISS_PREFIX = re.compile(r"^(IVF\d+(_HNSW\d+)?|IMI\d+x\d+|OPQ\d+(_\d+)?|PCAR?\d+|RR\d+|L2norm)$", re.I)
# An encoding that qualifies the previous component rather than starting a new index. "Flat" is
# not one of them: "HNSW16,Flat" in a baseline list means the two indexes HNSW16 and Flat.
_FAISS_SUFFIX = re.compile(r"^(PQ\d+.*|SQ\d+|SQfp16|SQbf16|RaBitQ.*|LSH.*|Refine.*|RFlat)$", re.I)


def split_baseline(text: str) -> tuple[str, list[str]]:
    """``"faiss:HNSW16,Flat"`` -> ("faiss", ["HNSW16", "Flat"]); ';' may also separate specs."""
    system, sep, rest = text.partition(":")
    system = system.strip().lower()
    if not sep or not rest.strip():
        raise ValueError(f"bad baseline {text!r}: expected <system>:<spec>[,<spec>...], "
                         "e.g. faiss:HNSW16,Flat")
    if ";" in rest:
        return system, [s.strip() for s in rest.split(";") if s.strip()]
    tokens = [t.strip() for t in rest.split(",") if t.strip()]
    if system != "faiss":
        return system, _join_vecdb_tokens(tokens) if system.startswith("vecdb") else tokens
    specs: list[str] = []
    for tok in tokens:
        last = specs[-1].split(",")[-1] if specs else ""
        # Join after an incomplete prefix, or an encoding after a component that has none yet.
        joins = _FAISS_PREFIX.match(last) or (
            _FAISS_SUFFIX.match(tok) and not _FAISS_SUFFIX.match(last) and last.lower() != "flat")
        if specs and joins:
            specs[-1] += "," + tok
        else:
            specs.append(tok)
    return system, specs


def _join_vecdb_tokens(tokens: list[str]) -> list[str]:
    """vecdb lists: a quantization token belongs to the index before it ("HNSW16,SQ8,Flat")."""
    specs: list[str] = []
    for tok in tokens:
        if specs and _QUANT.match(tok):
            specs[-1] += "," + tok
        else:
            specs.append(tok)
    return specs


def parse_sweep(items: tuple[str, ...] | list[str]) -> dict[str, list[Any]]:
    """``["ef=16,32", "rerank=2"]`` -> {"ef": [16, 32], "rerank": [2]} (numbers parsed)."""
    out: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ValueError(f"bad sweep {item!r}: expected name=v1,v2,...")
        out[name.strip()] = [_number(v.strip()) for v in values.split(",") if v.strip()]
    return out


def _number(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)
