"""Evaluation: every operator against a pure-Python oracle, NULL semantics, params, identities."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.filter.filter_cases import SCHEMA, filters, oracle_mask, random_table
from vecdb.errors import InvalidArgument
from vecdb.filter import compile_filter, estimate_selectivity, parse_schema
from vecdb.filter.expr import FilterError

TABLE = random_table(300, seed=7)
WIDE = random_table(300, seed=9)  # i64 spans +-2**40 here


def _check(text: str, table: pa.Table = TABLE, params: dict | None = None) -> np.ndarray:
    """Compile, evaluate, and compare with the oracle and with Table.filter(expression)."""
    compiled = compile_filter(text, SCHEMA, params)
    assert compiled is not None
    mask = compiled.mask(table)
    assert mask.dtype == np.bool_ and mask.shape == (table.num_rows,)
    np.testing.assert_array_equal(mask, oracle_mask(compiled.node, table), err_msg=text)
    assert table.filter(compiled.expression).num_rows == int(mask.sum()), text
    return mask


@pytest.mark.parametrize("op", ["=", "!=", "<>", "<", "<=", ">", ">="])
@pytest.mark.parametrize(
    ("field", "value"),
    [("i32", "2"), ("i32", "2.5"), ("i64", "7"), ("f32", "0.25"), ("f64", "-0.0"), ("f64", "1"),
     ("lang", "'fr'"), ("lang", "''"), ("ts", "'2024-01-04'"), ("ts", "'2024-01-04T00:00:00+02:00'")],
)
def test_comparisons_match_oracle(op: str, field: str, value: str) -> None:
    _check(f"{field} {op} {value}")
    _check(f"{value} {op} {field}")


@pytest.mark.parametrize(
    "text",
    [
        "i32 IN (1, 2, 99)", "i32 NOT IN (1, 2)", "i32 IN (2.0, 2.5)", "i32 IN (9999999999)",
        "lang IN ('en', 'it''s')", "lang NOT IN ('', 'de')", "f64 IN (0.5, -2.5)", "f64 IN (-0.0)", "f32 IN (0)",
        "f32 IN (1e-50, 0.1, 0.25, 1e300)",
        "f64 NOT IN (0.0, 1)", "flag IN (TRUE)",
        "ts IN ('2024-01-02', '2024-01-05')",
        "i32 BETWEEN -1 AND 2", "i32 NOT BETWEEN -1 AND 2", "f64 BETWEEN 2 AND 1", "lang BETWEEN 'a' AND 'f'",
        "ts BETWEEN '2024-01-02' AND '2024-01-04'", "f32 BETWEEN i32 AND f64",
        "i32 IS NULL", "lang IS NOT NULL", "tags IS NULL", "nums IS NOT NULL",
        "array_contains(tags, 'a')", "NOT array_contains(tags, 'b')", "array_contains(nums, 3)",
        "array_contains(nums, 2.0)", "array_contains(nums, 2.5)", "NOT array_contains(nums, 1e19)",
        "flag", "NOT flag", "flag = FALSE", "flag != TRUE",
        "i32 < f64", "i32 = i64", "lang = lang",
        "i32 > 0 AND lang = 'en' OR NOT (f64 < 1 OR flag)",
    ],
)
def test_predicates_match_oracle(text: str) -> None:
    _check(text)


def test_int64_extremes() -> None:
    _check("i64 > 1099511627776 OR i64 < -1099511627776", WIDE)
    _check("i64 >= -9223372036854775808 AND i64 <= 9223372036854775807", WIDE)
    _check("i64 IN (-9223372036854775808, 0, 9223372036854775807)", WIDE)


def test_int_columns_against_float_literals_are_exact() -> None:
    # Arrow compares int64 with float64 by casting, which rounds above 2**53 and refuses columns
    # holding such values; vecdb compares exactly, as Python does.
    big = [2**53, 2**53 + 1, 2**62, -(2**63), 2**63 - 1, None, 3, 2]
    table = random_table(len(big), seed=1).set_column(1, "i64", pa.array(big, pa.int64()))
    for text in ("i64 = 9007199254740993.0", "i64 < 2.5", "i64 > 1e30", "i64 >= -1e30", "i64 != 2.5",
                 "i64 <= 9223372036854775807", "i64 < 9.223372036854776e18", "i64 >= -9.223372036854776e18",
                 "i64 BETWEEN 2.5 AND 1e30", "i64 NOT BETWEEN -1e30 AND 2.5", "i64 IN (2.0, 1e30, 4.5)",
                 "i64 > 4611686018427387904.0", "i32 > 2.5", "i32 = 1e30"):
        _check(text, table)


def test_null_semantics() -> None:
    schema = parse_schema({"a": "int64", "b": "string"})
    table = pa.table({"a": pa.array([1, None, 3], pa.int64()), "b": pa.array(["x", "y", None])})

    def rows(text: str) -> list[int]:
        compiled = compile_filter(text, schema)
        assert compiled is not None
        return np.flatnonzero(compiled.mask(table)).tolist()

    assert rows("a != 3") == [0]  # NULL != 3 is unknown: excluded
    assert rows("NOT a = 3") == [0]  # NOT unknown is unknown
    assert rows("NOT a IN (3)") == [0]
    assert rows("a NOT IN (3)") == [0]
    assert rows("NOT a BETWEEN 2 AND 5") == [0]
    assert rows("a = 1 OR a != 1") == [0, 2]  # not a tautology under NULLs
    assert rows("a IS NULL OR a = 3") == [1, 2]
    assert rows("NOT (a = 1 AND b = 'q')") == [0, 1, 2]  # FALSE AND unknown is FALSE
    assert rows("NOT (a > 5 OR b = 'y')") == [0]  # unknown OR TRUE / FALSE OR unknown
    assert rows("a IS NOT NULL AND b IS NOT NULL") == [0]


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("i32 IN (1, 2)", "i32 = 1 OR i32 = 2"),
        ("i32 NOT IN (1, 2)", "NOT (i32 = 1 OR i32 = 2)"),
        ("NOT i32 != 3", "i32 = 3"),
        ("i32 <> 3", "NOT i32 = 3"),
        ("i32 BETWEEN 1 AND 3", "i32 >= 1 AND i32 <= 3"),
        ("i32 NOT BETWEEN 1 AND 3", "i32 < 1 OR i32 > 3"),
        ("NOT (i32 > 1 AND lang = 'en')", "NOT i32 > 1 OR NOT lang = 'en'"),
        ("NOT (i32 > 1 OR lang = 'en')", "i32 <= 1 AND lang != 'en'"),
        ("2 < i32", "i32 > 2"),
        ("flag", "flag = TRUE"),
        ("NOT flag", "flag = FALSE"),
        ("i32 IS NOT NULL", "NOT i32 IS NULL"),
        ("lang IN ('en')", "lang = 'en'"),
        ("f64 IN (-0.0, 2.5)", "f64 = 0 OR f64 = 2.5"),
        ("(i32 = 1 OR i32 = 2) AND lang = 'en'", "i32 = 1 AND lang = 'en' OR i32 = 2 AND lang = 'en'"),
        ("NOT NOT i32 = 1", "i32 = 1"),
    ],
)
def test_equivalent_filters_give_identical_masks(left: str, right: str) -> None:
    np.testing.assert_array_equal(_check(left), _check(right))


def test_params() -> None:
    ts = dt.datetime(2024, 1, 4)
    params = {"lo": 0, "hi": np.int64(3), "langs": ("en", "fr"), "t": ts, "tag": "a", "x": np.float32(0.5)}
    text = "i32 BETWEEN :lo AND :hi AND lang IN :langs OR ts >= :t OR array_contains(tags, :tag) OR f64 = :x"
    literal = ("i32 BETWEEN 0 AND 3 AND lang IN ('en', 'fr') OR ts >= '2024-01-04' "
               "OR array_contains(tags, 'a') OR f64 = 0.5")
    np.testing.assert_array_equal(_check(text, params=params), _check(literal))
    a = compile_filter(text, SCHEMA, params)
    b = compile_filter(literal, SCHEMA)
    assert a is not None and b is not None and a.canonical == b.canonical
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1  # usable as a cache key itself
    c = compile_filter(text, SCHEMA, {**params, "hi": 4})
    assert c is not None and c.canonical != a.canonical  # params are part of the cache key
    ns = compile_filter("ts >= :t", SCHEMA, {"t": np.datetime64("2024-01-04T00:00:00.000000001")})
    assert ns is not None and ns.canonical == "ts >= '2024-01-04T00:00:00+00:00'"
    with pytest.raises(FilterError, match="is never true"):
        compile_filter("ts >= :t", SCHEMA, {"t": np.datetime64("NaT")})


@pytest.mark.parametrize(
    ("text", "position", "match"),
    [
        ("nope = 1", 0, "unknown field 'nope'"),
        ("lang = 1", 7, "cannot compare string field 'lang' with an integer"),
        ("i32 = 'x'", 6, "cannot compare integer field 'i32' with a string"),
        ("i32 IN (1, 'x')", 11, "cannot compare integer field 'i32' with a string"),
        ("flag < TRUE", 5, "bool field 'flag' supports only = and !="),
        ("flag = 1", 7, "cannot compare bool field 'flag' with an integer"),
        ("lang", 0, "cannot compare string field 'lang' with a boolean"),
        ("array_contains(lang, 'x')", 15, "array_contains needs a list<string> or list<int64> field"),
        ("array_contains(tags, 1)", 21, "cannot compare string field 'tags' with an integer"),
        ("array_contains(tags, NULL)", 21, "array_contains with NULL is never true"),
        ("tags = 'a'", 0, "does not apply to list field 'tags'; use array_contains"),
        ("i32 = NULL", 6, "'=' with NULL is never true; use IS NULL"),
        ("i32 IN (1, NULL)", 11, "IN with NULL is never true"),
        ("1 < 2", 2, "a comparison needs at least one field name"),
        ("ts > 'yesterday'", 5, "invalid timestamp 'yesterday'"),
        ("i32 = lang", 4, "cannot compare integer field 'i32' with string field 'lang'"),
        ("i32 BETWEEN lang AND 3", 12, "BETWEEN bound 'lang' has a different type"),
        ("i32 = 1 AND ts = 3", 17, "cannot compare timestamp field 'ts' with an integer"),
    ],
)
def test_type_errors_name_the_position(text: str, position: int, match: str) -> None:
    with pytest.raises(FilterError, match=match) as info:
        compile_filter(text, SCHEMA)
    assert info.value.position == position


def test_empty_filter_and_selectivity() -> None:
    assert compile_filter(None, SCHEMA) is None
    assert compile_filter("  \n", SCHEMA) is None
    assert estimate_selectivity(np.zeros(0, dtype=bool)) == 0.0
    assert estimate_selectivity(np.array([True, False, False, True])) == 0.5


def test_fields_canonical_and_missing_columns() -> None:
    compiled = compile_filter("i32 > 1 AND (lang = 'en' OR array_contains(tags, 'a'))", SCHEMA)
    assert compiled is not None
    assert compiled.fields == {"i32", "lang", "tags"}
    assert str(compiled) == "(array_contains(tags, 'a') OR lang = 'en') AND i32 > 1"
    # A segment written before a column existed reads it as all NULL.
    old = TABLE.select(["lang", "tags"])
    assert not compiled.mask(old).any()
    assert compile_filter("i32 IS NULL", SCHEMA).mask(old).all()  # type: ignore[union-attr]
    # Chunked columns and an empty table work too.
    chunked = pa.concat_tables([TABLE.slice(0, 100), TABLE.slice(100)])
    np.testing.assert_array_equal(compiled.mask(chunked), compiled.mask(TABLE))
    assert compiled.mask(TABLE.slice(0, 0)).shape == (0,)


def test_int32_column_stored_as_int64_is_cast() -> None:
    compiled = compile_filter("i32 >= 2", SCHEMA)
    assert compiled is not None
    table = TABLE.set_column(0, "i32", TABLE.column("i32").cast(pa.int64()))
    np.testing.assert_array_equal(compiled.mask(table), compiled.mask(TABLE))
    bad = TABLE.set_column(0, "i32", pa.array(["x"] * TABLE.num_rows))
    with pytest.raises(InvalidArgument, match="column 'i32'"):
        compiled.mask(bad)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters(), st.sampled_from([TABLE, WIDE]))
def test_random_filters_match_oracle(text: str, table: pa.Table) -> None:
    mask = _check(text, table)
    # The canonical text is a faithful rendering: it compiles to itself and to the same mask.
    canonical = compile_filter(text, SCHEMA).canonical  # type: ignore[union-attr]
    again = compile_filter(canonical, SCHEMA)
    assert again is not None and again.canonical == canonical
    np.testing.assert_array_equal(again.mask(table), mask, err_msg=canonical)
    np.testing.assert_array_equal(_check(f"NOT NOT ({text})", table), mask)


_SCHEMA_WORDS = st.sampled_from(["'\ud800'", "'é\x00'", "\"\udfff\"", "i32", "lang", "tags", "flag", "ts", "f64",
                                 "'x'", "1", "2.5", "NULL", "TRUE", "AND", "OR", "NOT", "IN", "(", ")", ",", "=", "<",
                                 "BETWEEN", "IS", "array_contains", ":p", ":q", "-", "'2024-01-01'", "nums"])


_PARAM_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.floats(), st.datetimes(),
                          st.lists(st.integers(), max_size=3))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SCHEMA_WORDS, max_size=14).map(" ".join),
       st.dictionaries(st.sampled_from(["p", "q"]), _PARAM_VALUES))
def test_near_miss_filters_only_raise_invalid_argument(text: str, params: dict) -> None:
    try:
        compiled = compile_filter(text, SCHEMA, params)
    except InvalidArgument:
        return
    if compiled is not None:
        compiled.mask(TABLE)
