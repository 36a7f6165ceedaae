r"""Translate ragkit filters into Milvus boolean expressions.

A chunk's metadata lives in one JSON field (``metadata``); ``source`` and
``document_id`` are scalar fields of their own. So ``page >= 2 and source ==
"a.md"`` becomes::

    ((exists metadata["page"] and metadata["page"] >= 2) and source == "a.md")

Two Milvus behaviours are evened out so results match the rest of ragkit
(:meth:`ragkit.filters.Filter.matches`, the SQL translation):

- A comparison on a JSON key that a row lacks is *unknown* in Milvus, not
  false, and ``not`` of unknown stays unknown, so ``not (page == 3)`` would
  drop the rows without a page. Every comparison on a metadata key is
  therefore guarded with ``exists``: it is plainly false for a missing key,
  and its negation true. (A JSON ``null`` counts as missing, as in SQLite.)
- Milvus Lite accepts ``in`` only on scalar fields, so ``in`` / ``not in`` on
  a metadata key are spelled out as ``==`` / ``!=`` joined by ``or`` /
  ``and``; on ``source`` and ``document_id`` the native ``in`` is used.

Strings are double-quoted with ``\``, ``"``, newline, carriage return and tab
escaped, which both Milvus Lite and the Milvus server parse.

A prefix filter (``source.startswith("hr/")``) becomes ``like "hr/%"``, with
the pattern's wildcards ``%`` and ``_`` escaped by a backslash so they match
themselves; a prefix holding a backslash, or on a metadata key, becomes a
string range instead (``>= prefix and <`` the next string), since Milvus reads
a backslash in a pattern inconsistently and matches patterns against the JSON
text of metadata values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ragkit.errors import FilterError
from ragkit.filters import And, Comparison, Filter, Not, Or, Scalar

SCALAR_FIELDS: Mapping[str, str] = {"source": "source", "document_id": "document_id"}
"""Filter fields stored as Milvus scalar fields (filter name -> Milvus field)."""

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def to_milvus_expr(flt: Filter, json_field: str = "metadata", scalar_fields: Mapping[str, str] = SCALAR_FIELDS) -> str:
    """The Milvus expression that selects the rows ``flt`` matches."""
    if isinstance(flt, And):
        return "(" + " and ".join(to_milvus_expr(item, json_field, scalar_fields) for item in flt.items) + ")"
    if isinstance(flt, Or):
        return "(" + " or ".join(to_milvus_expr(item, json_field, scalar_fields) for item in flt.items) + ")"
    if isinstance(flt, Not):
        return "(not " + to_milvus_expr(flt.item, json_field, scalar_fields) + ")"
    if flt.field in scalar_fields:
        return _scalar_comparison(scalar_fields[flt.field], flt)
    return _json_comparison(f"{json_field}[{quote(flt.field)}]", flt)


def quote(value: str) -> str:
    """A Milvus string literal for ``value``."""
    return '"' + "".join(_ESCAPES.get(ch, ch) for ch in value) + '"'


def literal(value: Scalar) -> str:
    """A Milvus literal for a filter value (string, number or boolean)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterError(f"filter value {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    raise FilterError(f"filter value {value!r} must be a string, number or boolean")


def like_pattern(prefix: str) -> str:
    """The Milvus ``like`` pattern matching the strings that start with ``prefix`` (no backslash in it).

    ``%`` and ``_`` are escaped with a backslash so they match themselves.
    """
    return "".join("\\" + ch if ch in "%_" else ch for ch in prefix) + "%"


def _prefix_test(accessor: str, prefix: str, like: bool = True) -> str:
    """``accessor`` starts with ``prefix``: ``like`` (when ``like``), or a string range.

    Milvus reads a backslash in a ``like`` pattern as an escape in some
    patterns and as itself in others, and matches a pattern with an escaped
    wildcard against the JSON text of a metadata value, so a prefix with a
    backslash, and any prefix on a metadata key, is written as ``accessor >=
    prefix and accessor < next``, ``next`` being the first string after every
    string that starts with ``prefix``.
    """
    if like and "\\" not in prefix:
        return f"{accessor} like {quote(like_pattern(prefix))}"
    stem = prefix.rstrip(chr(0x10FFFF))
    if not stem:  # every string starts with "" (and with U+10FFFF... only those at the top)
        return f"{accessor} >= {quote(prefix)}"
    following = ord(stem[-1]) + 1
    upper = stem[:-1] + chr(0xE000 if following == 0xD800 else following)  # no lone surrogates
    return f"({accessor} >= {quote(prefix)} and {accessor} < {quote(upper)})"


def _values(flt: Comparison) -> tuple[Scalar, ...]:
    return flt.value if isinstance(flt.value, tuple) else (flt.value,)


def _scalar_comparison(field: str, flt: Comparison) -> str:
    if flt.op in ("in", "not in"):
        return f"{field} {flt.op} [{', '.join(literal(v) for v in _values(flt))}]"
    if flt.op == "prefix":
        return _prefix_test(field, str(flt.value))
    return f"{field} {flt.op} {literal(flt.value)}"  # type: ignore[arg-type]


def _json_comparison(accessor: str, flt: Comparison) -> str:
    exists = f"exists {accessor}"
    if flt.op == "in":
        values = _values(flt)
        if not values:
            return "false"
        alternatives = " or ".join(f"{accessor} == {literal(v)}" for v in values)
        return f"({exists} and ({alternatives}))"
    if flt.op == "not in":
        return " and ".join([f"({exists}", *(f"{accessor} != {literal(v)}" for v in _values(flt))]) + ")"
    if flt.op == "prefix":
        return f"({exists} and {_prefix_test(accessor, str(flt.value), like=False)})"
    return f"({exists} and {accessor} {flt.op} {literal(flt.value)})"  # type: ignore[arg-type]
