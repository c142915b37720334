"""Shared test material: a schema, seeded random tables, a filter generator and a pure-Python oracle.

The oracle evaluates filter *text* row by row with SQL three-valued logic (None = unknown),
independently of pyarrow, by re-parsing with vecdb's parser only for structure.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
from hypothesis import strategies as st

from vecdb.filter import coerce_attributes, parse_schema
from vecdb.filter.expr import (
    And,
    ArrayContains,
    Between,
    Compare,
    Field,
    InList,
    IsNull,
    Literal,
    Node,
    Not,
    Or,
)

SCHEMA = parse_schema(
    {
        "i32": "int32",
        "i64": "int64",
        "f32": "float32",
        "f64": "float64",
        "flag": "bool",
        "lang": "string",
        "tags": "list<string>",
        "nums": "list<int64>",
        "ts": "timestamp",
    }
)
LANGS = ["en", "fr", "de", "it's", "", "zh"]
TAGS = ["a", "b", "c", "d"]
BASE_TS = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def random_table(n: int, seed: int, null_rate: float = 0.15) -> pa.Table:
    """``n`` rows of every schema type with NULLs, NaNs and duplicates; deterministic per seed."""
    rng = np.random.default_rng(seed)

    def nulls(values: list) -> list:
        return [None if rng.random() < null_rate else v for v in values]

    wide = seed % 3 == 0  # int64 values far beyond the float32 / int32 ranges
    f64 = rng.integers(-5, 6, n).astype(np.float64) / 2
    f64[rng.random(n) < 0.05] = np.nan
    cols = {
        "i32": nulls(rng.integers(-5, 6, n).tolist()),
        "i64": nulls(rng.integers(-(2**40) if wide else 0, 2**40 if wide else 20, n).tolist()),
        "f32": nulls((rng.integers(-4, 5, n) / 4).tolist()),
        "f64": nulls(f64.tolist()),
        "flag": nulls(rng.random(n).__lt__(0.5).tolist()),
        "lang": nulls([LANGS[i] for i in rng.integers(0, len(LANGS), n)]),
        "tags": nulls([[TAGS[j] if rng.random() > 0.1 else None
                        for j in rng.integers(0, 4, rng.integers(0, 4))] for _ in range(n)]),
        "nums": nulls([rng.integers(0, 6, rng.integers(0, 3)).tolist() for _ in range(n)]),
        "ts": nulls([BASE_TS + dt.timedelta(days=int(d)) for d in rng.integers(0, 10, n)]),
    }
    return coerce_attributes(cols, SCHEMA, n)


# ------------------------------------------------------------------------------ filter strategy

_SCALAR_VALUES = {
    "i32": st.one_of(st.integers(-6, 6).map(str), st.sampled_from(["2.5", "-1.0", "1e1", "99999999999"])),
    "i64": st.one_of(st.integers(-2, 21).map(str),
                     st.sampled_from(["-9223372036854775808", "1099511627776", "7.5", "1e30"])),
    "f32": st.sampled_from(["0.25", "-1", "0", "1.0", "0.5", "-0.75", "2e0", "0.1", "1e-50"]),
    "f64": st.sampled_from(["0.5", "-2.5", "0", "1", "2.5", "-0.0", "3", "9007199254740993"]),
    "flag": st.sampled_from(["TRUE", "FALSE"]),
    "lang": st.sampled_from(["'en'", "'fr'", "'it''s'", "''", "'zz'", "'de'", "'é'", "'e'"]),
    "ts": st.one_of(
        st.integers(-1, 10).map(lambda d: f"'{(BASE_TS + dt.timedelta(days=d)).date().isoformat()}'"),
        st.sampled_from(["'2024-01-03T23:00:00-01:00'", "'2024-01-02T00:00:00.000001'"])),
}

_ORDERED = ["i32", "i64", "f32", "f64", "lang", "ts"]


@st.composite
def predicates(draw: st.DrawFn) -> str:
    """One leaf predicate over the test schema, as text."""
    kind = draw(st.sampled_from(["cmp", "cmp", "in", "between", "null", "contains", "bare"]))
    if kind == "contains":
        field = draw(st.sampled_from(["tags", "nums"]))
        values = (st.sampled_from(["'a'", "'b'", "'z'"]) if field == "tags"
                  else st.one_of(st.integers(0, 6).map(str), st.sampled_from(["2.0", "2.5"])))
        value = draw(values)
        return f"array_contains({field}, {value})"
    if kind == "bare":
        return "flag"
    field = draw(st.sampled_from(list(_SCALAR_VALUES) + (["tags", "nums"] if kind == "null" else [])))
    if kind == "null":
        return f"{field} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    value = _SCALAR_VALUES[field]
    if kind == "in":
        vals = draw(st.lists(value, min_size=1, max_size=5))
        return f"{field} {draw(st.sampled_from(['', 'NOT ']))}IN ({', '.join(vals)})"
    if kind == "between" and field in _ORDERED:
        neg = draw(st.sampled_from(["", "NOT "]))
        return f"{field} {neg}BETWEEN {draw(value)} AND {draw(value)}"
    ops = ["=", "!=", "<>"] + (["<", "<=", ">", ">="] if field in _ORDERED else [])
    op = draw(st.sampled_from(ops))
    if draw(st.booleans()):
        return f"{draw(value)} {op} {field}"
    return f"{field} {op} {draw(value)}"


def filters(max_leaves: int = 6) -> st.SearchStrategy[str]:
    """Random well-typed filters combining predicates with AND/OR/NOT and parentheses."""
    return st.recursive(
        predicates(),
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from([" AND ", " OR ", " and ", " or "]), inner).map(
                lambda t: f"({t[0]}{t[1]}{t[2]})"),
            inner.map(lambda s: f"NOT ({s})"),
        ),
        max_leaves=max_leaves,
    )


# ---------------------------------------------------------------------------------- the oracle


_ROWS: dict[int, tuple[pa.Table, list[dict]]] = {}  # the rows of each table, converted once


def oracle_mask(node: Node, table: pa.Table) -> np.ndarray:
    """Evaluate a compiled (typed) tree row by row in pure Python; True only where TRUE."""
    key = id(table)
    if key not in _ROWS or _ROWS[key][0] is not table:
        _ROWS[key] = (table, table.to_pylist())
    rows = _ROWS[key][1]
    return np.array([_eval(node, row) is True for row in rows], dtype=bool)


def _value(op: Field | Literal, row: dict) -> object:
    v = row[op.name] if isinstance(op, Field) else op.value
    if isinstance(v, float) and isinstance(op, Field) and op.name == "f32":
        return float(np.float32(v))
    return v


def _cmp(op: str, a: object, b: object) -> bool | None:
    if a is None or b is None:
        return None
    if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return op == "!="
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]


def _not(v: bool | None) -> bool | None:
    return None if v is None else not v


def _eval(node: Node, row: dict) -> bool | None:
    if isinstance(node, And):
        vals = [_eval(c, row) for c in node.operands]
        return False if False in vals else (None if None in vals else True)
    if isinstance(node, Or):
        vals = [_eval(c, row) for c in node.operands]
        return True if True in vals else (None if None in vals else False)
    if isinstance(node, Not):
        return _not(_eval(node.operand, row))
    if isinstance(node, Compare):
        return _cmp(node.op, _value(node.left, row), _value(node.right, row))  # type: ignore[arg-type]
    if isinstance(node, IsNull):
        isnull = row[node.operand.name] is None  # type: ignore[union-attr]
        return not isnull if node.negated else isnull
    if isinstance(node, Between):
        x = _value(node.operand, row)  # type: ignore[arg-type]
        lo = _cmp(">=", x, _value(node.low, row))  # type: ignore[arg-type]
        hi = _cmp("<=", x, _value(node.high, row))  # type: ignore[arg-type]
        inside = _eval_and(lo, hi)
        return _not(inside) if node.negated else inside
    if isinstance(node, InList):
        x = _value(node.operand, row)  # type: ignore[arg-type]
        if x is None:
            return None
        hit = any(_cmp("=", x, v.value) is True for v in node.values)  # type: ignore[union-attr]
        return not hit if node.negated else hit
    assert isinstance(node, ArrayContains)
    items = row[node.field.name]
    if items is None:
        return None
    return node.value.value in [i for i in items if i is not None]  # type: ignore[union-attr]


def _eval_and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True
