"""Type-check a parsed filter against a schema and evaluate it on Arrow columns.

``compile_filter`` returns a :class:`CompiledFilter` holding a normalized, typed tree (field on the
left of every comparison, literals converted to the field's type), its ``pyarrow.compute``
expression, the columns it reads and a canonical string. ``mask`` evaluates it with SQL
three-valued logic: a row is kept only where the filter is TRUE (NULL compares as unknown).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vecdb.errors import InvalidArgument
from vecdb.filter.expr import (
    FLIPPED_OP,
    And,
    ArrayContains,
    Between,
    Compare,
    Field,
    FilterError,
    InList,
    IsNull,
    Literal,
    Node,
    Not,
    Operand,
    Or,
    bind_params,
    parse,
    to_text,
)
from vecdb.filter.schema import TIMESTAMP_TYPE

if TYPE_CHECKING:
    from vecdb.filter.attrindex import AttributeIndex

# Comparison operator -> pyarrow.compute function.
_CMP = {"=": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal, ">": pc.greater,
        ">=": pc.greater_equal}
_NULL_BOOL = pa.scalar(None, pa.bool_())


# ------------------------------------------------------------------- array_contains as a UDF
# Arrow has no "list contains" kernel, so we register one (per element type) with
# pyarrow.compute; that keeps array_contains inside a plain pc.Expression.


def _list_contains(ctx: Any, lists: Any, value: Any) -> Any:
    """Per row: NULL for a NULL list, else whether any element equals ``value``."""
    as_scalar = isinstance(lists, pa.Scalar)
    arr = pa.array([lists.as_py()], lists.type) if as_scalar else lists
    flat = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
    # ``value`` is a scalar in our own calls; an array (one value per row) if Acero broadcasts.
    per_row = value if isinstance(value, pa.Scalar) else pc.take(value, pa.array(parents))
    eq = pc.equal(flat, per_row)
    hit = np.zeros(len(arr), dtype=bool)
    hit[parents[np.asarray(pc.fill_null(eq, False).to_numpy(zero_copy_only=False), dtype=bool)]] = True
    out = pa.array(hit, mask=np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), dtype=bool))
    return out[0] if as_scalar else out


def _register_list_contains() -> dict[str, str]:
    names = {}
    for elem in (pa.string(), pa.int64()):
        name = f"vecdb_list_contains_{elem}"
        names[str(elem)] = name
        try:
            pc.get_function(name)
        except pa.ArrowKeyError:  # not yet registered in this process
            pc.register_scalar_function(
                _list_contains, name,
                {"summary": "list contains value", "description": "NULL for a NULL list."},
                {"lists": pa.list_(elem), "value": elem}, pa.bool_())
    return names


_LIST_CONTAINS = _register_list_contains()


@dataclass(frozen=True)
class CompiledFilter:
    """A type-checked filter, ready to evaluate on tables with the schema it was compiled for.

    node: the normalized tree (every comparison is ``Field op Literal`` or ``Field op Field``).
    expression: the same filter as a ``pyarrow.compute.Expression`` (null where unknown).
    fields: the columns it reads.  canonical: a deterministic text form, e.g. for cache keys.
    """

    # Equality and hashing use the canonical text and the schema: Expression has neither.
    node: Node = field(compare=False)
    schema: pa.Schema = field(repr=False)
    expression: pc.Expression = field(repr=False, compare=False)
    fields: frozenset[str] = field(compare=False)
    canonical: str
    text: str = field(repr=False, compare=False)

    def mask(self, table: pa.Table, index: AttributeIndex | None = None) -> np.ndarray:
        """Row mask, ``(table.num_rows,) bool``: True where the filter is TRUE.

        With ``index`` (built on the same rows), covered predicates are answered from it and the
        rest with pyarrow.compute; the result is identical either way.
        """
        if index is not None:
            from vecdb.filter.attrindex import mask_with_index

            return mask_with_index(self.node, table, self.schema, index)
        result = lower(self.node, column_getter(table, self.schema), self.schema)
        return to_mask(result, table.num_rows)

    def __str__(self) -> str:
        return self.canonical


def compile_filter(
    text: str | None, schema: pa.Schema, params: Mapping[str, object] | None = None
) -> CompiledFilter | None:
    """Parse, bind ``params`` and type-check ``text``; None when the filter is empty."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    node = bind_params(parse(text), params, text)  # type: ignore[arg-type]
    typed = _Checker(schema, text).node(node)
    fields = frozenset(_fields_of(typed))
    expression = lower(typed, pc.field, schema)
    return CompiledFilter(typed, schema, expression, fields, to_text(typed), text)


