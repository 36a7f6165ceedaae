"""How a ragkit chunk is laid out as a Chroma row, and read back.

A row holds the chunk's id, its vector, its text as Chroma's document, and
metadata: ``source``, ``document_id``, ``rk:start``, ``rk:end``, ``rk:hash``,
the whole chunk metadata as JSON (``rk:meta``, so nested values, lists and
nulls come back unchanged), a copy of each scalar metadata value as
``m:<key>`` (what filters read), and the lists :data:`~ragkit_chroma.where.KEYS`
and :data:`~ragkit_chroma.where.NUMBERS` that :mod:`ragkit_chroma.where` uses
to tell a missing key, or a value that is not a number, from the rest.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ragkit.errors import InputError
from ragkit.schema import Chunk
from ragkit_chroma.where import KEYS, NUMBERS, PREFIX, ROW


def _flat_value(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def _filter_value(value: Any) -> Any:
    """The copy of a metadata value that filters read: integers as floats (exact up to 2**53).

    Chroma compares an integer it holds against a fractional operand after
    truncating the operand (an int 1 matches ``$eq 1.5`` and ``$gte 1.5``), but
    compares floats it holds correctly against any operand.
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53:
        return float(value)
    return value


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    """The Chroma metadata of a chunk row (see the module's docstring)."""
    try:
        encoded = json.dumps(chunk.metadata, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the metadata of chunk {chunk.id[:80]!r} of {chunk.source[:200]!r}: {exc}") from None
    meta: dict[str, Any] = {
        ROW: 1,
        "source": chunk.source,
        "document_id": chunk.document_id,
        "rk:start": int(chunk.start),
        "rk:end": int(chunk.end),
        "rk:hash": chunk.content_hash,
        "rk:meta": encoded,
    }
    if chunk.metadata:
        meta[KEYS] = sorted(chunk.metadata)
    numbers = sorted(k for k, v in chunk.metadata.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    if numbers:
        meta[NUMBERS] = numbers
    for key, value in chunk.metadata.items():
        if _flat_value(value):
            meta[PREFIX + key] = _filter_value(value)
    return meta


def row_to_chunk(chunk_id: str, text: str | None, meta: dict[str, Any]) -> Chunk:
    """The chunk a Chroma row (id, document, metadata) holds."""
    return Chunk(
        id=chunk_id,
        document_id=str(meta["document_id"]),
        source=str(meta["source"]),
        text=text or "",
        start=int(meta["rk:start"]),
        end=int(meta["rk:end"]),
        metadata=json.loads(meta["rk:meta"]),
        content_hash=str(meta["rk:hash"]),
    )


__all__ = ["chunk_metadata", "row_to_chunk"]
