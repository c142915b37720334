"""Schema declaration and attribute coercion: accepted inputs and the errors that name the column."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from vecdb.errors import InvalidArgument
from vecdb.filter import TYPES, coerce_attributes, parse_schema, schema_to_dict

DECL = {"year": "int32", "n": "int64", "lang": "string", "score": "float64", "w": "float32", "ok": "bool",
        "tags": "list<string>", "ids": "list<int64>", "ts": "timestamp"}
SCHEMA = parse_schema(DECL)
UTC = dt.timezone.utc


def test_parse_schema_round_trip() -> None:
    assert schema_to_dict(SCHEMA) == DECL
    assert SCHEMA.names == list(DECL)  # order kept
    assert set(TYPES) == set(DECL.values())
    assert parse_schema({"a": "LIST< string >"}).field("a").type == pa.list_(pa.string())
    assert len(parse_schema(None)) == 0
    assert parse_schema({"_" + "x" * 63: "bool"}).names == ["_" + "x" * 63]


@pytest.mark.parametrize(
    ("decl", "match"),
    [
        ({"id": "int64"}, "'id' is reserved"),
        ({"Vector": "int64"}, "'Vector' is reserved"),
        ({"tenant_id": "string"}, "'tenant_id' is reserved"),
        ({"1abc": "int32"}, "invalid attribute name '1abc'"),
        ({"a-b": "int32"}, "invalid attribute name 'a-b'"),
        ({"x" * 65: "int32"}, "invalid attribute name"),
        ({"a": "int8"}, "attribute 'a' has unknown type 'int8'"),
        ({"a": 3}, "attribute 'a' has unknown type 3"),
        ({"a": "list<float>"}, "attribute 'a' has unknown type"),
    ],
)
def test_parse_schema_errors_name_the_field(decl: dict, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_schema(decl)


def test_parse_schema_rejects_non_dict() -> None:
    with pytest.raises(InvalidArgument, match="must be a dict"):
        parse_schema([("a", "int32")])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="unsupported Arrow type"):
        schema_to_dict(pa.schema([("a", pa.int8())]))


def test_coerce_dict_of_columns() -> None:
    table = coerce_attributes(
        {"year": np.array([2020, 2021, 2022]), "lang": ["en", None, "fr"], "score": [1, 2.5, None],
         "tags": [["a"], ("b", "c"), np.array(["d"])], "ts": ["2024-01-01", None, dt.date(2024, 1, 3)],
         "ok": pa.array([True, False, None]), "w": np.array([1, 2, 3], dtype=np.int16)},
        SCHEMA, 3)
    assert table.schema == SCHEMA
    assert table.column("year").to_pylist() == [2020, 2021, 2022]
    assert table.column("score").to_pylist() == [1.0, 2.5, None]
    assert table.column("tags").to_pylist() == [["a"], ["b", "c"], ["d"]]
    assert table.column("ts").to_pylist() == [dt.datetime(2024, 1, 1, tzinfo=UTC), None,
                                               dt.datetime(2024, 1, 3, tzinfo=UTC)]
    assert table.column("n").null_count == 3  # missing -> nulls


def test_coerce_none_table_and_pandas() -> None:
    empty = coerce_attributes(None, SCHEMA, 4)
    assert empty.num_rows == 4 and empty.schema == SCHEMA
    assert all(c.null_count == 4 for c in empty.columns)
    arrow = coerce_attributes(pa.table({"n": pa.array([1, 2], pa.int32()), "lang": ["x", "y"]}), SCHEMA, 2)
    assert arrow.column("n").type == pa.int64() and arrow.column("lang").to_pylist() == ["x", "y"]
    frame = pd.DataFrame({
        "year": [2019.0, np.nan],  # pandas turns missing ints into NaN floats
        "lang": ["a", None],
        "ts": pd.to_datetime(["2020-01-01 01:00", None]).tz_localize("Europe/Paris"),
        "tags": [["x"], None],
    })
    frame["lang"] = frame["lang"].astype("category")
    frame["n"] = pd.array([7, None], dtype="Int64")  # pandas' nullable integers
    table = coerce_attributes(frame, SCHEMA, 2)
    assert table.column("year").to_pylist() == [2019, None]
    assert table.column("lang").to_pylist() == ["a", None]
    assert table.column("n").to_pylist() == [7, None]
    assert table.column("ts").to_pylist() == [dt.datetime(2020, 1, 1, 0, 0, tzinfo=UTC), None]
    assert table.column("tags").to_pylist() == [["x"], None]


@pytest.mark.parametrize(
    ("attributes", "match"),
    [
        ({"nope": [1, 2]}, "unknown attribute column 'nope'"),
        ({"id": [1, 2]}, "unknown attribute column 'id'"),
        ({"year": [1, 2, 3]}, "attribute column 'year' has 3 values; expected 2"),
        ({"year": [1.5, 2]}, "attribute column 'year' cannot be stored as int32"),
        ({"year": [2**40, 1]}, "attribute column 'year' cannot be stored as int32"),
        ({"year": ["1", "2"]}, "attribute column 'year'"),
        ({"lang": [1, 2]}, "attribute column 'lang' holds int64 values, which are not string"),
        ({"ok": [1, 0]}, "attribute column 'ok' holds int64 values, which are not bool"),
        ({"tags": ["ab", "c"]}, "attribute column 'tags' holds string values"),
        ({"ids": [["a"], []]}, "attribute column 'ids' holds list<item: string> values"),
        ({"ts": ["2024-01-01", "soon"]}, "column 'ts' cannot be stored as timestamp: invalid timestamp"),
        ({"ts": [1, 2]}, "attribute column 'ts'"),
        ({"year": np.zeros((2, 2))}, "attribute column 'year' must be 1-dimensional"),
        ({"year": 5}, "attribute column 'year' must be a sequence"),
        ({3: [1, 2]}, "column names must be strings"),
        ([1, 2], "attributes must be a dict of columns"),
    ],
)
def test_coerce_errors_name_the_column(attributes: object, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        coerce_attributes(attributes, SCHEMA, 2)


def test_coerce_rejects_duplicate_table_columns() -> None:
    dup = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["n", "n"])
    with pytest.raises(InvalidArgument, match="duplicate column names"):
        coerce_attributes(dup, SCHEMA, 1)
