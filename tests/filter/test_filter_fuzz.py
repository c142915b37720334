"""Long fuzz runs of the filter language (opt-in): only InvalidArgument, and every path agrees.

Run: ``VECDB_FUZZ_EXAMPLES=100000 pytest -m slow tests/filter/test_filter_fuzz.py``. Each example
mutates a well-typed random filter (character edits, random parameters) and then requires that
compiling it raises nothing but InvalidArgument and that, when it compiles, the plain mask, the
attribute-index mask and ``Table.filter(expression)`` agree on two tables (one with int64 values
beyond 2**53).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.filter.filter_cases import SCHEMA, filters, random_table
from vecdb.errors import InvalidArgument
from vecdb.filter import AttributeIndex, compile_filter

EXAMPLES = int(os.environ.get("VECDB_FUZZ_EXAMPLES", "0"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(EXAMPLES <= 0, reason="set VECDB_FUZZ_EXAMPLES=N to run N fuzz examples"),
]

_BASE = random_table(200, seed=4)
_BIG = [2**53, 2**53 + 1, 2**62, -(2**63), 2**63 - 1, 3, 2, -5, None]
_WIDE = _BASE.set_column(1, "i64", pa.array(np.random.default_rng(0).choice(np.array(_BIG, dtype=object), 200)
                                            .tolist(), pa.int64()))
TABLES = [(t, AttributeIndex.build(t)) for t in (_BASE, _WIDE)]
_PIECES = [*"abcdefilnstuy_0123456789 .,-+'\"():=<>!*", "AND ", "OR ", "NOT ", "IN ", "IS ", "NULL",
           "BETWEEN ", "array_contains(", ":p", "\x00", "\ud800", "é", "1e999", "TRUE", "i32", "i64", "lang",
           "tags", "nums", "ts", "flag", "f64", "9223372036854775807", "9.3e18"]
_EDITS = st.lists(st.tuples(st.integers(0, 400), st.sampled_from(_PIECES), st.booleans()), max_size=4)
_PARAMS = st.dictionaries(st.just("p"), st.one_of(
    st.none(), st.integers(), st.floats(), st.text(max_size=3), st.datetimes(),
    st.lists(st.integers(), max_size=2)))


@settings(max_examples=max(EXAMPLES, 1), deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(filters(max_leaves=5), _EDITS, _PARAMS)
def test_mutated_filters(text: str, edits: list[tuple[int, str, bool]], params: dict) -> None:
    for pos, piece, delete in edits:
        pos = min(pos, len(text))
        text = text[:pos] + text[pos + 1:] if delete else text[:pos] + piece + text[pos:]
    try:
        compiled = compile_filter(text, SCHEMA, params)
    except InvalidArgument:
        return
    if compiled is None:
        return
    for table, index in TABLES:
        plain = compiled.mask(table)
        np.testing.assert_array_equal(compiled.mask(table, index), plain, err_msg=text)
        assert table.filter(compiled.expression).num_rows == int(plain.sum()), text


@settings(max_examples=max(EXAMPLES, 1), deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=20), st.integers(), st.none()),
       st.one_of(st.none(), st.integers(), st.dictionaries(st.text(max_size=2), st.text(max_size=2))))
def test_arbitrary_inputs(text: object, params: object) -> None:
    try:
        compiled = compile_filter(text, SCHEMA, params)  # type: ignore[arg-type]
    except InvalidArgument:
        return
    if compiled is not None:
        compiled.mask(_BASE)
