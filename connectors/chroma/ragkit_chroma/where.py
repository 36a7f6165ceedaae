"""Translate ragkit filters into Chroma ``where`` clauses.

How a chunk is laid out in Chroma (see :mod:`ragkit_chroma.store`): each
metadata key ``k`` whose value is a string, number or boolean is a Chroma
metadata key ``m:k``; ``source`` and ``document_id`` are keys of their own;
and the list :data:`KEYS` names every metadata key the chunk has (whatever
its value), so a filter can tell a missing key from a present one.

Chroma's ``where`` has ``$eq $ne $gt $gte $lt $lte $in $nin`` on a key,
``$contains`` / ``$not_contains`` on a list, and ``$and`` / ``$or`` -- no
``$not``. So a ``not`` is pushed down to the comparisons (De Morgan), and
each comparison is written so that its result on a chunk that lacks the key
matches :meth:`ragkit.filters.Filter.matches` (false; its negation true):

- Chroma's ``$ne`` and ``$nin`` match a chunk that lacks the key, so
  ``page != 3`` is ``page is present and page $ne 3``, while ``not (page ==
  3)`` is plainly ``page $ne 3``;
- ``not (page < 5)`` is ``page is absent or page $gte 5``.

What Chroma cannot express is refused with a :class:`ragkit.errors.FilterError`
naming the operator and the field, never dropped: a prefix
(``field.startswith(...)``), and ordering (``<``, ``<=``, ``>``, ``>=``)
against a string or a boolean (Chroma orders numbers only).
"""

from __future__ import annotations

import math
from typing import Any

from ragkit.errors import FilterError
from ragkit.filters import And, Comparison, Filter, Not, Or, Scalar

KEYS = "rk:keys"
"""The list of a chunk's metadata key names (only when it has any; Chroma refuses an empty list)."""
ROW = "rk:row"
"""A key every chunk row holds with the value ``1``: the clause that is always true (or false) is built on it."""
PREFIX = "m:"
"""What a metadata key ``k`` is called in Chroma: ``m:k``."""
TOP_LEVEL = ("source", "document_id")
"""Filter fields that are chunk fields, present on every chunk, stored under their own names."""

Where = dict[str, Any]

TRUE: Where = {ROW: {"$eq": 1}}
FALSE: Where = {ROW: {"$eq": 0}}
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<", "in": "not in", "not in": "in"}
_CHROMA_OPS = {"==": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def chroma_key(field: str) -> str:
    """The Chroma metadata key a filter field reads."""
    return field if field in TOP_LEVEL else PREFIX + field


def to_chroma_where(flt: Filter) -> Where:
    """The Chroma ``where`` that selects exactly the chunks ``flt`` matches.

    Raises :class:`FilterError` for what Chroma cannot express.
    """
    return _translate(flt, negate=False)


def _translate(flt: Filter, negate: bool) -> Where:
    if isinstance(flt, Not):
        return _translate(flt.item, not negate)
    if isinstance(flt, (And, Or)):
        conjunction = isinstance(flt, And) != negate  # not (a and b) == (not a) or (not b)
        parts = [_translate(item, negate) for item in flt.items]
        return _join("$and" if conjunction else "$or", parts)
    return _comparison(flt, negate)


def _join(op: str, parts: list[Where]) -> Where:
    if not parts:
        return TRUE if op == "$and" else FALSE
    if len(parts) == 1:
        return parts[0]
    return {op: parts}


def _present(field: str) -> Where:
    return TRUE if field in TOP_LEVEL else {KEYS: {"$contains": field}}


def _absent(field: str) -> Where:
    return FALSE if field in TOP_LEVEL else {KEYS: {"$not_contains": field}}


def _comparison(flt: Comparison, negate: bool) -> Where:
    field, op = flt.field, flt.op
    if op == "prefix":
        raise FilterError(
            f"filter {field}.startswith({flt.value!r}): Chroma's where has no prefix operator, "
            f"so the prefix filter on field {field!r} cannot run on a Chroma store"
        )
    values = flt.value if isinstance(flt.value, tuple) else (flt.value,)
    for value in values:
        _check_value(field, op, value)
    key = chroma_key(field)
    wanted = _NEGATED[op] if negate else op
    if wanted in ("<", "<=", ">", ">="):
        test: Where = {key: {_CHROMA_OPS[wanted]: values[0]}}
        # Chroma's ordering on a missing key is false, as ragkit's; the negation needs the absent ones too
        return _join("$or", [_absent(field), test]) if negate else test
    if wanted == "==":
        test = {key: {"$eq": values[0]}}
        return _join("$or", [_absent(field), test]) if negate else test  # not (x != v): absent or equal
    if wanted == "!=":
        test = {key: {"$ne": values[0]}}  # $ne also matches a missing key: right for not (x == v)
        return test if negate else _join("$and", [_present(field), test])
    if wanted == "in":
        test = _in(key, values, "$in")
        return _join("$or", [_absent(field), test]) if negate else test
    # not in
    test = _in(key, values, "$nin")  # $nin also matches a missing key: right for not (x in [...])
    return test if negate else _join("$and", [_present(field), test])


def _in(key: str, values: tuple[Scalar, ...], op: str) -> Where:
    """``$in`` / ``$nin``: Chroma wants a non-empty list of one type, so values are grouped by type."""
    groups: dict[type, list[Scalar]] = {}
    for value in values:
        groups.setdefault(type(value), []).append(value)
    if op == "$in":
        return _join("$or", [{key: {"$in": group}} for group in groups.values()])
    return _join("$and", [{key: {"$nin": group}} for group in groups.values()])


def _check_value(field: str, op: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"filter {field} {op} {value!r}: the value is not a finite number")
    if op in ("<", "<=", ">", ">=") and (isinstance(value, (str, bool)) or not isinstance(value, (int, float))):
        raise FilterError(
            f"filter {field} {op} {value!r}: Chroma orders numbers only, so operator {op!r} on field "
            f"{field!r} with a {type(value).__name__} value cannot run on a Chroma store"
        )


__all__ = ["FALSE", "KEYS", "PREFIX", "ROW", "TOP_LEVEL", "TRUE", "Where", "chroma_key", "to_chroma_where"]
