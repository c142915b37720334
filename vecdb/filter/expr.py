"""The filter language: a small SQL WHERE subset parsed into an AST with source positions.

Grammar (keywords are case-insensitive; ``field`` is ``[A-Za-z_][A-Za-z0-9_]*`` or ``"quoted"``)::

    filter    := or_expr EOF
    or_expr   := and_expr ( OR and_expr )*
    and_expr  := not_expr ( AND not_expr )*
    not_expr  := NOT not_expr | predicate
    predicate := '(' or_expr ')'
               | array_contains '(' field ',' value ')'
               | operand ( cmp operand
                         | [NOT] IN '(' value ( ',' value )* ')' | [NOT] IN :param
                         | [NOT] BETWEEN operand AND operand
                         | IS [NOT] NULL )
               | field                                  -- a bool field, same as field = TRUE
    cmp       := = | != | <> | < | <= | > | >=
    operand   := field | value
    value     := ['-'] number | 'string' | TRUE | FALSE | NULL | :param

Parsing never looks at a schema; :mod:`vecdb.filter.evaluate` type-checks the tree. Every error
is a :class:`FilterError` (an ``InvalidArgument``) carrying the 0-based offset of the culprit.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from vecdb.errors import InvalidArgument

MAX_FILTER_BYTES = 64 * 1024
MAX_DEPTH = 64
MAX_IN_VALUES = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE"})
_FUNCTIONS = frozenset({"array_contains"})
# Comparison operators with the operator that results from swapping the operands.
FLIPPED_OP = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
# Literal value types after binding: datetimes only come in through parameters.
Value = int | float | str | bool | None | _dt.datetime


class FilterError(InvalidArgument):
    """A filter that cannot be parsed or type-checked; ``position`` is a 0-based offset."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.reason = message
        self.position = position
        super().__init__(f"filter error at position {position + 1}: {message}\n{_snippet(text, position)}")


