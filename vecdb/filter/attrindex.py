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

from vecdb.errors import DataLoss, InvalidArgument
from vecdb.filter.evaluate import column_getter, int_comparison, kind_of, lower
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
        if self.kind in ("int", "list<int>") and isinstance(value, float):
            exact = int_comparison(op, value)  # the same exact rule as the pyarrow path
            if isinstance(exact, bool):
                return (0, card) if exact else (0, 0)
            op, value = exact
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

    def codes_equal(self, values: list[object]) -> np.ndarray:
        """Sorted distinct codes of the ``values`` present in this field (vectorized IN lookup)."""
        if self.cardinality == 0 or not values:
            return np.zeros(0, dtype=np.int64)
        if isinstance(self.uniques, pa.Array):
            # Hash the (short) IN list and probe every distinct value: hashing the uniques
            # instead (index_in) would rebuild a table of ``card`` strings per query.
            found = pc.is_in(self.uniques, value_set=pa.array([str(v) for v in values], pa.string()))
            return np.flatnonzero(found.to_numpy(zero_copy_only=False)).astype(np.int64)
        if self.kind in ("int", "list<int>", "timestamp", "bool"):
            # Like the pyarrow path's value set: exact integer keys; 2.5 can equal no integer.
            ints = [_key(v) for v in values if not isinstance(v, float) or v.is_integer()]
            keys = np.array([int(k) for k in ints if -(2**63) <= int(k) < 2**63], dtype=np.int64)  # type: ignore[call-overload]
        else:
            keys = np.array([float(v) for v in values], dtype=np.float64)  # type: ignore[arg-type]
        pos = np.searchsorted(self.uniques, keys)
        hit = pos < self.cardinality
        hit[hit] = self.uniques[pos[hit]] == keys[hit]
        return np.unique(pos[hit])

    def rows_for_codes(self, codes: np.ndarray) -> np.ndarray:
        """``(n,) bool``: rows whose value code is one of ``codes`` (sorted, distinct)."""
        n = self.num_rows
        starts, ends = self.bounds[codes], self.bounds[codes + 1]
        lens = ends - starts
        count = int(lens.sum())
        if count == 0:
            return np.zeros(n, dtype=bool)
        if self.codes is None or count * SPARSE_DIVISOR <= n:
            # positions in ``order`` of every matching row, slices laid end to end
            pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(count)
            out = np.zeros(n, dtype=bool)
            out[self.order[pos]] = True
            return out
        if self.bitmaps is not None and len(codes) <= 8:
            return np.unpackbits(np.bitwise_or.reduce(self.bitmaps[codes], axis=0), count=n).view(bool)
        lut = np.zeros(self.cardinality + 2, dtype=bool)  # +2: codes -2 (NaN) and -1 (NULL)
        lut[codes + 2] = True
        return lut[self.codes + 2]

    def rows_for(self, a: int, b: int) -> np.ndarray:
        """``(n,) bool``: rows whose value code is in ``[a, b)`` (one slice of ``order``)."""
        n = self.num_rows
        if b <= a or self.bounds[b] == self.bounds[a]:
            return np.zeros(n, dtype=bool)
        if self.codes is None or int(self.bounds[b] - self.bounds[a]) * SPARSE_DIVISOR <= n:
            out = np.zeros(n, dtype=bool)
            out[self.order[self.bounds[a]:self.bounds[b]]] = True
            return out
        if self.bitmaps is not None and b - a <= 8:
            return np.unpackbits(np.bitwise_or.reduce(self.bitmaps[a:b], axis=0), count=n).view(bool)
        return (self.codes >= a) & (self.codes < b)

    def nulls(self) -> np.ndarray:
        out = np.zeros(self.num_rows, dtype=bool)
        out[self.null_rows] = True
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
    values, parents = values.filter(keep), parents[keep.to_numpy(zero_copy_only=False)]
    if kind in ("string", "list<string>"):
        uniques, elem_codes, perm = _group_strings(values)
    else:
        uniques, elem_codes, perm = _group_keys(_numpy_keys(values, kind))
    card = len(uniques)
    order = parents[perm].astype(np.uint32)
    bounds = np.concatenate([[0], np.cumsum(np.bincount(elem_codes, minlength=card))]).astype(np.int64)
    codes = bitmaps = None
    if not kind.startswith("list"):
        codes = np.full(n, -1, dtype=np.int32)
        codes[nan_rows] = -2
        codes[parents] = elem_codes
        if 0 < card <= bitmap_max_values:
            bitmaps = _bitmaps(order, bounds, n)
    return FieldIndex(kind, n, uniques, bounds, order, codes, null_rows, nan_rows, bitmaps)


