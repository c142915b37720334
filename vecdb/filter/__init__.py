"""Filters: a SQL WHERE subset over a collection's Arrow attribute columns.

``compile_filter(text, schema, params)`` parses and type-checks a filter; ``.mask(table)`` gives
the row mask, optionally helped by a per-segment ``AttributeIndex``. ``parse_schema`` and
``coerce_attributes`` define and validate the columns. This package knows expressions and Arrow
columns, and nothing about vector indexes.
"""

from vecdb.filter.attrindex import AttributeIndex
from vecdb.filter.evaluate import CompiledFilter, compile_filter, estimate_selectivity
from vecdb.filter.expr import FilterError, parse, to_text
from vecdb.filter.schema import TYPES, coerce_attributes, parse_schema, schema_to_dict

__all__ = [
    "TYPES",
    "AttributeIndex",
    "CompiledFilter",
    "FilterError",
    "coerce_attributes",
    "compile_filter",
    "estimate_selectivity",
    "parse",
    "parse_schema",
    "schema_to_dict",
    "to_text",
]
