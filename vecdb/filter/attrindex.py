"""Per-segment attribute indexes: answer filter predicates without scanning the column.

For each indexed field the rows are grouped by value once, at build time:

- ``uniques``: the distinct non-null values, sorted (NaN kept apart);
- ``order``: ``(m,) uint32`` row offsets sorted by value, and ``bounds``: ``(card + 1,) int64``
  where the rows of ``uniques[c]`` are ``order[bounds[c]:bounds[c + 1]]``; a value range is
  therefore one contiguous slice of ``order`` (the "sorted array" of the design);
- ``codes``: ``(n,) int32`` the value's rank per row (-1 NULL, -2 NaN), for dense predicates;
- ``bitmaps``: ``(card, ceil(n / 8)) uint8`` packed bits per value, only for fields with at most
  ``bitmap_max_values`` distinct values.

List fields index their elements (``order`` then holds the parent row of each element), which
serves ``array_contains``. Memory per scalar field: ``8 n`` bytes (order + codes) + the uniques
+ ``card * n / 8`` for bitmaps; per list field ``4 * elements`` + the uniques.

A predicate matching few rows costs O(log card + matches); a dense one a pass over ``codes`` or
an OR of bitmaps. ``mask_with_index`` combines leaf results with SQL three-valued logic exactly
as pyarrow's Kleene kernels do, and falls back to pyarrow.compute for what is not covered.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.errors import InvalidArgument
from vecdb.filter.evaluate import column_getter, kind_of, lower
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
from vecdb.filter.schema import TIMESTAMP_TYPE

FORMAT_VERSION = 1
BITMAP_MAX_VALUES = 32
# A leaf matching at most n / SPARSE_DIVISOR rows is answered by scattering row offsets;
# above that a vectorized pass over codes (or bitmaps) is cheaper than random writes.
SPARSE_DIVISOR = 16
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_INDEXABLE = ("int", "float", "bool", "string", "timestamp", "list")


@dataclass
class FieldIndex:
    """The index of one column (see the module docstring for the arrays)."""

    kind: str  # int | float | bool | string | timestamp | list<...element kind>
    num_rows: int
    uniques: Any  # np.ndarray of keys, or pa.StringArray for strings
    bounds: np.ndarray
    order: np.ndarray
    codes: np.ndarray | None  # None for list fields
    null_rows: np.ndarray  # (k,) uint32 rows that are NULL
    nan_rows: np.ndarray  # (j,) uint32 rows that are NaN (float fields)
    bitmaps: np.ndarray | None

    @property
    def cardinality(self) -> int:
        return len(self.uniques)

    @property
    def nbytes(self) -> int:
        """Heap bytes held by this field's index."""
        arrays = [self.bounds, self.order, self.codes, self.null_rows, self.nan_rows, self.bitmaps]
        total = sum(a.nbytes for a in arrays if a is not None)
        if isinstance(self.uniques, pa.Array):  # offsets + characters (no validity: never NULL)
            lengths = pc.sum(pc.binary_length(self.uniques)).as_py() or 0
            return total + 4 * (len(self.uniques) + 1) + lengths
        return total + self.uniques.nbytes

    # ------------------------------------------------------------------------------- lookups

    def search(self, value: object, side: str) -> int:
        """Position of ``value`` among the sorted uniques (numpy searchsorted semantics)."""
        if self.kind in ("string", "list<string>"):
            return _bisect_strings(self.uniques, str(value), side)
        return int(np.searchsorted(self.uniques, _key(value), side=side))  # type: ignore[call-overload]

    def code_range(self, op: str, value: object) -> tuple[int, int]:
        """Codes ``[a, b)`` whose values satisfy ``x op value`` (``=`` and ordered ops)."""
        card = self.cardinality
        if op == "=":
            return self.search(value, "left"), self.search(value, "right")
        if op == "<":
            return 0, self.search(value, "left")
        if op == "<=":
            return 0, self.search(value, "right")
        if op == ">":
            return self.search(value, "right"), card
        assert op == ">="
        return self.search(value, "left"), card

    def rows_for(self, ranges: list[tuple[int, int]]) -> np.ndarray:
        """``(n,) bool``: rows whose value code falls in any of ``ranges``."""
        n = self.num_rows
        ranges = [(a, b) for a, b in ranges if b > a]
        count = sum(int(self.bounds[b] - self.bounds[a]) for a, b in ranges)
        if count == 0:
            return np.zeros(n, dtype=bool)
        if self.codes is None or count * SPARSE_DIVISOR <= n:
            out = np.zeros(n, dtype=bool)
            for a, b in ranges:
                out[self.order[self.bounds[a]:self.bounds[b]]] = True
            return out
        ncodes = sum(b - a for a, b in ranges)
        if self.bitmaps is not None and ncodes <= 8:
            packed = np.bitwise_or.reduce(
                np.concatenate([self.bitmaps[a:b] for a, b in ranges]), axis=0)
            return np.unpackbits(packed, count=n).view(bool)
        if len(ranges) == 1:
            a, b = ranges[0]
            return (self.codes >= a) & (self.codes < b)
        lut = np.zeros(self.cardinality + 2, dtype=bool)  # +2: codes -2 (NaN) and -1 (NULL)
        for a, b in ranges:
            lut[a + 2:b + 2] = True
        return lut[self.codes + 2]

    def nulls(self) -> np.ndarray:
        out = np.zeros(self.num_rows, dtype=bool)
        out[self.null_rows] = True
        return out

    def nans(self) -> np.ndarray:
        out = np.zeros(self.num_rows, dtype=bool)
        out[self.nan_rows] = True
        return out