def estimate_selectivity(mask: np.ndarray) -> float:
    """The fraction of rows a mask keeps (0.0 for an empty mask)."""
    return float(np.count_nonzero(mask)) / mask.size if mask.size else 0.0


# ------------------------------------------------------------------------------- type checking

_KIND_NAMES = {"int": "integer", "float": "float", "bool": "bool", "string": "string",
               "timestamp": "timestamp", "list": "list"}


def kind_of(t: pa.DataType) -> str:
    """The comparison family of an Arrow type: int, float, bool, string, timestamp or list."""
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    return str(t)


def _value_kind(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    return "a timestamp"


class _Checker:
    """Resolves fields, converts literals to the field's type and normalizes comparisons."""

    def __init__(self, schema: pa.Schema, text: str) -> None:
        self.schema = schema
        self.text = text

    def fail(self, message: str, pos: int) -> FilterError:
        return FilterError(message, self.text, pos)

    def node(self, node: Node) -> Node:
        if isinstance(node, (And, Or)):
            return type(node)(tuple(self.node(c) for c in node.operands), node.pos)
        if isinstance(node, Not):
            return Not(self.node(node.operand), node.pos)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, InList):
            f, t = self.subject(node.operand, "IN")
            vals = tuple(self.literal(v, f, t, "IN") for v in node.values)  # type: ignore[arg-type]
            return InList(f, vals, node.negated, node.pos)
        if isinstance(node, Between):
            f, t = self.subject(node.operand, "BETWEEN")
            if kind_of(t) == "bool":
                raise self.fail(f"bool field {f.name!r} supports only = and !=", node.pos)
            low = self.bound(node.low, f, t)
            high = self.bound(node.high, f, t)
            return Between(f, low, high, node.negated, node.pos)
        if isinstance(node, IsNull):
            f, _ = self.subject(node.operand, "IS NULL", allow_list=True)
            return IsNull(f, node.negated, node.pos)
        assert isinstance(node, ArrayContains)
        t = self.field_type(node.field)
        if kind_of(t) != "list" or str(t.value_type) not in _LIST_CONTAINS:
            raise self.fail(f"array_contains needs a list<string> or list<int64> field; {node.field.name!r} "
                            f"is {t}", node.field.pos)
        elem = Field(node.field.name, node.field.pos)
        value = self.literal(node.value, elem, t.value_type, "array_contains")  # type: ignore[arg-type]
        return ArrayContains(node.field, value, node.pos)

    def field_type(self, f: Field) -> pa.DataType:
        i = self.schema.get_field_index(f.name)
        if i < 0:
            known = ", ".join(self.schema.names) or "none"
            raise self.fail(f"unknown field {f.name!r} (fields: {known})", f.pos)
        return self.schema.field(i).type

    def subject(self, op: Operand, what: str, allow_list: bool = False) -> tuple[Field, pa.DataType]:
        if not isinstance(op, Field):
            raise self.fail(f"{what} needs a field name on its left", op.pos)
        t = self.field_type(op)
        if kind_of(t) == "list" and not allow_list:
            raise self.fail(f"{what} does not apply to list field {op.name!r}; use array_contains", op.pos)
        return op, t

    def compare(self, node: Compare) -> Compare:
        left, right, op = node.left, node.right, node.op
        if not isinstance(left, Field):
            if not isinstance(right, Field):
                raise self.fail("a comparison needs at least one field name", node.pos)
            left, right, op = right, left, FLIPPED_OP[op]
        f, t = self.subject(left, f"'{node.op}'")
        if kind_of(t) == "bool" and op not in ("=", "!="):
            raise self.fail(f"bool field {f.name!r} supports only = and !=", node.pos)
        if isinstance(right, Field):
            t2 = self.subject(right, f"'{node.op}'")[1]
            k1, k2 = kind_of(t), kind_of(t2)
            if k1 != k2 and {k1, k2} != {"int", "float"}:
                raise self.fail(
                    f"cannot compare {_KIND_NAMES.get(k1, k1)} field {f.name!r} with "
                    f"{_KIND_NAMES.get(k2, k2)} field {right.name!r}", node.pos)
            return Compare(op, f, right, node.pos)
        return Compare(op, f, self.literal(right, f, t, f"'{node.op}'"), node.pos)  # type: ignore[arg-type]

    def bound(self, op: Operand, f: Field, t: pa.DataType) -> Operand:
        if isinstance(op, Field):
            k2 = kind_of(self.field_type(op))
            if k2 != kind_of(t) and {k2, kind_of(t)} != {"int", "float"}:
                raise self.fail(f"BETWEEN bound {op.name!r} has a different type than {f.name!r}", op.pos)
            return op
        return self.literal(op, f, t, "BETWEEN")  # type: ignore[arg-type]

    def literal(self, lit: Literal, f: Field, t: pa.DataType, what: str) -> Literal:
        """Convert ``lit`` to the Python value matching field type ``t`` or raise."""
        v, kind = lit.value, kind_of(t)
        if v is None:
            raise self.fail(f"{what} with NULL is never true; use IS NULL or IS NOT NULL", lit.pos)
        ok = (
            (kind == "int" and isinstance(v, (int, float)) and not isinstance(v, bool))
            or (kind == "float" and isinstance(v, (int, float)) and not isinstance(v, bool))
            or (kind == "bool" and isinstance(v, bool))
            or (kind == "string" and isinstance(v, str))
            or (kind == "timestamp" and isinstance(v, (str, _dt.datetime)))
        )
        if not ok:
            raise self.fail(
                f"cannot compare {_KIND_NAMES.get(kind, kind)} field {f.name!r} with {_value_kind(v)}",
                lit.pos)
        if kind == "float":
            return Literal(float(v), lit.pos)  # type: ignore[arg-type]
        if kind == "timestamp":
            return Literal(self.timestamp(v, lit.pos), lit.pos)  # type: ignore[arg-type]
        return lit

    def timestamp(self, v: str | _dt.datetime, pos: int) -> _dt.datetime:
        if isinstance(v, str):
            try:
                v = _dt.datetime.fromisoformat(v.strip())
            except ValueError:
                raise self.fail(f"invalid timestamp {v!r}: expected ISO 8601 like '2024-05-01T12:00:00'",
                                pos) from None
        # Naive timestamps mean UTC, the zone every timestamp column is stored in.
        return v.replace(tzinfo=_dt.timezone.utc) if v.tzinfo is None else v.astimezone(_dt.timezone.utc)


