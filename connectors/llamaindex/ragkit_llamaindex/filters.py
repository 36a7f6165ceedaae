"""LlamaIndex ``MetadataFilters`` in ragkit's filter language (:mod:`ragkit.filters`).

=====================================  ==========================================
LlamaIndex                             ragkit
=====================================  ==========================================
``EQ`` ``NE`` ``GT`` ``GTE`` ``LT``    ``==`` ``!=`` ``>`` ``>=`` ``<`` ``<=``
``LTE``
``IN`` / ``NIN``                       ``in`` / ``not in`` (a list of values)
``AND`` / ``OR`` / ``NOT`` conditions  ``and`` / ``or`` / ``not (... and ...)``
nested ``MetadataFilters``             nested groups
=====================================  ==========================================

``TEXT_MATCH``, ``TEXT_MATCH_INSENSITIVE``, ``CONTAINS``, ``ANY``, ``ALL`` and
``IS_EMPTY`` have no counterpart (ragkit's filters compare scalar metadata;
they have a string *prefix* test but no substring or array tests) and are
refused with a :class:`~ragkit.errors.FilterError` rather than ignored. As
everywhere in ragkit, a comparison on a field a chunk lacks is false, ``NE``
and ``NIN`` included.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    ExactMatchFilter,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from ragkit.errors import FilterError
from ragkit.filters import Filter, parse_filter

_OPERATORS: dict[FilterOperator, str] = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}


def to_ragkit_filter(filters: MetadataFilters | None) -> Filter | None:
    """``filters`` as a ragkit filter tree; ``None`` (or no filters) gives ``None``.

    Raises :class:`FilterError` naming the key and operator ragkit cannot express.
    """
    if filters is None or not filters.filters:
        return None
    return parse_filter(_group(filters))


def _group(filters: MetadataFilters) -> dict[str, Any]:
    if not filters.filters:
        raise FilterError("LlamaIndex filters: an empty nested MetadataFilters group")
    items = [_group(f) if isinstance(f, MetadataFilters) else _one(f) for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return items[0] if len(items) == 1 else {"$and": items}
    if condition == FilterCondition.OR:
        return items[0] if len(items) == 1 else {"$or": items}
    if condition == FilterCondition.NOT:
        return {"$not": items[0] if len(items) == 1 else {"$and": items}}
    raise FilterError(f"LlamaIndex filters: condition {condition!r} is not supported (use and, or, not)")


def _one(item: MetadataFilter | ExactMatchFilter) -> dict[str, Any]:
    operator = getattr(item, "operator", FilterOperator.EQ)
    op = _OPERATORS.get(operator)
    if op is None:
        raise FilterError(
            f"LlamaIndex filter on {item.key!r}: operator {operator.name} ({operator.value!r}) has no ragkit "
            "counterpart (supported: EQ, NE, GT, GTE, LT, LTE, IN, NIN with AND, OR, NOT)"
        )
    value: Any = item.value
    if value is None:
        raise FilterError(f"LlamaIndex filter on {item.key!r}: a value of None cannot be compared")
    if op in ("$in", "$nin") and not isinstance(value, list):
        value = [value]
    return {item.key: {op: value}}