def _bisect_strings(uniques: pa.Array, value: str, side: str) -> int:
    """Binary search in a sorted Arrow string array (UTF-8 byte order = code point order)."""
    lo, hi = 0, len(uniques)
    while lo < hi:
        mid = (lo + hi) // 2
        item = uniques[mid].as_py()
        if item < value or (side == "right" and item == value):
            lo = mid + 1
        else:
            hi = mid
    return lo


def _key(value: object) -> object:
    """A literal as the key type of the numeric uniques (timestamps: UTC microseconds)."""
    if isinstance(value, _dt.datetime):
        return (value - _EPOCH) // _dt.timedelta(microseconds=1)
    if isinstance(value, bool):
        return int(value)
    return value


# ------------------------------------------------------------------------------------ building


def _kind(t: pa.DataType) -> str:
    k = kind_of(t)
    if k == "list":
        return "list<" + kind_of(t.value_type) + ">"
    return k


def _numpy_keys(arr: pa.Array, kind: str) -> np.ndarray:
    """Sorted-comparable numpy keys of a null-free, NaN-free array."""
    if kind in ("timestamp", "list<timestamp>"):
        return arr.cast(TIMESTAMP_TYPE).cast(pa.int64()).to_numpy(zero_copy_only=False)
    if kind == "bool":
        return arr.cast(pa.uint8()).to_numpy(zero_copy_only=False)
    if kind.endswith("float>") or kind == "float":
        return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return arr.cast(pa.int64()).to_numpy(zero_copy_only=False)


def _build_field(col: pa.Array, name: str, bitmap_max_values: int) -> FieldIndex:
    kind = _kind(col.type)
    if kind_of(col.type) not in _INDEXABLE or kind in ("list<list>", "list<bool>"):
        raise InvalidArgument(f"cannot index attribute {name!r} of type {col.type}")
    n = len(col)
    null_rows = np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False)).astype(np.uint32)
    if kind.startswith("list"):
        values, parents = pc.list_flatten(col), pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
    else:
        values, parents = col, np.arange(n, dtype=np.int64)
    nan_rows = np.zeros(0, dtype=np.uint32)
    keep = values.is_valid()
    if pa.types.is_floating(values.type):
        is_nan = pc.fill_null(pc.is_nan(values), False)
        nan_rows = np.flatnonzero(is_nan.to_numpy(zero_copy_only=False)).astype(np.uint32)
        keep = pc.and_(keep, pc.invert(is_nan))
    keep_np = keep.to_numpy(zero_copy_only=False)
    values, parents = values.filter(keep), parents[keep_np]
    perm = pc.array_sort_indices(values).to_numpy(zero_copy_only=False)  # stable
    sorted_vals = values.take(pa.array(perm))
    order = parents[perm].astype(np.uint32)
    m = len(sorted_vals)
    change = np.ones(m, dtype=bool)
    if m > 1:
        change[1:] = pc.not_equal(sorted_vals[1:], sorted_vals[:-1]).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    bounds = np.append(starts, m).astype(np.int64)
    first = sorted_vals.take(pa.array(starts, pa.int64()))
    string = kind in ("string", "list<string>")
    uniques = first.cast(pa.string()) if string else _numpy_keys(first, kind)
    codes = bitmaps = None
    if not kind.startswith("list"):
        codes = np.full(n, -1, dtype=np.int32)
        codes[nan_rows] = -2
        codes[order] = np.repeat(np.arange(len(starts), dtype=np.int32), np.diff(bounds))
        if 0 < len(starts) <= bitmap_max_values:
            onehot = codes[None, :] == np.arange(len(starts), dtype=np.int32)[:, None]
            bitmaps = np.packbits(onehot, axis=1)
    return FieldIndex(kind, n, uniques, bounds, order, codes, null_rows, nan_rows, bitmaps)


