"""Translate ragkit filters into Chroma ``where`` clauses.

How a chunk is laid out in Chroma (see :mod:`ragkit_chroma.store`): each
metadata key ``k`` whose value is a string, number or boolean is a Chroma
metadata key ``m:k``; ``source`` and ``document_id`` are keys of their own;
the list :data:`KEYS` names every metadata key the chunk has (whatever its
value: lists, objects and nulls are kept only in the chunk's JSON), and the
list :data:`NUMBERS` those holding a number, so a filter can tell a missing
key from a present one, and a number from anything else.

Chroma's ``where`` has ``$eq $ne $gt $gte $lt $lte $in $nin`` on a key,
``$contains`` / ``$not_contains`` on a list, and ``$and`` / ``$or`` -- no
``$not``. So a ``not`` is pushed down to the comparisons (De Morgan), and
each comparison is written to give what :meth:`ragkit.filters.Filter.matches`
gives, on chunks that lack the key (false; its negation true) and across
types as Python compares them:

- Chroma's ``$ne`` and ``$nin`` match a chunk that lacks the key, so
  ``page != 3`` is ``page is present and page $ne 3``, while ``not (page ==
  3)`` is plainly ``page $ne 3``;
- ``not (page < 5)`` is ``page is not a number or page $gte 5``;
- Python holds ``True == 1 == 1.0`` and ``False == 0``, and orders booleans
  as 0 and 1; Chroma keeps booleans apart from numbers, so ``x == 1`` is
  ``x $in [1] or x $in [True]``, and ``x > 0`` adds ``x $eq True``.

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
NUMBERS = "rk:numbers"
"""The list of a chunk's metadata keys whose value is a number (not a boolean); only when it has any."""
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
_PY_ORDER: dict[str, Any] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
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
    neutral, absorbing = (TRUE, FALSE) if op == "$and" else (FALSE, TRUE)
    if absorbing in parts:
        return absorbing
    parts = [part for part in parts if part != neutral]
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
        return _ordering(field, key, op, values[0], negate)
    equal = _equivalents(values)
    if wanted in ("==", "in"):
        test = _in(key, equal, "$in")
        # not (x != v): absent or equal
        return _join("$or", [_absent(field), test]) if negate else test
    test = _in(key, equal, "$nin")  # $nin also matches a missing key: right for not (x in [...])
    return test if negate else _join("$and", [_present(field), test])


def _ordering(field: str, key: str, op: str, value: Scalar, negate: bool) -> Where:
    """``x op value`` (or its negation) for a number ``value``, as Python orders: booleans are 0 and 1.

    Chroma orders numbers only, so the booleans that satisfy the comparison
    are added (or, negated, excluded) by equality; a chunk whose value is a
    string, a list or nothing fails ``x op value`` and passes its negation,
    told apart by the :data:`NUMBERS` list.
    """
    holds = [b for b in (False, True) if _PY_ORDER[op](b, value)]
    if not negate:
        return _join("$or", [{key: {_CHROMA_OPS[op]: value}}, *({key: {"$eq": b}} for b in holds)])
    not_number = {NUMBERS: {"$not_contains": field}}
    fails = _join("$or", [not_number, {key: {_CHROMA_OPS[_NEGATED[op]]: value}}])
    return _join("$and", [fails, *({key: {"$ne": b}} for b in holds)])


def _equivalents(values: tuple[Scalar, ...]) -> list[Scalar]:
    """``values`` plus what Python holds equal to them across types: ``True == 1 == 1.0``, ``False == 0``."""
    equal: list[Scalar] = []
    for value in values:
        twins: list[Scalar] = [value]
        if isinstance(value, bool):
            twins.append(int(value))
        elif isinstance(value, (int, float)) and value in (0, 1):
            twins.append(bool(value))
        for twin in twins:
            if not any(type(twin) is type(seen) and twin == seen for seen in equal):
                equal.append(twin)
    return equal


def _in(key: str, values: list[Scalar], op: str) -> Where:
    """``$in`` / ``$nin`` (``$eq`` / ``$ne`` for one value): Chroma wants one type per list, so values are grouped."""
    groups: dict[type, list[Scalar]] = {}
    for value in values:
        groups.setdefault(type(value), []).append(value)
    single = "$eq" if op == "$in" else "$ne"
    parts: list[Where] = [
        {key: {single: group[0]}} if len(group) == 1 else {key: {op: group}} for group in groups.values()
    ]
    return _join("$or" if op == "$in" else "$and", parts)


def _check_value(field: str, op: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"filter {field} {op} {value!r}: the value is not a finite number")
    if op in ("<", "<=", ">", ">=") and (isinstance(value, (str, bool)) or not isinstance(value, (int, float))):
        raise FilterError(
            f"filter {field} {op} {value!r}: Chroma orders numbers only, so operator {op!r} on field "
            f"{field!r} with a {type(value).__name__} value cannot run on a Chroma store"
        )


__all__ = ["FALSE", "KEYS", "NUMBERS", "PREFIX", "ROW", "TOP_LEVEL", "TRUE", "Where", "chroma_key", "to_chroma_where"]
