"""Translate ragkit filters into Pinecone metadata filters.

``page >= 2 and source != "a.md"`` becomes::

    {"$and": [{"page": {"$gte": 2}},
              {"$and": [{"source": {"$exists": true}}, {"source": {"$ne": "a.md"}}]}]}

Pinecone has no ``$not``, so a ``not`` is pushed down to the comparisons
(De Morgan: ``not (a and b)`` is ``not a or not b``), each negated
comparison becoming its opposite operator. ragkit's rule that a comparison
on a field a chunk lacks is false, and its negation true, is spelled out
rather than left to the service: ``$ne`` and ``$nin`` (which Pinecone lets
match a record without the field) come with ``$exists: true``, and a
negated comparison is ``{"$or": [{field: {"$exists": false}}, {field:
opposite}]}``, so the result does not depend on how the service reads a
missing field.

What Pinecone cannot express is refused with a :class:`~ragkit.errors.FilterError`,
never dropped: a prefix (``field.startswith("x")``), and an ordering
(``<``, ``<=``, ``>``, ``>=``) against a string or a boolean (Pinecone orders
only numbers). Two differences remain, written in ``docs/pinecone.md``: a
boolean never equals a number in Pinecone (``flag == 1`` does not match
``True``), and ``not (page < 3)`` does not match a chunk whose ``page`` is
a string (ragkit's own evaluation would).
"""

from __future__ import annotations

import math
from typing import Any

from ragkit.errors import FilterError
from ragkit.filters import And, Comparison, Filter, Not, Operator, Or, Scalar

_OPPOSITE: dict[Operator, Operator] = {
    "==": "!=",
    "!=": "==",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
    "in": "not in",
    "not in": "in",
}
_PINECONE_OPS = {"==": "$eq", "!=": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def to_pinecone_filter(flt: Filter, negated: bool = False) -> dict[str, Any]:
    """The Pinecone filter selecting the records ``flt`` matches (or, ``negated``, those it does not)."""
    if isinstance(flt, Not):
        return to_pinecone_filter(flt.item, not negated)
    if isinstance(flt, (And, Or)):
        items = [to_pinecone_filter(item, negated) for item in flt.items]
        if len(items) == 1:
            return items[0]
        conjunction = isinstance(flt, And) != negated
        return {"$and" if conjunction else "$or": items}
    return _comparison(flt, negated)


def _comparison(flt: Comparison, negated: bool) -> dict[str, Any]:
    field = flt.field
    if flt.op == "prefix":
        raise FilterError(
            f"Pinecone has no prefix operator: {field}.startswith({flt.value!r}) cannot be translated; "
            "store the part you filter on as its own metadata field and compare with =="
        )
    op: Operator = _OPPOSITE[flt.op] if negated else flt.op
    condition = _condition(field, op, flt.value)
    if negated:
        return {"$or": [{field: {"$exists": False}}, condition]}
    return _and_exists(field, condition)


def _and_exists(field: str, condition: dict[str, Any]) -> dict[str, Any]:
    """``condition``, and for ``$ne`` / ``$nin`` (or a combination) that ``field`` exists.

    ``$eq``, ``$in`` and the orderings never match a record without the
    field; ``$ne`` and ``$nin`` do in Pinecone, so they get an explicit
    ``$exists: true`` beside them (one operator per object, as the client's
    own filter builder writes them).
    """
    ops = condition.get(field)
    if len(condition) == 1 and isinstance(ops, dict) and set(ops) <= {"$eq", "$in", "$gt", "$gte", "$lt", "$lte"}:
        return condition
    return {"$and": [{field: {"$exists": True}}, condition]}


def _condition(field: str, op: Operator, value: Scalar | tuple[Scalar, ...]) -> dict[str, Any]:
    """``field op value`` for a record that has the field."""
    if op in ("in", "not in"):
        values = value if isinstance(value, tuple) else (value,)
        return _membership(field, op == "in", values)
    single = _literal(field, value)  # type: ignore[arg-type]
    if op in ("<", "<=", ">", ">=") and (isinstance(single, (str, bool))):
        raise FilterError(
            f"Pinecone orders only numbers: {field} {op} {single!r} cannot be translated "
            "(compare strings and true/false values with == or in)"
        )
    return {field: {_PINECONE_OPS[op]: single}}


def _membership(field: str, inside: bool, values: tuple[Scalar, ...]) -> dict[str, Any]:
    """``field in values`` (``inside``) or ``field not in values``; booleans as ``$eq`` / ``$ne`` terms."""
    literals = [_literal(field, v) for v in values]
    plain = [v for v in literals if not isinstance(v, bool)]
    flags = [v for v in literals if isinstance(v, bool)]
    if not literals:  # `in []` holds for nothing; `not in []` for every record that has the field
        return {field: {"$exists": False}} if inside else {field: {"$exists": True}}
    terms: list[dict[str, Any]] = []
    if plain:
        terms.append({field: {"$in" if inside else "$nin": plain}})
    terms.extend({field: {"$eq" if inside else "$ne": flag}} for flag in flags)
    if len(terms) == 1:
        return terms[0]
    return {"$or" if inside else "$and": terms}


def _literal(field: str, value: Scalar) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"filter value {value!r} for field {field!r} is not a finite number")
    if not isinstance(value, (str, int, float, bool)):
        raise FilterError(f"filter value {value!r} for field {field!r} must be a string, number or boolean")
    return value
