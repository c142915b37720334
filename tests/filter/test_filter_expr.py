"""Parser: accepted syntax, precedence, positions in errors, limits, canonical text, garbage."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.filter.filter_cases import SCHEMA, random_table
from vecdb.errors import InvalidArgument
from vecdb.filter import compile_filter
from vecdb.filter.expr import (
    MAX_IN_VALUES,
    And,
    ArrayContains,
    Between,
    Compare,
    Field,
    FilterError,
    InList,
    IsNull,
    Literal,
    Not,
    Or,
    Param,
    bind_params,
    parse,
    to_text,
    tokenize,
)


def test_literals_and_operators() -> None:
    assert parse("year >= 2020") == Compare(">=", Field("year", 0), Literal(2020, 8), 5)
    assert parse("a <> -1.5e2").right == Literal(-150.0, 5)  # type: ignore[union-attr]
    assert parse("a != .5").right == Literal(0.5, 5)  # type: ignore[union-attr]
    assert parse("s = 'it''s'").right == Literal("it's", 4)  # type: ignore[union-attr]
    assert parse("b = true").right == Literal(True, 4)  # type: ignore[union-attr]
    assert parse("b = False").right == Literal(False, 4)  # type: ignore[union-attr]
    assert parse('"select" = 1').left == Field("select", 0)  # type: ignore[union-attr]
    assert parse('"a""b" = 1').left == Field('a"b', 0)  # type: ignore[union-attr]
    assert parse("x = :p").right == Param("p", 4)  # type: ignore[union-attr]
    assert parse("x=-9223372036854775808").right.value == -(2**63)  # type: ignore[union-attr]
    for op in ("=", "!=", "<", "<=", ">", ">="):
        assert parse(f"x {op} 1").op == op  # type: ignore[union-attr]


def test_predicates() -> None:
    assert parse("x IN (1, 2)") == InList(Field("x", 0), (Literal(1, 6), Literal(2, 9)), False, 2)
    assert parse("x not in (1)").negated  # type: ignore[union-attr]
    assert parse("x IN :xs") == InList(Field("x", 0), (Param("xs", 5),), False, 2)
    assert parse("x BETWEEN 1 AND 3") == Between(Field("x", 0), Literal(1, 10), Literal(3, 16), False, 2)
    assert parse("x NOT BETWEEN 1 AND 3").negated  # type: ignore[union-attr]
    assert parse("x IS NULL") == IsNull(Field("x", 0), False, 2)
    assert parse("x is not null") == IsNull(Field("x", 0), True, 2)
    assert parse("ARRAY_CONTAINS(tags, 'x')") == ArrayContains(Field("tags", 15), Literal("x", 21), 0)
    assert parse("flag") == Compare("=", Field("flag", 0), Literal(True, 0), 0)


def test_precedence() -> None:
    # AND binds tighter than OR; NOT tighter than AND; BETWEEN's AND is not a conjunction.
    node = parse("a = 1 OR b = 2 AND NOT c = 3")
    assert isinstance(node, Or) and isinstance(node.operands[1], And)
    assert isinstance(node.operands[1].operands[1], Not)
    node = parse("(a = 1 OR b = 2) AND c BETWEEN 1 AND 2")
    assert isinstance(node, And) and isinstance(node.operands[0], Or)
    assert isinstance(node.operands[1], Between)
    assert isinstance(parse("a = 1 OR b = 2 OR c = 3"), Or) and len(parse("a=1 OR b=2 OR c=3").operands) == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("year >= AND x = 1", 8, "expected a value after '>=', found 'AND'"),
        ("year >=", 7, "expected a value after '>=', found the end of the filter"),
        ("(a = 1", 6, "expected ')' to close the '(' at position 1"),
        ("a = 1)", 5, "unexpected ')'; expected AND, OR or the end"),
        ("a = 'abc", 4, "unterminated string"),
        ('"abc = 1', 0, "unterminated quoted name"),
        ("a = 1 b = 2", 6, "unexpected 'b'; expected AND, OR or the end"),
        ("a == 1", 3, "expected a value after '=', found '='"),
        ("a ! 1", 2, "unexpected character '!'"),
        ("a IN ()", 6, "expected a value in the IN list, found ')'"),
        ("a IN (1, 2", 10, "expected ',' or ')' in the IN list, found the end of the filter"),
        ("a IN 1", 5, "expected '(' after IN, found '1'"),
        ("a BETWEEN 1 OR 2", 12, "expected AND after the lower bound of BETWEEN, found 'OR'"),
        ("a IS 1", 5, "expected NULL after IS, found '1'"),
        ("a NOT 1", 6, "expected IN or BETWEEN after NOT, found '1'"),
        ("a = 12abc", 4, "invalid number"),
        ("a = 1.2.3", 4, "invalid number"),
        ("a = 9223372036854775808", 4, "integer out of the int64 range"),
        ("a = 1e400", 4, "number out of range"),
        ("a = :", 4, "expected a parameter name after ':'"),
        ("nope(a)", 0, "unknown function 'nope'; known: array_contains"),
        ("array_contains('x', 'y')", 15, "the first argument of array_contains must be a field"),
        ("array_contains(t 'y')", 17,
         "expected ',' after the first argument of array_contains, found \"'y'\""),
        ("1", 1, "expected a comparison operator, IN, BETWEEN or IS, found the end of the filter"),
        ("a = 1 AND", 9, "expected a condition, found the end of the filter"),
        ("NOT", 3, "expected a condition, found the end of the filter"),
        ("   ", 0, "empty filter"),
        ("a = -b", 5, "expected a number after '-', found 'b'"),
        ("a = 'x\ud800'", 6, "invalid character (a lone surrogate is not valid UTF-8)"),
    ],
)
def test_errors_carry_positions(text: str, position: int, reason: str) -> None:
    with pytest.raises(FilterError) as info:
        parse(text)
    assert isinstance(info.value, InvalidArgument)
    assert info.value.position == position
    assert info.value.reason == reason
    message = str(info.value)
    assert message.startswith(f"filter error at position {position + 1}: {reason}\n")
    source, caret = message.splitlines()[1:3]
    assert caret.index("^") == source.index(text[:1]) + position if text.strip() else True


def test_error_snippet_caret_points_at_token() -> None:
    with pytest.raises(FilterError) as info:
        parse("lang = 'en' AND year >= AND x")
    _, source, caret = str(info.value).splitlines()
    assert source[caret.index("^"):].startswith("AND x")


def test_long_filter_snippet_is_windowed() -> None:
    text = "a = 1 AND " * 100 + "b = = 2"
    with pytest.raises(FilterError) as info:
        parse(text)
    _, source, caret = str(info.value).splitlines()
    assert len(source) < 80 and source[caret.index("^")] == "="


def test_limits() -> None:
    with pytest.raises(InvalidArgument, match="the limit is 65536"):
        parse("a = 1 OR " * 8000 + "a = 1")
    parse("a = 1 OR " * 7000 + "a = 1")  # long but within 64 KiB: fine, and no recursion trouble
    with pytest.raises(FilterError, match="nested deeper than 64"):
        parse("(" * 65 + "a = 1" + ")" * 65)
    parse("(" * 64 + "a = 1" + ")" * 64)
    with pytest.raises(FilterError, match="nested deeper than 64"):
        parse("NOT " * 65 + "a = 1")
    with pytest.raises(FilterError, match=f"IN list longer than {MAX_IN_VALUES}"):
        parse("a IN (" + ",".join(["1"] * (MAX_IN_VALUES + 1)) + ")")
    assert len(parse("a IN (" + ",".join(["1"] * MAX_IN_VALUES) + ")").values) == MAX_IN_VALUES  # type: ignore[union-attr]
    with pytest.raises(InvalidArgument, match="must be a string"):
        parse(b"a = 1")


def test_bind_params() -> None:
    text = "a = :x AND b IN :ys AND c BETWEEN :lo AND :hi AND d = :when"
    when = dt.date(2024, 5, 1)
    node = bind_params(parse(text), {"x": 1, "ys": ["p", "q"], "lo": 0.5, "hi": 2, "when": when}, text)
    assert to_text(node) == ("a = 1 AND b IN ('p', 'q') AND c BETWEEN 0.5 AND 2 AND "
                             "d = '2024-05-01T00:00:00'")
    with pytest.raises(FilterError, match="no value given for parameter :x") as info:
        bind_params(parse("a = :x"), {}, "a = :x")
    assert info.value.position == 4
    for bad, match in [({"x": float("nan")}, "not a finite number"), ({"x": object()}, "unsupported type"),
                       ({"x": 2**70}, "int64 range"), ({"x": [1, 2]}, "unsupported type"),
                       ({"x": "\udfff"}, "not valid UTF-8")]:
        with pytest.raises(FilterError, match=match):
            bind_params(parse("a = :x"), bad, "a = :x")
    with pytest.raises(FilterError, match="empty list"):
        bind_params(parse("a IN :x"), {"x": []}, "a IN :x")
    with pytest.raises(InvalidArgument, match="must be a dict"):
        bind_params(parse("a = :x"), [("x", 1)], "a = :x")  # type: ignore[arg-type]


def test_canonical_text_is_stable_and_reparses() -> None:
    a = parse("b = 2 and (a = 1) AND c IN (3, 1, 3)")
    b = parse("c in (1,3)  AND a=1 AND b=2")
    assert to_text(a) == to_text(b) == "a = 1 AND b = 2 AND c IN (1, 3)"
    text = "NOT (x = 'it''s' OR \"and\" IS NOT NULL) AND y NOT BETWEEN -1 AND 2.5 OR array_contains(t, 'q')"
    once = to_text(parse(text))
    assert to_text(parse(once)) == once


def test_tokenizer_keywords_are_case_insensitive() -> None:
    kinds = [t.kind for t in tokenize("a AnD b oR NoT c iS nUlL")]
    assert kinds == ["IDENT", "KW", "IDENT", "KW", "KW", "IDENT", "KW", "KW", "EOF"]


TABLE = random_table(50, seed=2)
_ALPHABET = st.sampled_from([*"ab_19 .-'\"():,=<>!", "AND", "OR", "NOT", "IN", "IS", "NULL", "BETWEEN",
                             "array_contains", ":p", "\x00", "\ud800", "é", "1e999", "TRUE", "i32", "lang",
                             "'en'", "flag"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.lists(_ALPHABET, max_size=30).map(" ".join),
                 st.lists(_ALPHABET, max_size=30).map("".join)))
def test_garbage_only_raises_invalid_argument(text: str) -> None:
    try:
        node = parse(text)
    except InvalidArgument:
        return
    to_text(node)  # whatever parses must also render
    try:  # and type-checking and evaluating it fails only with InvalidArgument too
        compiled = compile_filter(text, SCHEMA)
    except InvalidArgument:
        return
    assert compiled is not None
    compiled.mask(TABLE)