def _fields_of(node: Node) -> set[str]:
    if isinstance(node, (And, Or)):
        return set().union(*(_fields_of(c) for c in node.operands))
    if isinstance(node, Not):
        return _fields_of(node.operand)
    if isinstance(node, ArrayContains):
        return {node.field.name}
    operands: tuple[Any, ...]
    if isinstance(node, Compare):
        operands = (node.left, node.right)
    elif isinstance(node, Between):
        operands = (node.operand, node.low, node.high)
    else:
        operands = (node.operand,)
    return {o.name for o in operands if isinstance(o, Field)}


# ------------------------------------------------------------------------------------- lowering

Getter = Callable[[str], Any]


def column_getter(table: pa.Table, schema: pa.Schema) -> Getter:
    """Columns of ``table`` in the schema's types; a column the table lacks reads as all NULL."""

    def get(name: str) -> Any:
        t = schema.field(name).type
        i = table.schema.get_field_index(name)
        if i < 0:
            return pa.nulls(table.num_rows, t)
        col = table.column(i)
        if col.type == t:
            return col
        try:
            return col.cast(t)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidArgument(f"column {name!r} of type {col.type} cannot be read as {t}: {exc}") \
                from None

    return get


def scalar(value: object) -> pa.Scalar:
    """The Arrow scalar of a typed literal (ints as int64, floats as float64)."""
    if isinstance(value, bool):
        return pa.scalar(value, pa.bool_())
    if isinstance(value, int):
        return pa.scalar(value, pa.int64())
    if isinstance(value, float):
        return pa.scalar(value, pa.float64())
    if isinstance(value, str):
        return pa.scalar(value, pa.string())
    return pa.scalar(value, TIMESTAMP_TYPE)


