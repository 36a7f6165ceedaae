"""The rules the FAKE Pinecone server applies: request validation, metadata filters, scores.

This module is half of :mod:`ragkit_pinecone.testing` (a **fake**: no
Pinecone server can run here). It holds what the service does to a request's
content, kept apart from the HTTP plumbing so each can be read on its own:

- limits the service documents: vector ids of 1-512 ASCII characters without
  NUL, at most 1,000 vectors (and 2 MB) per upsert, 40 KB of metadata per
  vector, metadata values that are strings, numbers, booleans or lists of
  strings, ``topK`` of 1-10,000 and at most 1,000 with metadata or values;
- the metadata filter language (``$eq $ne $gt $gte $lt $lte $in $nin
  $exists $and $or``), with the service's semantics: numbers are compared
  as numbers (``3 == 3.0``) and only numbers order; a boolean is not a
  number; on a list-of-strings field ``$eq``/``$in`` match when any element
  matches and ``$ne``/``$nin`` when none does; a record that lacks a field
  fails ``$eq``, ``$in`` and the orderings and passes ``$ne``, ``$nin`` and
  ``$exists: false`` (the service's documented reading of "not equal");
- scores: cosine similarity, dot product, or squared Euclidean distance
  (smaller is nearer) by the index's metric.

An invalid request raises :class:`FakeRequestError` with the HTTP status and
the message the service would send.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_ID_LENGTH = 512
MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_TOP_K = 10_000
MAX_TOP_K_WITH_DATA = 1000
MAX_FETCH_IDS = 1000
MAX_DELETE_IDS = 1000
MAX_LIST_LIMIT = 100
MAX_DIMENSION = 20_000
METRICS = ("cosine", "dotproduct", "euclidean")

_ORDERINGS = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}
_FIELD_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$exists", *_ORDERINGS}


class FakeRequestError(Exception):
    """A request the service refuses: ``status`` and the ``message`` its error body carries."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad(message: str) -> FakeRequestError:
    """A 400 Bad Request, Pinecone's answer to an invalid argument."""
    return FakeRequestError(400, message)