def _group_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct keys, each element's rank among them (``int32``) and the stable
    sorting permutation (one sort serves all three; -0.0 and 0.0 are one key)."""
    perm = np.argsort(keys, kind="stable")
    ordered = keys[perm]
    change = np.ones(len(keys), dtype=bool)
    change[1:] = ordered[1:] != ordered[:-1]
    elem_codes = np.empty(len(keys), dtype=np.int32)
    elem_codes[perm] = np.cumsum(change, dtype=np.int64).astype(np.int32) - 1
    return ordered[change], elem_codes, perm


def _group_strings(values: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Like :func:`_group_keys` for strings: hash-encode first, then sort only the dictionary
    (sorting 1M strings directly is ~10x slower when values repeat)."""
    encoded = values.cast(pa.string()).dictionary_encode()
    dictionary = encoded.dictionary
    srt = pc.array_sort_indices(dictionary).to_numpy(zero_copy_only=False)
    rank = np.empty(len(dictionary), dtype=np.int32)
    rank[srt] = np.arange(len(dictionary), dtype=np.int32)
    codes = rank[encoded.indices.to_numpy(zero_copy_only=False)] if len(values) else np.zeros(0, np.int32)
    return dictionary.take(pa.array(srt, pa.int64())), codes, np.argsort(codes, kind="stable")


