"""The attribute schema of a collection: declared types, their Arrow form, and input coercion."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from vecdb.errors import InvalidArgument

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
# The attribute types a collection may declare, by their name in the API / proto / CLI.
TYPES: dict[str, pa.DataType] = {
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "list<string>": pa.list_(pa.string()),
    "list<int64>": pa.list_(pa.int64()),
    "timestamp": TIMESTAMP_TYPE,
}
_NAMES_BY_TYPE = {t: name for name, t in TYPES.items()}
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_FIELDS = 256
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
                 OverflowError)


def check_field_name(name: object) -> str:
    """Return ``name`` if it may name an attribute; raise InvalidArgument otherwise."""
    if not isinstance(name, str) or _FIELD_NAME.fullmatch(name) is None:
        raise InvalidArgument(
            f"invalid attribute name {name!r}: expected [A-Za-z_][A-Za-z0-9_]{{0,63}}"
        )
    lowered = name.lower()
    if lowered in ("id", "vector") or lowered.startswith("tenant"):
        raise InvalidArgument(f"attribute name {name!r} is reserved (id, vector and tenant* are)")
    return name


def parse_schema(schema: Mapping[str, str] | None) -> pa.Schema:
    """Turn ``{"year": "int32", "tags": "list<string>"}`` into a pyarrow schema (order kept)."""
    if schema is None:
        return pa.schema([])
    if not isinstance(schema, Mapping):
        raise InvalidArgument(f"schema must be a dict of name -> type, not {type(schema).__name__}")
    if len(schema) > MAX_FIELDS:
        raise InvalidArgument(f"schema has {len(schema)} fields; the limit is {MAX_FIELDS}")
    fields = []
    for name, type_name in schema.items():
        check_field_name(name)
        key = type_name.replace(" ", "").lower() if isinstance(type_name, str) else None
        if key not in TYPES:
            raise InvalidArgument(
                f"attribute {name!r} has unknown type {type_name!r}: expected one of {', '.join(TYPES)}"
            )
        fields.append(pa.field(name, TYPES[key], nullable=True))
    return pa.schema(fields)


def schema_to_dict(schema: pa.Schema) -> dict[str, str]:
    """The inverse of :func:`parse_schema`."""
    out: dict[str, str] = {}
    for field in schema:
        if field.type not in _NAMES_BY_TYPE:
            raise InvalidArgument(f"attribute {field.name!r} has unsupported Arrow type {field.type}")
        out[field.name] = _NAMES_BY_TYPE[field.type]
    return out


def coerce_attributes(attributes: object, schema: pa.Schema, n: int) -> pa.Table:
    """Return a table with exactly ``schema``'s columns and ``n`` rows.

    ``attributes`` is None, a dict of columns (lists, numpy arrays, Arrow arrays), a
    ``pyarrow.Table`` / ``RecordBatch`` or a pandas DataFrame. Missing columns become nulls;
    an unknown column, a wrong length or an uncastable value raises InvalidArgument naming it.
    """
    columns = _columns_of(attributes)
    for name in columns:
        if schema.get_field_index(name) < 0:
            known = ", ".join(schema.names) or "none"
            raise InvalidArgument(f"unknown attribute column {name!r} (schema columns: {known})")
    arrays = []
    for field in schema:
        if columns.get(field.name) is None:  # absent, or given as None: all NULL
            arrays.append(pa.nulls(n, field.type))
            continue
        arr = _to_arrow(field, columns[field.name])
        if len(arr) != n:
            raise InvalidArgument(f"attribute column {field.name!r} has {len(arr)} values; expected {n}")
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def _columns_of(attributes: object) -> dict[str, object]:
    if attributes is None:
        return {}
    if isinstance(attributes, pa.RecordBatch):
        attributes = pa.Table.from_batches([attributes])
    if isinstance(attributes, pa.Table):
        if len(set(attributes.column_names)) != attributes.num_columns:
            raise InvalidArgument("attribute table has duplicate column names")
        return {name: attributes.column(i) for i, name in enumerate(attributes.column_names)}
    if type(attributes).__name__ == "DataFrame" and hasattr(attributes, "columns"):
        frame = attributes
        names = list(frame.columns)  # type: ignore[attr-defined]
        if len(set(names)) != len(names):
            raise InvalidArgument("attribute DataFrame has duplicate column names")
        for name in names:
            if not isinstance(name, str):
                raise InvalidArgument(f"attribute column names must be strings, got {name!r}")
        return {name: frame[name] for name in names}  # type: ignore[index]
    if isinstance(attributes, Mapping):
        for name in attributes:
            if not isinstance(name, str):
                raise InvalidArgument(f"attribute column names must be strings, got {name!r}")
        return dict(attributes)
    raise InvalidArgument(
        f"attributes must be a dict of columns, a pyarrow.Table or a pandas DataFrame, "
        f"not {type(attributes).__name__}"
    )


def _to_arrow(field: pa.Field, values: object) -> pa.Array:
    """Convert one column to ``field.type`` with a safe cast (no silent truncation)."""
    try:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if isinstance(values, pa.Array):
            arr = values
        elif isinstance(values, np.ndarray) and values.ndim != 1:
            raise InvalidArgument(f"attribute column {field.name!r} must be 1-dimensional")
        elif isinstance(values, (np.ndarray, list, tuple)) or hasattr(values, "__array__"):
            arr = _from_python(field.type, values)
        else:
            raise InvalidArgument(f"attribute column {field.name!r} must be a sequence of values")
        if pa.types.is_dictionary(arr.type):  # pandas categoricals, dictionary-encoded Arrow columns
            arr = arr.dictionary_decode()
        if pa.types.is_timestamp(field.type) and (pa.types.is_string(arr.type) or arr.type == pa.null()):
            arr = _timestamps(arr.to_pylist())
        if pa.types.is_floating(arr.type) and pa.types.is_integer(field.type):
            # A float column with only whole values (and NaN for missing, as pandas does) is fine.
            arr = pa.array(arr.to_numpy(zero_copy_only=False), from_pandas=True)
        if not _castable(arr.type, field.type):
            raise InvalidArgument(
                f"attribute column {field.name!r} holds {arr.type} values, which are not "
                f"{_NAMES_BY_TYPE.get(field.type, field.type)}")
        return arr if arr.type == field.type else arr.cast(field.type, safe=True)
    except InvalidArgument:
        raise
    except _ARROW_ERRORS as exc:
        raise InvalidArgument(
            f"attribute column {field.name!r} cannot be stored as "
            f"{_NAMES_BY_TYPE.get(field.type, field.type)}: {_first_line(exc)}"
        ) from None


def _castable(src: pa.DataType, dst: pa.DataType) -> bool:
    """Which source types may fill a column: Arrow would also cast 1 -> '1' or 5 -> true,
    which hides mistakes, so only numbers go to numbers and like to like otherwise."""
    if src == dst or pa.types.is_null(src):
        return True
    if pa.types.is_integer(dst) or pa.types.is_floating(dst):
        return pa.types.is_integer(src) or pa.types.is_floating(src)
    if pa.types.is_string(dst):
        return pa.types.is_string(src) or pa.types.is_large_string(src)
    if pa.types.is_timestamp(dst):
        return pa.types.is_timestamp(src) or pa.types.is_date(src)
    if pa.types.is_list(dst):
        return (pa.types.is_list(src) or pa.types.is_large_list(src)) and _castable(src.value_type,
                                                                                   dst.value_type)
    return False


def _from_python(target: pa.DataType, values: object) -> pa.Array:
    """Infer the Arrow type first and cast safely afterwards, so that 1.5 -> int32 or
    'abc' -> list<string> are errors instead of silent truncation or splitting."""
    dtype_kind = getattr(getattr(values, "dtype", None), "kind", "O")
    if pa.types.is_timestamp(target) and dtype_kind not in "M":
        return _timestamps(list(values))  # type: ignore[call-overload]
    from_pandas = type(values).__name__ == "Series"  # NaN / None / NaT mean missing there
    try:
        return pa.array(values, from_pandas=from_pandas)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(values, type=target, from_pandas=from_pandas)


def _timestamps(values: list[object]) -> pa.Array:
    """ISO 8601 strings and datetimes to UTC microseconds; naive values are taken as UTC."""
    out: list[_dt.datetime | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
            continue
        if isinstance(v, str):
            try:
                v = _dt.datetime.fromisoformat(v.strip())
            except ValueError:
                raise ValueError(f"invalid timestamp {v!r}: expected ISO 8601") from None
        if isinstance(v, np.datetime64):
            v = pa.scalar(v).as_py()
        if isinstance(v, _dt.date) and not isinstance(v, _dt.datetime):
            v = _dt.datetime(v.year, v.month, v.day)
        if not isinstance(v, _dt.datetime):
            raise ValueError(f"invalid timestamp {v!r}: expected an ISO 8601 string or a datetime")
        out.append(v.replace(tzinfo=_dt.timezone.utc) if v.tzinfo is None else v.astimezone(_dt.timezone.utc))
    return pa.array(out, TIMESTAMP_TYPE)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
