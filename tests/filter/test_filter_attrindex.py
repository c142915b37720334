"""Attribute indexes: masks identical to the plain pyarrow path, persistence, memory, errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.filter.filter_cases import SCHEMA, filters, random_table
from vecdb.errors import DataLoss, InvalidArgument
from vecdb.filter import coerce_attributes, compile_filter, parse_schema
from vecdb.filter.attrindex import SPARSE_DIVISOR, AttributeIndex

TABLES = [random_table(400, seed=s, null_rate=r) for s, r in ((1, 0.15), (3, 0.0), (5, 0.6))]
# Bitmaps everywhere on one copy, none on another: every code path of the index gets exercised.
INDEXES = {
    (i, bitmaps): AttributeIndex.build(t, bitmap_max_values=bitmaps)
    for i, t in enumerate(TABLES) for bitmaps in (0, 1024)
}


def _both(text: str, table_no: int, bitmaps: int) -> tuple[np.ndarray, np.ndarray]:
    compiled = compile_filter(text, SCHEMA)
    assert compiled is not None
    table = TABLES[table_no]
    return compiled.mask(table), compiled.mask(table, index=INDEXES[(table_no, bitmaps)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters(max_leaves=8), st.integers(0, len(TABLES) - 1), st.sampled_from([0, 1024]))
def test_index_masks_equal_plain_masks(text: str, table_no: int, bitmaps: int) -> None:
    plain, indexed = _both(text, table_no, bitmaps)
    np.testing.assert_array_equal(indexed, plain, err_msg=text)


@pytest.mark.parametrize(
    "text",
    [
        "i32 = 2", "i32 != 2", "i32 < 0", "i32 <= 0", "i32 > 3", "i32 >= 3", "i32 = 2.5", "i32 > 2.5",
        "i32 IN (1, 2, 3, 4)", "i32 NOT IN (1, 2)", "i32 BETWEEN -2 AND 2", "i32 NOT BETWEEN -2 AND 2",
        "i32 BETWEEN 3 AND -3", "i32 IS NULL", "i32 IS NOT NULL", "i64 >= 5", "i64 IN (-9223372036854775808)",
        "f64 != 0.5", "f64 > -1", "f64 BETWEEN -100 AND 100", "f64 NOT BETWEEN -1 AND 1", "f32 <= 0.25",
        "lang = 'it''s'", "lang >= 'e'", "lang < ''", "lang IN ('en', 'zz', '')", "lang != 'fr'",
        "flag", "NOT flag", "flag != FALSE", "flag IN (TRUE, FALSE)",
        "ts > '2024-01-03'", "ts BETWEEN '2024-01-02' AND '2024-01-05T12:00:00'",
        "array_contains(tags, 'a')", "NOT array_contains(tags, 'z')", "array_contains(nums, 0)",
        "array_contains(nums, 2.0)", "NOT array_contains(nums, 2.5)", "array_contains(nums, 1e19)",
        "tags IS NULL", "nums IS NOT NULL",
        "i32 < f64", "f32 BETWEEN i32 AND f64",  # not covered by the index: pyarrow answers
        "NOT (i32 > 0 AND (lang = 'en' OR f64 IS NULL)) OR array_contains(tags, 'b')",
    ],
)
@pytest.mark.parametrize("bitmaps", [0, 1024])
def test_each_predicate_with_index(text: str, bitmaps: int) -> None:
    for table_no in range(len(TABLES)):
        plain, indexed = _both(text, table_no, bitmaps)
        np.testing.assert_array_equal(indexed, plain, err_msg=f"{text} on table {table_no}")


def test_dense_and_sparse_paths_agree() -> None:
    # 4,000 rows over 100 values: '= 7' is sparse (scatter), '< 90' dense (codes), on both builds.
    n = 4000
    rng = np.random.default_rng(11)
    schema = parse_schema({"v": "int64"})
    table = coerce_attributes({"v": rng.integers(0, 100, n)}, schema, n)
    for bitmaps in (0, 128):
        index = AttributeIndex.build(table, bitmap_max_values=bitmaps)
        for text in ("v = 7", "v < 90", "v IN (1, 2, 3)", "v IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)",
                     "v NOT IN (5)", "v BETWEEN 10 AND 20", "v != 3"):
            compiled = compile_filter(text, schema)
            assert compiled is not None
            np.testing.assert_array_equal(compiled.mask(table, index), compiled.mask(table), err_msg=text)
    assert 0.9 * n > n / SPARSE_DIVISOR > 0.01 * n  # '< 90' is dense and '= 7' sparse for this n


def test_long_in_lists_with_index() -> None:
    rng = np.random.default_rng(3)
    table = TABLES[0]
    params = {
        "langs": ["en", "", "zz", *(f"w{i}" for i in range(3000))],
        "ints": [int(v) for v in rng.integers(-10, 10, 3000)] + [2**62, -(2**63)],
        "mixed": [1, 2.0, 2.5, -3],  # 2.5 can equal no integer; 2.0 equals 2
        "floats": [0.0, 0.5, *(float(v) for v in rng.random(1000))],
    }
    for text in ("lang IN :langs", "i32 IN :ints", "i64 NOT IN :ints", "i32 IN :mixed", "f64 IN :floats",
                 "f32 NOT IN :floats"):
        compiled = compile_filter(text, SCHEMA, params)
        assert compiled is not None
        for bitmaps in (0, 1024):
            np.testing.assert_array_equal(compiled.mask(table, INDEXES[(0, bitmaps)]), compiled.mask(table),
                                          err_msg=text)


def test_big_int64_values_with_float_literals() -> None:
    big = [2**53, 2**53 + 1, 2**62, -(2**63), 2**63 - 1, None, 3, 2]
    table = random_table(len(big), seed=1).set_column(1, "i64", pa.array(big, pa.int64()))
    index = AttributeIndex.build(table)
    for text in ("i64 = 9007199254740993.0", "i64 < 2.5", "i64 > 1e30", "i64 != 2.5", "i64 BETWEEN 2.5 AND 1e30",
                 "i64 < 9.223372036854776e18", "i64 IN (2.0, 1e30)", "i64 >= 4611686018427387904.0"):
        compiled = compile_filter(text, SCHEMA)
        assert compiled is not None
        np.testing.assert_array_equal(compiled.mask(table, index), compiled.mask(table), err_msg=text)


def test_persistence_round_trip() -> None:
    table = TABLES[0]
    index = INDEXES[(0, 1024)]
    meta, arrays = index.to_arrays()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    assert set(meta["fields"]) == set(SCHEMA.names)
    loaded = AttributeIndex.from_arrays(meta, {k: v.copy() for k, v in arrays.items()})
    assert loaded.nbytes == index.nbytes
    for text in ("lang IN ('en', 'it''s') AND i32 > 0", "array_contains(tags, 'c') OR ts < '2024-01-03'",
                 "f64 != 0.5 OR flag", "lang BETWEEN 'd' AND 'f'"):
        compiled = compile_filter(text, SCHEMA)
        assert compiled is not None
        np.testing.assert_array_equal(compiled.mask(table, loaded), compiled.mask(table))


def _corrupt(arrays: dict[str, np.ndarray], key: str, value: np.ndarray) -> dict[str, np.ndarray]:
    out = dict(arrays)
    out[key] = value
    return out


def test_from_arrays_rejects_damaged_input() -> None:
    meta, arrays = INDEXES[(0, 1024)].to_arrays()
    n = meta["num_rows"]
    order = arrays["i32.order"].copy()
    order[0] = n
    unsorted = arrays["f64.uniques"][::-1].copy()
    offsets = arrays["lang.str_offsets"].copy()
    offsets[1] = 10**6
    bad_utf8 = arrays["lang.str_data"].copy()
    bad_utf8[:1] = 0xFF
    cases = [
        ({**meta, "version": 99}, arrays, "format 99"),
        (meta, {k: v for k, v in arrays.items() if k != "lang.order"}, "missing array 'lang.order'"),
        (meta, _corrupt(arrays, "i32.codes", arrays["i32.codes"][:-1]), "bad codes"),
        (meta, _corrupt(arrays, "i32.codes", arrays["i32.codes"].astype(np.int64)), "dtype int64"),
        (meta, _corrupt(arrays, "i32.order", order), "row offset out of range"),
        (meta, _corrupt(arrays, "f64.uniques", unsorted), "uniques not sorted"),
        (meta, _corrupt(arrays, "lang.str_offsets", offsets), "malformed"),
        (meta, _corrupt(arrays, "lang.str_data", bad_utf8), "malformed"),
        (meta, _corrupt(arrays, "flag.bitmaps", arrays["flag.bitmaps"][:1]), "bad bitmaps shape"),
        (meta, _corrupt(arrays, "i32.bounds", arrays["i32.bounds"][::-1].copy()), "bad bounds"),
        ({**meta, "fields": {"i32": {"kind": "nope", "cardinality": 1}}}, arrays, "unknown kind"),
        ({"version": 1}, arrays, "malformed"),
    ]
    for bad_meta, bad_arrays, match in cases:
        with pytest.raises(DataLoss, match=match):
            AttributeIndex.from_arrays(bad_meta, bad_arrays)


def test_round_trip_of_empty_and_all_null_indexes() -> None:
    for table in (TABLES[0].slice(0, 0), coerce_attributes(None, SCHEMA, 5), TABLES[2].slice(7, 50)):
        meta, arrays = AttributeIndex.build(table).to_arrays()
        loaded = AttributeIndex.from_arrays(meta, arrays)
        for text in ("i32 > 1", "lang IN ('en', '')", "array_contains(tags, 'a')", "NOT flag", "ts IS NULL"):
            compiled = compile_filter(text, SCHEMA)
            assert compiled is not None
            np.testing.assert_array_equal(compiled.mask(table, loaded), compiled.mask(table))


def test_memory_accounting_and_errors() -> None:
    n = 1000
    schema = parse_schema({"low": "int32", "high": "int64"})
    table = coerce_attributes({"low": np.arange(n) % 4, "high": np.arange(n)}, schema, n)
    index = AttributeIndex.build(table, bitmap_max_values=8)
    low, high = index.fields["low"], index.fields["high"]
    assert low.bitmaps is not None and low.bitmaps.shape == (4, n // 8)
    assert high.bitmaps is None and high.cardinality == n
    assert low.nbytes == 8 * n + 4 * n // 8 + 4 * 8 + 5 * 8  # order+codes, bitmaps, uniques, bounds
    assert index.nbytes == low.nbytes + high.nbytes
    assert AttributeIndex.estimate_nbytes(n, 4, bitmap_max_values=8) == low.nbytes
    assert AttributeIndex.estimate_nbytes(n, n, bitmap_max_values=8) == high.nbytes
    tags = INDEXES[(0, 0)].fields["tags"]
    table0 = TABLES[0]
    elements = len(pc.list_flatten(table0.column("tags")).drop_null())
    text = sum(len(v) for v in tags.uniques.to_pylist())
    estimate = AttributeIndex.estimate_nbytes(table0.num_rows, tags.cardinality, elements=elements,
                                              null_rows=table0.column("tags").null_count, unique_bytes=4)
    assert estimate + text + 4 == tags.nbytes
    segment = table.append_column("id", pa.array(np.arange(n))).append_column("vector", pa.array([[0.0]] * n))
    assert set(AttributeIndex.build(segment).fields) == {"low", "high"}
    with pytest.raises(InvalidArgument, match="unknown attribute 'nope'"):
        AttributeIndex.build(table, ["nope"])
    with pytest.raises(InvalidArgument, match="cannot index attribute 'm'"):
        AttributeIndex.build(pa.table({"m": pa.array([{"a": 1}])}), ["m"])
    compiled = compile_filter("low = 1", schema)
    assert compiled is not None
    with pytest.raises(InvalidArgument, match="covers 1000 rows but the table has 10"):
        compiled.mask(table.slice(0, 10), index)


def test_empty_and_all_null_tables() -> None:
    for table in (TABLES[0].slice(0, 0), coerce_attributes(None, SCHEMA, 5)):
        index = AttributeIndex.build(table)
        for text in ("i32 > 1", "lang IN ('en')", "array_contains(tags, 'a')", "i32 IS NULL", "NOT flag"):
            compiled = compile_filter(text, SCHEMA)
            assert compiled is not None
            np.testing.assert_array_equal(compiled.mask(table, index), compiled.mask(table))