def _bitmaps(order: np.ndarray, bounds: np.ndarray, n: int) -> np.ndarray:
    """``(card, ceil(n / 8)) uint8``: packed row bits per value, one value at a time so the
    temporary memory stays at n bytes whatever the cardinality."""
    out = np.empty((len(bounds) - 1, (n + 7) // 8), dtype=np.uint8)
    scratch = np.zeros(n, dtype=bool)
    for c in range(len(bounds) - 1):
        rows = order[bounds[c]:bounds[c + 1]]
        scratch[rows] = True
        out[c] = np.packbits(scratch)
        scratch[rows] = False
    return out


# ------------------------------------------------------------------------------------- the index


class AttributeIndex:
    """The attribute indexes of one segment: one :class:`FieldIndex` per indexed column."""

    def __init__(self, fields: Mapping[str, FieldIndex], num_rows: int) -> None:
        self.fields = dict(fields)
        self.num_rows = num_rows

    @classmethod
    def build(cls, table: pa.Table, fields: list[str] | None = None,
              bitmap_max_values: int = BITMAP_MAX_VALUES) -> AttributeIndex:
        """Index ``fields`` of ``table`` (default: every attribute column it can index; the
        ``id`` and ``vector`` columns of a segment are never indexed by default)."""
        if table.num_rows >= 2**32:
            raise InvalidArgument(f"cannot index {table.num_rows} rows: row offsets are uint32")
        names = [c for c in table.column_names if c not in ("id", "vector")] if fields is None else list(fields)
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

    @staticmethod
    def estimate_nbytes(num_rows: int, cardinality: int, *, elements: int | None = None,
                        null_rows: int = 0, unique_bytes: int = 8,
                        bitmap_max_values: int = BITMAP_MAX_VALUES) -> int:
        """Bytes one field's index will hold, before building it (for memory budgets).

        ``elements``: total list elements for a list field (None for a scalar field);
        ``unique_bytes``: bytes per distinct value (8 for numbers; 4 + mean length for strings).
        """
        fixed = 8 * (cardinality + 1) + unique_bytes * cardinality + 4 * null_rows
        if elements is not None:
            return fixed + 4 * elements
        bitmaps = cardinality * ((num_rows + 7) // 8) if 0 < cardinality <= bitmap_max_values else 0
        return fixed + 8 * num_rows + bitmaps

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
                parts["str_offsets"], parts["str_data"] = _string_parts(f.uniques)
            else:
                parts["uniques"] = f.uniques
            arrays.update({f"{name}.{k}": v for k, v in parts.items() if v is not None})
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> AttributeIndex:
        """Inverse of :meth:`to_arrays`. Every array is checked (sizes, ranges, order), so a
        damaged index raises DataLoss here, never a wrong mask or a crash later; the engine
        then rebuilds it from the segment."""
        try:
            if meta.get("version") != FORMAT_VERSION:
                raise DataLoss(f"attribute index format {meta.get('version')!r} is not supported")
            n = int(meta["num_rows"])
            fields = {str(name): _load_field(str(name), info, arrays, n) for name, info in meta["fields"].items()}
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, pa.ArrowException) as exc:
            raise DataLoss(f"attribute index is malformed: {exc}") from None
        return cls(fields, n)

    # ------------------------------------------------------------------------------ evaluation

    def leaf(self, node: Node) -> tuple[np.ndarray, np.ndarray | None] | None:
        """``(true, unknown)`` row masks of a leaf predicate (``unknown`` None when no row is
        unknown), or None if the index cannot answer it."""
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
        if isinstance(node, IsNull):
            nulls = f.nulls()
            return (~nulls if node.negated else nulls), None
        unknown = f.nulls() if len(f.null_rows) else None
        if isinstance(node, ArrayContains):
            return f.rows_for(*f.code_range("=", node.value.value)), unknown  # type: ignore[union-attr]
        if f.kind.startswith("list"):
            return None
        if isinstance(node, Compare):
            assert isinstance(node.right, Literal)
            if node.op == "!=":
                eq = f.rows_for(*f.code_range("=", node.right.value))
                return _known(~eq, unknown), unknown  # NaN != x is true
            return f.rows_for(*f.code_range(node.op, node.right.value)), unknown
        if isinstance(node, Between):
            a1, b1 = f.code_range(">=", node.low.value)  # type: ignore[union-attr]
            a2, b2 = f.code_range("<=", node.high.value)  # type: ignore[union-attr]
            inside = f.rows_for(max(a1, a2), min(b1, b2))
            return (_known(~inside, unknown) if node.negated else inside), unknown
        assert isinstance(node, InList)
        inside = f.rows_for_codes(f.codes_equal([v.value for v in node.values]))  # type: ignore[union-attr]
        return (_known(~inside, unknown) if node.negated else inside), unknown


def _known(mask: np.ndarray, unknown: np.ndarray | None) -> np.ndarray:
    """``mask`` without the unknown rows (in place: ``mask`` is always a fresh array)."""
    if unknown is not None:
        mask &= ~unknown
    return mask


def _string_parts(uniques: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets int64 (card + 1,), utf-8 bytes uint8)`` of a string array."""
    arr = uniques.cast(pa.large_string())
    if len(arr) == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.uint8)
    _, offsets, data = arr.buffers()
    offs = np.frombuffer(offsets, np.int64)[arr.offset:arr.offset + len(arr) + 1]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return (offs - offs[0]).astype(np.int64), raw[offs[0]:offs[-1]].copy()


_KEY_DTYPES = {"int": np.int64, "float": np.float64, "bool": np.uint8, "timestamp": np.int64,
               "list<int>": np.int64, "list<float>": np.float64, "list<timestamp>": np.int64}


def _load_field(name: str, info: Mapping[str, Any], arrays: Mapping[str, np.ndarray], n: int) -> FieldIndex:
    def get(part: str, dtype: type, optional: bool = False) -> np.ndarray | None:
        key = f"{name}.{part}"
        if key not in arrays:
            if optional:
                return None
            raise KeyError(f"missing array {key!r}")
        arr = np.asarray(arrays[key])
        if arr.dtype != np.dtype(dtype):
            raise ValueError(f"array {key!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        return arr

    def check(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"field {name!r}: {what}")

    kind = str(info["kind"])
    uniques: Any
    if kind in ("string", "list<string>"):
        offsets, data = get("str_offsets", np.int64), get("str_data", np.uint8)
        assert offsets is not None and data is not None
        check(offsets.ndim == 1 and len(offsets) >= 1, "bad string offsets")
        uniques = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
        uniques.validate(full=True)  # offsets in range and monotonic, valid UTF-8
        uniques = uniques.cast(pa.string())
        check(len(uniques) < 2 or pc.all(pc.less(uniques[:-1], uniques[1:])).as_py(), "uniques not sorted")
    else:
        check(kind in _KEY_DTYPES, f"unknown kind {kind!r}")
        uniques = get("uniques", _KEY_DTYPES[kind])
        check(uniques.ndim == 1 and bool(np.all(uniques[1:] > uniques[:-1])), "uniques not sorted")
    card = len(uniques)
    bounds, order = get("bounds", np.int64), get("order", np.uint32)
    null_rows, nan_rows = get("null_rows", np.uint32), get("nan_rows", np.uint32)
    codes, bitmaps = get("codes", np.int32, optional=True), get("bitmaps", np.uint8, optional=True)
    assert bounds is not None and order is not None and null_rows is not None and nan_rows is not None
    check(card == int(info["cardinality"]), "cardinality differs from the metadata")
    check(bounds.shape == (card + 1,) and bounds[0] == 0 and bounds[-1] == len(order)
          and bool(np.all(np.diff(bounds) >= 0)), "bad bounds")
    for rows in (order, null_rows, nan_rows):
        check(rows.ndim == 1 and (len(rows) == 0 or int(rows.max()) < n), "row offset out of range")
    check(kind.startswith("list") or codes is not None, "missing codes")
    if codes is not None:
        check(codes.shape == (n,) and (n == 0 or (int(codes.min()) >= -2 and int(codes.max()) < card)),
              "bad codes")
    if bitmaps is not None:
        check(bitmaps.shape == (card, (n + 7) // 8), "bad bitmaps shape")
    return FieldIndex(kind, n, uniques, bounds, order, codes, null_rows, nan_rows, bitmaps)


# ------------------------------------------------------------------------------ masks with index


def mask_with_index(node: Node, table: pa.Table, schema: pa.Schema, index: AttributeIndex) -> np.ndarray:
    """Row mask of a compiled tree using ``index`` where it covers a leaf (same result as without)."""
    if index.num_rows != table.num_rows:
        raise InvalidArgument(
            f"attribute index covers {index.num_rows} rows but the table has {table.num_rows}")
    get = column_getter(table, schema)
    true, _ = _truth(node, index, get, schema)
    return true


def _truth(node: Node, index: AttributeIndex, get: Any, schema: pa.Schema) -> tuple[np.ndarray, np.ndarray | None]:
    """``(is_true, is_false)`` masks; rows in neither are unknown (SQL NULL). ``is_false`` is
    None when no row is unknown (then it is ``~is_true``), which spares work without NULLs."""
    if isinstance(node, (And, Or)):
        parts = [_truth(c, index, get, schema) for c in node.operands]
        ts = [p[0] for p in parts]
        t = np.logical_and.reduce(ts) if isinstance(node, And) else np.logical_or.reduce(ts)
        if all(p[1] is None for p in parts):
            return t, None
        fs = [~p[0] if p[1] is None else p[1] for p in parts]
        return t, np.logical_or.reduce(fs) if isinstance(node, And) else np.logical_and.reduce(fs)
    if isinstance(node, Not):
        t, f = _truth(node.operand, index, get, schema)
        return (~t, None) if f is None else (f, t)
    answer = index.leaf(node)
    if answer is not None:
        t, unknown = answer
        return t, None if unknown is None else ~(t | unknown)
    result = lower(node, get, schema)
    if _null_count(result) == 0:
        return _true_rows(result), None
    return _true_rows(result), _true_rows(pc.invert(result))


def _null_count(result: Any) -> int:
    return 0 if isinstance(result, pa.Scalar) and result.is_valid else int(getattr(result, "null_count", 1))


def _true_rows(result: Any) -> np.ndarray:
    filled = pc.fill_null(result, False)
    out = filled.to_numpy() if isinstance(filled, pa.ChunkedArray) else filled.to_numpy(zero_copy_only=False)
    return np.asarray(out, dtype=bool)