def check_id(value: Any, what: str = "Vector ID") -> str:
    """A valid vector id, or a 400."""
    if not isinstance(value, str) or not value:
        raise bad(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise bad(f"{what} must be {MAX_ID_LENGTH} characters or less, got {len(value)}")
    if not value.isascii() or "\x00" in value:
        raise bad(f"{what} must be ASCII and must not contain NUL: {value[:64]!r}")
    return value


def check_values(values: Any, dimension: int, metric: str, what: str = "Vector") -> np.ndarray:
    """A dense vector of the index's dimension, or a 400."""
    if not isinstance(values, list) or not all(_is_number(v) for v in values):
        raise bad(f"{what} values must be a list of numbers")
    if len(values) != dimension:
        raise bad(f"{what} dimension {len(values)} does not match the dimension of the index {dimension}")
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise bad(f"{what} values must be finite numbers")
    if metric == "cosine" and not np.any(array):
        raise bad("Dense vectors must contain at least one non-zero value")
    return array


def check_metadata(metadata: Any, vector_id: str) -> dict[str, Any]:
    """Valid metadata (flat; strings, numbers, booleans, lists of strings; at most 40 KB), or a 400."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise bad(f"Metadata of vector {vector_id!r} must be an object")
    for key, value in metadata.items():
        if not key or key.startswith("$"):
            raise bad(
                f"Metadata key {key!r} of vector {vector_id!r} is invalid: keys must not be empty or start with '$'"
            )
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise bad(f"Metadata value for key {key!r} must be a string, number, boolean or list of strings")
        elif not (isinstance(value, (str, bool)) or _is_number(value)):
            raise bad(
                f"Metadata value for key {key!r} must be a string, number, boolean or list of strings, "
                f"got {json.dumps(value)[:40]}"
            )
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise bad(f"Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector")
    return dict(metadata)


def check_top_k(body: Mapping[str, Any]) -> int:
    """The request's ``topK`` within the service's bounds, or a 400."""
    top_k = body.get("topK")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise bad(f"topK must be an integer between 1 and {MAX_TOP_K}, got {top_k!r}")
    if (body.get("includeMetadata") or body.get("includeValues")) and top_k > MAX_TOP_K_WITH_DATA:
        raise bad(f"topK must be at most {MAX_TOP_K_WITH_DATA} when includeMetadata or includeValues is true")
    return top_k


def scores(metric: str, matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Each row's score against ``query`` by ``metric`` (bigger is nearer, but for ``euclidean``)."""
    if metric == "cosine":
        norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
        return np.asarray((matrix @ query) / np.where(norms == 0, 1.0, norms))
    if metric == "dotproduct":
        return np.asarray(matrix @ query)
    return np.asarray(np.sum((matrix - query) ** 2, axis=1))


# -- the metadata filter language ------------------------------------------------------------


def check_filter(flt: Any) -> dict[str, Any]:
    """Validate a filter the way the service does (raising a 400), returning it unchanged."""
    if not isinstance(flt, dict) or not flt:
        raise bad("Filter must be a non-empty object")
    for key, value in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise bad(f"{key} must be a non-empty array of filters")
            for item in value:
                check_filter(item)
        elif key.startswith("$"):
            raise bad(f"{key} is not a valid operator")
        elif isinstance(value, dict):
            if not value:
                raise bad(f"Filter on field {key!r} must name an operator")
            for op, operand in value.items():
                _check_operand(key, op, operand)
        else:
            _check_operand(key, "$eq", value)
    return flt


def _check_operand(field: str, op: str, operand: Any) -> None:
    if op not in _FIELD_OPERATORS:
        raise bad(f"{op} is not a valid operator")
    if op in ("$eq", "$ne"):
        if not (isinstance(operand, (str, bool)) or _is_number(operand)):
            raise bad(f"{op} on field {field!r} takes a string, number or boolean")
    elif op in _ORDERINGS:
        if not _is_number(operand):
            raise bad(f"{op} on field {field!r} takes a number, got {json.dumps(operand)[:40]}")
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list) or not all(isinstance(v, (str, bool)) or _is_number(v) for v in operand):
            raise bad(f"{op} on field {field!r} takes an array of strings, numbers or booleans")
    elif not isinstance(operand, bool):
        raise bad(f"$exists on field {field!r} takes true or false")


def matches(flt: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """Whether a record with ``metadata`` passes a (validated) filter."""
    for key, value in flt.items():
        if key == "$and":
            if not all(matches(item, metadata) for item in value):
                return False
        elif key == "$or":
            if not any(matches(item, metadata) for item in value):
                return False
        else:
            conditions = value if isinstance(value, dict) else {"$eq": value}
            if not all(_holds(op, operand, key, metadata) for op, operand in conditions.items()):
                return False
    return True


def _holds(op: str, operand: Any, field: str, metadata: Mapping[str, Any]) -> bool:
    present = field in metadata
    if op == "$exists":
        return present is operand
    if not present:
        return op in ("$ne", "$nin")
    actual = metadata[field]
    elements = actual if isinstance(actual, list) else [actual]
    if op == "$eq":
        return any(_equal(element, operand) for element in elements)
    if op == "$ne":
        return not any(_equal(element, operand) for element in elements)
    if op == "$in":
        return any(_equal(element, option) for element in elements for option in operand)
    if op == "$nin":
        return not any(_equal(element, option) for element in elements for option in operand)
    if isinstance(actual, list) or not _is_number(actual):
        return False
    return bool(_ORDERINGS[op](float(actual), float(operand)))


def _equal(actual: Any, expected: Any) -> bool:
    """Equality by JSON type: numbers by value, a boolean only equals a boolean."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual is expected
    if _is_number(actual) and _is_number(expected):
        return float(actual) == float(expected)
    return isinstance(actual, str) and isinstance(expected, str) and actual == expected


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