def value_set(values: tuple[Literal, ...], t: pa.DataType) -> pa.Array:
    """The IN list as an array of the column's type; values that cannot equal any row are dropped."""
    vals = [lit.value for lit in values]
    if pa.types.is_integer(t):
        info = np.iinfo(t.to_pandas_dtype())
        lo, hi = int(info.min), int(info.max)
        ints = {int(v) for v in vals if isinstance(v, int) or float(v).is_integer()}  # type: ignore[arg-type]
        return pa.array(sorted(v for v in ints if lo <= v <= hi), t)
    if pa.types.is_floating(t):
        floats = np.array(sorted({float(v) for v in vals}), dtype=np.float64)  # type: ignore[arg-type]
        if t != pa.float64():
            # is_in casts the set to the column type (1e-50 -> 0.0 in float32), while '=' compares
            # in float64: keep only values the column type holds exactly, as only they can match.
            with np.errstate(over="ignore"):
                floats = floats[floats.astype(t.to_pandas_dtype()).astype(np.float64) == floats]
        if np.any(floats == 0.0):  # is_in hashes, and -0.0 hashes apart from 0.0 though they are equal
            floats = np.append(floats, [0.0, -0.0])
        return pa.array(floats, pa.float64())
    if pa.types.is_boolean(t) or pa.types.is_string(t):
        return pa.array(sorted(set(vals)), t)  # type: ignore[type-var]
    return pa.array(sorted(set(vals)), TIMESTAMP_TYPE)  # type: ignore[type-var]


def _operand(op: Operand, get: Getter) -> Any:
    return get(op.name) if isinstance(op, Field) else scalar(op.value)