# ------------------------------------------------------------------------------------- the index


class AttributeIndex:
    """The attribute indexes of one segment: one :class:`FieldIndex` per indexed column."""

    def __init__(self, fields: Mapping[str, FieldIndex], num_rows: int) -> None:
        self.fields = dict(fields)
        self.num_rows = num_rows

    @classmethod
    def build(cls, table: pa.Table, fields: list[str] | None = None,
              bitmap_max_values: int = BITMAP_MAX_VALUES) -> AttributeIndex:
        """Index ``fields`` of ``table`` (default: every column it can index)."""
        names = table.column_names if fields is None else list(fields)
        out: dict[str, FieldIndex] = {}
        for name in names:
            if name not in table.column_names:
                raise InvalidArgument(f"cannot index unknown attribute {name!r}")
            col = table.column(name).combine_chunks()
            if fields is None and kind_of(col.type) not in _INDEXABLE:
                continue
            out[name] = _build_field(col, name, bitmap_max_values)
        return cls(out, table.num_rows)

    @property
    def nbytes(self) -> int:
        """Heap bytes of all field indexes."""
        return sum(f.nbytes for f in self.fields.values())

    # ------------------------------------------------------------------------------ persistence

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """A JSON-able metadata dict and named numpy arrays (names ``<field>.<part>``)."""
        meta: dict[str, Any] = {"version": FORMAT_VERSION, "num_rows": self.num_rows, "fields": {}}
        arrays: dict[str, np.ndarray] = {}
        for name, f in self.fields.items():
            meta["fields"][name] = {"kind": f.kind, "cardinality": f.cardinality}
            parts = {"bounds": f.bounds, "order": f.order, "null_rows": f.null_rows, "nan_rows": f.nan_rows,
                     "codes": f.codes, "bitmaps": f.bitmaps}
            if isinstance(f.uniques, pa.Array):
                offsets, data = f.uniques.buffers()[1:3]
                start = f.uniques.offset
                offs = np.frombuffer(offsets, np.int32)[start:start + len(f.uniques) + 1] if offsets else \
                    np.zeros(1, np.int32)
                parts["str_offsets"] = (offs - offs[0]).astype(np.int64)
                raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
                parts["str_data"] = raw[offs[0]:offs[-1]].copy()
            else:
                parts["uniques"] = f.uniques
            arrays.update({f"{name}.{k}": v for k, v in parts.items() if v is not None})
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> AttributeIndex:
        """Inverse of :meth:`to_arrays`; raises InvalidArgument on anything inconsistent."""
        try:
            if meta.get("version") != FORMAT_VERSION:
                raise InvalidArgument(f"attribute index format {meta.get('version')!r} is not supported")
            n = int(meta["num_rows"])
            fields = {name: _load_field(name, info, arrays, n) for name, info in meta["fields"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidArgument(f"attribute index is malformed: {exc!r}") from None
        return cls(fields, n)

    # ------------------------------------------------------------------------------ evaluation

    def leaf(self, node: Node) -> tuple[np.ndarray, np.ndarray] | None:
        """``(true, unknown)`` row masks of a leaf predicate, or None if the index cannot answer."""
        target = node.field if isinstance(node, ArrayContains) else getattr(node, "operand", None)
        if isinstance(node, Compare):
            target = node.left
            if not isinstance(node.right, Literal):
                return None
        bounds_are_literals = isinstance(getattr(node, "low", None), Literal) and isinstance(
            getattr(node, "high", None), Literal)
        if isinstance(node, Between) and not bounds_are_literals:
            return None
        if not isinstance(target, Field) or target.name not in self.fields:
            return None
        f = self.fields[target.name]
        unknown = f.nulls()
        if isinstance(node, IsNull):
            known = np.zeros(self.num_rows, dtype=bool)
            return (~unknown if node.negated else unknown), known
        if isinstance(node, ArrayContains):
            a, b = f.code_range("=", node.value.value)  # type: ignore[union-attr]
            return f.rows_for([(a, b)]), unknown
        if f.kind.startswith("list"):
            return None
        if isinstance(node, Compare):
            assert isinstance(node.right, Literal)
            if node.op == "!=":
                eq = f.rows_for([f.code_range("=", node.right.value)])
                return ~eq & ~unknown, unknown  # NaN != x is true
            return f.rows_for([f.code_range(node.op, node.right.value)]), unknown
        if isinstance(node, Between):
            a = f.search(node.low.value, "left")  # type: ignore[union-attr]
            b = f.search(node.high.value, "right")  # type: ignore[union-attr]
            inside = f.rows_for([(a, b)])
            return ((~inside & ~unknown) if node.negated else inside), unknown
        assert isinstance(node, InList)
        inside = f.rows_for([f.code_range("=", v.value) for v in node.values])  # type: ignore[union-attr]
        return ((~inside & ~unknown) if node.negated else inside), unknown


def _load_field(name: str, info: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n: int) -> FieldIndex:
    def get(part: str, optional: bool = False) -> np.ndarray | None:
        key = f"{name}.{part}"
        if key not in arrays:
            if optional:
                return None
            raise KeyError(key)
        return np.asarray(arrays[key])

    kind = str(info["kind"])
    if kind in ("string", "list<string>"):
        offsets, data = get("str_offsets"), get("str_data")
        assert offsets is not None and data is not None
        uniques: Any = pa.LargeStringArray.from_buffers(
            len(offsets) - 1, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data.astype(np.uint8))
        ).cast(pa.string())
    else:
        uniques = get("uniques")
    bounds, order = get("bounds"), get("order")
    assert bounds is not None and order is not None
    codes = get("codes", optional=True)
    field = FieldIndex(kind, n, uniques, bounds.astype(np.int64), order.astype(np.uint32, copy=False),
                       codes, get("null_rows"), get("nan_rows"), get("bitmaps", optional=True))  # type: ignore[arg-type]
    card = len(uniques)
    sizes_ok = (card == int(info["cardinality"]) and len(field.bounds) == card + 1
                and int(field.bounds[-1]) == len(order) and (codes is None or len(codes) == n)
                and (len(order) == 0 or int(order.max()) < n))
    if not sizes_ok:
        raise ValueError(f"field {name!r} has inconsistent array sizes")
    return field


# ------------------------------------------------------------------------------ masks with index


def mask_with_index(node: Node, table: pa.Table, schema: pa.Schema, index: AttributeIndex) -> np.ndarray:
    """Row mask of a compiled tree using ``index`` where it covers a leaf (same result as without)."""
    if index.num_rows != table.num_rows:
        raise InvalidArgument(
            f"attribute index covers {index.num_rows} rows but the table has {table.num_rows}")
    get = column_getter(table, schema)
    true, _ = _truth(node, index, get, schema)
    return true


def _truth(node: Node, index: AttributeIndex, get: Any, schema: pa.Schema) -> tuple[np.ndarray, np.ndarray]:
    """``(is_true, is_false)`` masks: rows in neither are unknown (SQL NULL)."""
    if isinstance(node, (And, Or)):
        parts = [_truth(c, index, get, schema) for c in node.operands]
        ts, fs = [p[0] for p in parts], [p[1] for p in parts]
        if isinstance(node, And):
            return np.logical_and.reduce(ts), np.logical_or.reduce(fs)
        return np.logical_or.reduce(ts), np.logical_and.reduce(fs)
    if isinstance(node, Not):
        t, f = _truth(node.operand, index, get, schema)
        return f, t
    answer = index.leaf(node)
    if answer is not None:
        t, unknown = answer
        return t, ~(t | unknown)
    result = lower(node, get, schema)
    return _true_rows(result), _true_rows(pc.invert(result))


def _true_rows(result: Any) -> np.ndarray:
    filled = pc.fill_null(result, False)
    out = filled.to_numpy() if isinstance(filled, pa.ChunkedArray) else filled.to_numpy(zero_copy_only=False)
    return np.asarray(out, dtype=bool)