def _snippet(text: str, position: int, width: int = 60) -> str:
    """The source line around ``position`` with a caret under it (control chars flattened)."""
    start = max(0, position - width // 2)
    end = min(len(text), start + width)
    shown = "".join(c if c.isprintable() else " " for c in text[start:end])
    prefix = "..." if start > 0 else ""
    suffix = "..." if end < len(text) else ""
    return f"  {prefix}{shown}{suffix}\n  {' ' * (len(prefix) + position - start)}^"


# ---------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Field:
    """A column reference."""

    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    """A constant; ``value`` is one of :data:`Value`."""

    value: Value
    pos: int


@dataclass(frozen=True)
class Param:
    """A named parameter ``:name``, replaced by a :class:`Literal` in :func:`bind_params`."""

    name: str
    pos: int


Operand = Field | Literal | Param


@dataclass(frozen=True)
class Compare:
    """``left op right`` with op one of ``= != < <= > >=`` (``<>`` is stored as ``!=``)."""

    op: str
    left: Operand
    right: Operand
    pos: int


@dataclass(frozen=True)
class InList:
    """``operand [NOT] IN (values)``; ``values`` may be a single list-valued :class:`Param`."""

    operand: Operand
    values: tuple[Literal | Param, ...]
    negated: bool
    pos: int


@dataclass(frozen=True)
class Between:
    """``operand [NOT] BETWEEN low AND high`` (bounds included)."""

    operand: Operand
    low: Operand
    high: Operand
    negated: bool
    pos: int


@dataclass(frozen=True)
class IsNull:
    """``operand IS [NOT] NULL``."""

    operand: Operand
    negated: bool
    pos: int


@dataclass(frozen=True)
class ArrayContains:
    """``array_contains(field, value)``: true when the list holds ``value``."""

    field: Field
    value: Literal | Param
    pos: int


@dataclass(frozen=True)
class Not:
    """Logical negation (unknown stays unknown)."""

    operand: Node
    pos: int


@dataclass(frozen=True)
class And:
    """Conjunction of two or more operands."""

    operands: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Or:
    """Disjunction of two or more operands."""

    operands: tuple[Node, ...]
    pos: int


Node = Compare | InList | Between | IsNull | ArrayContains | Not | And | Or


# ----------------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class Token:
    """One lexeme: ``kind`` is NUM, STR, IDENT, QIDENT, KW, PARAM, OP, '(', ')', ',', '-' or EOF."""

    kind: str
    text: str
    pos: int
    value: Value = None


_NUMBER = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DIGITS = frozenset("0123456789")  # str.isdigit() also accepts '¹' and other non-ASCII digits
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("<=", ">=", "!=", "<>", "=", "<", ">")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "(),-":
            tokens.append(Token(c, c, i))
            i += 1
        elif c == "'" or c == '"':
            value, end = _read_quoted(text, i)
            tokens.append(Token("STR" if c == "'" else "QIDENT", text[i:end], i, value))
            i = end
        elif c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            i = _read_number(text, i, tokens)
        elif c == ":":
            m = _IDENT.match(text, i + 1)
            if m is None:
                raise FilterError("expected a parameter name after ':'", text, i)
            tokens.append(Token("PARAM", m.group(), i, m.group()))
            i = m.end()
        elif (m := _IDENT.match(text, i)) is not None:
            word = m.group()
            kind = "KW" if word.upper() in _KEYWORDS else "IDENT"
            tokens.append(Token(kind, word, i, word.upper() if kind == "KW" else word))
            i = m.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise FilterError(f"unexpected character {c!r}", text, i)
            tokens.append(Token("OP", op, i, "!=" if op == "<>" else op))
            i += len(op)
    tokens.append(Token("EOF", "", n))
    return tokens


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a quoted string or identifier; a doubled quote inside stands for one quote."""
    quote = text[start]
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find(quote, i)
        if j < 0:
            what = "string" if quote == "'" else "quoted name"
            raise FilterError(f"unterminated {what}", text, start)
        parts.append(text[i:j])
        if text.startswith(quote * 2, j):
            parts.append(quote)
            i = j + 2
        else:
            return "".join(parts), j + 1


def _read_number(text: str, start: int, tokens: list[Token]) -> int:
    m = _NUMBER.match(text, start)
    assert m is not None  # the caller saw a digit or '.digit'
    end = m.end()
    if end < len(text) and (text[end].isalnum() or text[end] in "_."):
        raise FilterError("invalid number", text, start)
    lexeme = m.group()
    value: int | float
    if "." in lexeme or "e" in lexeme or "E" in lexeme:
        value = float(lexeme)
        if not math.isfinite(value):
            raise FilterError("number out of range", text, start)
    else:
        if len(lexeme) > 20:  # int() on huge digit strings is slow and capped by Python
            raise FilterError("integer out of the int64 range", text, start)
        value = int(lexeme)
    tokens.append(Token("NUM", lexeme, start, value))
    return end


# -------------------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the token list; ``depth`` bounds nesting."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "EOF":
            self.i += 1
        return tok

    def error(self, message: str, tok: Token | None = None) -> FilterError:
        return FilterError(message, self.text, (tok or self.tok).pos)

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "KW" and self.tok.value in words

    def expect_kw(self, word: str, after: str) -> None:
        if not self.is_kw(word):
            raise self.error(f"expected {word} after {after}, found {_describe(self.tok)}")
        self.advance()

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}, found {_describe(self.tok)}")
        return self.advance()

    def nest(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"filter nested deeper than {MAX_DEPTH} levels", tok)

    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "EOF":
            raise self.error(f"unexpected {_describe(self.tok)}; expected AND, OR or the end")
        return node

    def or_expr(self) -> Node:
        first = self.tok
        items = [self.and_expr()]
        while self.is_kw("OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items), first.pos)

    def and_expr(self) -> Node:
        first = self.tok
        items = [self.not_expr()]
        while self.is_kw("AND"):
            self.advance()
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items), first.pos)

    def not_expr(self) -> Node:
        if self.is_kw("NOT"):
            tok = self.advance()
            self.nest(tok)
            node = Not(self.not_expr(), tok.pos)
            self.depth -= 1
            return node
        return self.predicate()

    def predicate(self) -> Node:
        tok = self.tok
        if tok.kind == "(":
            self.advance()
            self.nest(tok)
            node = self.or_expr()
            self.depth -= 1
            if self.tok.kind != ")":
                raise self.error(f"expected ')' to close the '(' at position {tok.pos + 1}")
            self.advance()
            return node
        if tok.kind == "IDENT" and self.tokens[self.i + 1].kind == "(":
            return self.function()
        if tok.kind == "EOF":
            raise self.error("expected a condition, found the end of the filter")
        left = self.operand("a condition")
        return self.predicate_tail(left)

    def predicate_tail(self, left: Operand) -> Node:
        tok = self.tok
        if tok.kind == "OP":
            self.advance()
            right = self.operand(f"a value after '{tok.text}'")
            return Compare(str(tok.value), left, right, tok.pos)
        negated = False
        if self.is_kw("NOT"):
            self.advance()
            negated = True
            if not self.is_kw("IN", "BETWEEN"):
                raise self.error(f"expected IN or BETWEEN after NOT, found {_describe(self.tok)}")
        if self.is_kw("IN"):
            return self.in_list(left, negated, self.advance())
        if self.is_kw("BETWEEN"):
            kw = self.advance()
            low = self.operand("a lower bound after BETWEEN")
            self.expect_kw("AND", "the lower bound of BETWEEN")
            high = self.operand("an upper bound after BETWEEN ... AND")
            return Between(left, low, high, negated, kw.pos)
        if self.is_kw("IS"):
            kw = self.advance()
            is_not = False
            if self.is_kw("NOT"):
                self.advance()
                is_not = True
            self.expect_kw("NULL", "IS NOT" if is_not else "IS")
            return IsNull(left, is_not, kw.pos)
        if isinstance(left, Field):  # a bare bool column: `active` means `active = TRUE`
            return Compare("=", left, Literal(True, left.pos), left.pos)
        raise self.error(f"expected a comparison operator, IN, BETWEEN or IS, found {_describe(tok)}")

    def in_list(self, left: Operand, negated: bool, kw: Token) -> InList:
        if self.tok.kind == "PARAM":
            p = self.advance()
            return InList(left, (Param(str(p.value), p.pos),), negated, kw.pos)
        self.expect("(", "'(' after IN")
        values: list[Literal | Param] = [self.value("a value in the IN list")]
        while self.tok.kind == ",":
            self.advance()
            if len(values) >= MAX_IN_VALUES:
                raise self.error(f"IN list longer than {MAX_IN_VALUES} values")
            values.append(self.value("a value after ','"))
        if self.tok.kind != ")":
            raise self.error(f"expected ',' or ')' in the IN list, found {_describe(self.tok)}")
        self.advance()
        return InList(left, tuple(values), negated, kw.pos)

    def function(self) -> Node:
        name = self.advance()
        if str(name.value).lower() not in _FUNCTIONS:
            raise self.error(f"unknown function {name.text!r}; known: {', '.join(sorted(_FUNCTIONS))}", name)
        self.advance()  # '('
        field = self.operand("a list field as the first argument of array_contains")
        if not isinstance(field, Field):
            raise FilterError("the first argument of array_contains must be a field", self.text, field.pos)
        self.expect(",", "',' after the first argument of array_contains")
        value = self.value("a value as the second argument of array_contains")
        self.expect(")", "')' after the arguments of array_contains")
        return ArrayContains(field, value, name.pos)

    def operand(self, what: str) -> Operand:
        tok = self.tok
        if tok.kind in ("IDENT", "QIDENT"):
            self.advance()
            return Field(str(tok.value), tok.pos)
        return self.value(what)

    def value(self, what: str) -> Literal | Param:
        tok = self.tok
        if tok.kind == "-":
            self.advance()
            num = self.tok
            if num.kind != "NUM":
                raise self.error(f"expected a number after '-', found {_describe(num)}")
            self.advance()
            assert isinstance(num.value, (int, float))
            return Literal(_check_int(-num.value, self.text, tok.pos), tok.pos)
        if tok.kind == "NUM":
            self.advance()
            return Literal(_check_int(tok.value, self.text, tok.pos), tok.pos)  # type: ignore[arg-type]
        if tok.kind == "STR":
            self.advance()
            return Literal(tok.value, tok.pos)
        if tok.kind == "PARAM":
            self.advance()
            return Param(str(tok.value), tok.pos)
        if tok.kind == "KW" and tok.value in ("TRUE", "FALSE", "NULL"):
            self.advance()
            return Literal({"TRUE": True, "FALSE": False, "NULL": None}[str(tok.value)], tok.pos)
        raise self.error(f"expected {what}, found {_describe(tok)}")


def _check_int(value: int | float, text: str, pos: int) -> int | float:
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise FilterError("integer out of the int64 range", text, pos)
    return value


def _describe(tok: Token) -> str:
    if tok.kind == "EOF":
        return "the end of the filter"
    shown = tok.text if len(tok.text) <= 30 else tok.text[:27] + "..."
    return repr(shown)


def parse(text: object) -> Node:
    """Parse a filter string into an AST; raise :class:`FilterError` (InvalidArgument) if invalid."""
    if not isinstance(text, str):
        raise InvalidArgument(f"filter must be a string, not {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILTER_BYTES:
        raise InvalidArgument(f"filter is {size} bytes long; the limit is {MAX_FILTER_BYTES}")
    if not text.strip():
        raise FilterError("empty filter", text, 0)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: Arrow strings must be valid UTF-8
        raise FilterError("invalid character (a lone surrogate is not valid UTF-8)", text, exc.start) from None
    return _Parser(text).parse()


# ----------------------------------------------------------------------------------- parameters


def bind_params(node: Node, params: Mapping[str, object] | None, text: str) -> Node:
    """Replace every :class:`Param` with a :class:`Literal` from ``params``.

    Values may be bool, int, float (finite), str, None, datetime/date, numpy scalars; a list,
    tuple or set is accepted only as the whole right side of ``IN :param``.
    """
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise InvalidArgument(f"filter params must be a dict, not {type(params).__name__}")
    return _Binder(params, text).node(node)


class _Binder:
    def __init__(self, params: Mapping[str, object], text: str) -> None:
        self.params = params
        self.text = text

    def node(self, node: Node) -> Node:
        if isinstance(node, (And, Or)):
            return type(node)(tuple(self.node(c) for c in node.operands), node.pos)
        if isinstance(node, Not):
            return Not(self.node(node.operand), node.pos)
        if isinstance(node, Compare):
            return Compare(node.op, self.operand(node.left), self.operand(node.right), node.pos)
        if isinstance(node, InList):
            return InList(self.operand(node.operand), self.in_values(node), node.negated, node.pos)
        if isinstance(node, Between):
            low, high = self.operand(node.low), self.operand(node.high)
            return Between(self.operand(node.operand), low, high, node.negated, node.pos)
        if isinstance(node, IsNull):
            return IsNull(self.operand(node.operand), node.negated, node.pos)
        assert isinstance(node, ArrayContains)
        value = self.operand(node.value)
        assert isinstance(value, Literal)
        return ArrayContains(node.field, value, node.pos)

    def operand(self, op: Operand) -> Operand:
        if not isinstance(op, Param):
            return op
        return Literal(self.scalar(self.lookup(op), op.pos, op.name), op.pos)

    def in_values(self, node: InList) -> tuple[Literal | Param, ...]:
        vals = node.values
        if len(vals) == 1 and isinstance(vals[0], Param):
            raw = self.lookup(vals[0])
            if isinstance(raw, (list, tuple, set, frozenset)) or type(raw).__name__ == "ndarray":
                items = list(raw)  # type: ignore[call-overload]
                if not items:
                    raise FilterError(f"parameter :{vals[0].name} is an empty list", self.text, vals[0].pos)
                if len(items) > MAX_IN_VALUES:
                    raise FilterError(f"IN list longer than {MAX_IN_VALUES} values", self.text, vals[0].pos)
                return tuple(Literal(self.scalar(v, vals[0].pos, vals[0].name), vals[0].pos) for v in items)
        return tuple(self.operand(v) for v in vals)  # type: ignore[misc]

    def lookup(self, p: Param) -> object:
        if p.name not in self.params:
            raise FilterError(f"no value given for parameter :{p.name}", self.text, p.pos)
        return self.params[p.name]

    def scalar(self, value: object, pos: int, name: str) -> Value:
        if type(value).__name__ == "datetime64":  # .item() of a ns datetime64 is an int
            value = value.astype("datetime64[us]").item()  # type: ignore[attr-defined]
        elif hasattr(value, "item") and type(value).__module__ == "numpy":
            value = value.item()  # type: ignore[union-attr]
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise FilterError(f"parameter :{name} is not valid UTF-8 text", self.text, pos) from None
            return value
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return _check_int(value, self.text, pos)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise FilterError(f"parameter :{name} is not a finite number", self.text, pos)
            return value
        if isinstance(value, _dt.datetime):
            return value
        if isinstance(value, _dt.date):
            return _dt.datetime(value.year, value.month, value.day)
        raise FilterError(f"parameter :{name} has unsupported type {type(value).__name__}", self.text, pos)


# ------------------------------------------------------------------------------ canonical text


def to_text(node: Node) -> str:
    """A deterministic text form that parses back to an equivalent filter (and to itself).

    AND/OR operands are flattened, de-duplicated and sorted, IN lists sorted and de-duplicated,
    keywords upper-cased: filters that differ only in those respects get the same text.
    """
    return _render(_normalize(node))


def _normalize(node: Node) -> Node:
    """Flatten nested AND/OR, drop duplicate operands, sort them, collapse single ones."""
    if isinstance(node, Not):
        return Not(_normalize(node.operand), node.pos)
    if not isinstance(node, (And, Or)):
        return node
    kind = type(node)
    flat: list[Node] = []
    for child in (_normalize(c) for c in node.operands):
        flat.extend(child.operands if isinstance(child, kind) else [child])  # type: ignore[union-attr]
    unique = {_render(c): c for c in flat}
    if len(unique) == 1:
        return next(iter(unique.values()))
    return kind(tuple(unique[key] for key in sorted(unique)), node.pos)


def _render(node: Node) -> str:
    if isinstance(node, (And, Or)):
        parts = [f"({_render(c)})" if isinstance(c, (And, Or)) else _render(c) for c in node.operands]
        return f" {type(node).__name__.upper()} ".join(parts)
    if isinstance(node, Not):
        inner = _render(node.operand)
        return f"NOT ({inner})" if isinstance(node.operand, (And, Or)) else f"NOT {inner}"
    if isinstance(node, Compare):
        return f"{_operand_text(node.left)} {node.op} {_operand_text(node.right)}"
    if isinstance(node, InList):
        values = sorted({_operand_text(v) for v in node.values})
        neg = "NOT " if node.negated else ""
        return f"{_operand_text(node.operand)} {neg}IN ({', '.join(values)})"
    if isinstance(node, Between):
        neg = "NOT " if node.negated else ""
        low, high = _operand_text(node.low), _operand_text(node.high)
        return f"{_operand_text(node.operand)} {neg}BETWEEN {low} AND {high}"
    if isinstance(node, IsNull):
        return f"{_operand_text(node.operand)} IS {'NOT ' if node.negated else ''}NULL"
    return f"array_contains({_operand_text(node.field)}, {_operand_text(node.value)})"


def _operand_text(op: Operand) -> str:
    if isinstance(op, Field):
        plain = _IDENT.fullmatch(op.name) and op.name.upper() not in _KEYWORDS
        return op.name if plain else '"' + op.name.replace('"', '""') + '"'
    if isinstance(op, Param):
        return f":{op.name}"
    v = op.value
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    text = v.isoformat() if isinstance(v, _dt.datetime) else v
    return "'" + text.replace("'", "''") + "'"