def _balanced(fn: Callable[[Any, Any], Any], items: list[Any]) -> Any:
    """Combine with a binary function as a balanced tree, so 10,000 ORs stay shallow."""
    while len(items) > 1:
        nxt = [fn(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


def lower(node: Node, get: Getter, schema: pa.Schema) -> Any:
    """Build the filter with pyarrow.compute; ``get(name)`` yields a column or ``pc.field``.

    The same code produces the Expression (``get = pc.field``) and the array result (``get``
    reads table columns), so the two cannot disagree.
    """
    if isinstance(node, And):
        return _balanced(pc.and_kleene, [lower(c, get, schema) for c in node.operands])
    if isinstance(node, Or):
        return _balanced(pc.or_kleene, [lower(c, get, schema) for c in node.operands])
    if isinstance(node, Not):
        return pc.invert(lower(node.operand, get, schema))
    if isinstance(node, Compare):
        return _compare(node.op, node.left, node.right, get, schema)
    if isinstance(node, IsNull):
        x = get(node.operand.name)  # type: ignore[union-attr]
        return pc.is_valid(x) if node.negated else pc.is_null(x)
    if isinstance(node, Between):
        inside = pc.and_kleene(_compare(">=", node.operand, node.low, get, schema),
                               _compare("<=", node.operand, node.high, get, schema))
        return pc.invert(inside) if node.negated else inside
    if isinstance(node, InList):
        name = node.operand.name  # type: ignore[union-attr]
        x = get(name)
        hit = pc.is_in(x, value_set=value_set(node.values, schema.field(name).type))  # type: ignore[arg-type]
        # is_in says false for a NULL row; SQL says unknown, which matters under NOT.
        has_nulls = isinstance(x, pc.Expression) or x.null_count > 0
        result = pc.if_else(pc.is_valid(x), hit, _NULL_BOOL) if has_nulls else hit
        return pc.invert(result) if node.negated else result
    assert isinstance(node, ArrayContains)
    elem = schema.field(node.field.name).type.value_type
    lists = get(node.field.name)
    v = node.value.value  # type: ignore[union-attr]
    if pa.types.is_integer(elem) and isinstance(v, float):
        exact = int_comparison("=", v)
        if isinstance(exact, bool):  # 2.5 equals no integer
            return _constant(lists, exact)
        v = exact[1]
    value = pa.scalar(v, elem)
    if isinstance(lists, pc.Expression):
        return pc.Expression._call(_LIST_CONTAINS[str(elem)], [lists, pc.scalar(value)])
    return pc.call_function(_LIST_CONTAINS[str(elem)], [lists, value])


def int_comparison(op: str, v: float) -> tuple[str, int] | bool:
    """``int_field op v`` for a float ``v`` as an exact integer comparison ``(op, bound)``, or
    a constant (for non-NULL rows) when no int64 can satisfy it or every one does.

    pyarrow would compare in float64 (rounding ints above 2**53, and refusing the cast when a
    column holds such values); this is exact, and the attribute index uses it too.
    """
    if op in ("=", "!="):
        if v.is_integer() and _I64_MIN <= v <= _I64_MAX_F:
            return op, int(v)
        return op == "!="
    if op in ("<", "<="):
        bound = math.floor(v) if (op == "<=" or not v.is_integer()) else int(v) - 1  # x <= bound
        return True if bound >= _I64_MAX else (False if bound < _I64_MIN else ("<=", bound))
    bound = math.ceil(v) if (op == ">=" or not v.is_integer()) else int(v) + 1  # x >= bound
    return True if bound <= _I64_MIN else (False if bound > _I64_MAX else (">=", bound))


_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_I64_MAX_F = float(2**63 - 1024)  # the largest float64 below 2**63


def _constant(x: Any, value: bool) -> Any:
    """``value`` where ``x`` is not NULL, NULL where it is."""
    return pc.if_else(pc.is_valid(x), pa.scalar(value), _NULL_BOOL)


def _compare(op: str, left: Operand, right: Operand, get: Getter, schema: pa.Schema) -> Any:
    """One comparison; int-vs-float pairs are made exact (literal) or float64 (two fields)."""
    assert isinstance(left, Field)  # the checker puts a field on the left
    x = get(left.name)
    kind = kind_of(schema.field(left.name).type)
    if isinstance(right, Literal):
        v = right.value
        if kind == "int" and isinstance(v, float):
            exact = int_comparison(op, v)
            if isinstance(exact, bool):
                return _constant(x, exact)
            op, v = exact
        return _CMP[op](x, scalar(v))
    y = get(right.name)  # type: ignore[union-attr]
    kinds = {kind, kind_of(schema.field(right.name).type)}  # type: ignore[union-attr]
    if kinds == {"int", "float"}:
        # Arrow's implicit int -> float cast is "safe" and fails on ints above 2**53.
        x, y = x.cast(pa.float64(), safe=False), y.cast(pa.float64(), safe=False)
    return _CMP[op](x, y)


def to_mask(result: Any, n: int) -> np.ndarray:
    """A boolean (ChunkedArray/Array) result with nulls -> ``(n,) bool`` numpy, null as False."""
    if isinstance(result, pa.Scalar):
        return np.full(n, bool(result.as_py()), dtype=bool)
    filled = pc.fill_null(result, False)
    out = filled.to_numpy() if isinstance(filled, pa.ChunkedArray) else filled.to_numpy(zero_copy_only=False)
    return np.asarray(out, dtype=bool)
