"""A source record split into parts that fit a store's row limit, and put back together.

Stores that keep their bookkeeping beside the vectors (Milvus's JSON field,
Pinecone's metadata) cannot hold a large source's document ids in one row.
:func:`split_source_record` cuts the record into parts whose id lists stay
under a byte budget, all tagged with one commit id; the first part carries
the record's other fields and the number of parts. :func:`assemble_source_record`
puts them back, and refuses a record whose parts are missing or come from
two different writes (a torn write: the source is then ingested again,
never half-trusted).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from ragkit.schema import SourceRecord


def split_source_record(record: SourceRecord, max_bytes: int) -> list[dict[str, Any]]:
    """The parts' data, in order: ``{"commit", "document_ids"}``, the first with the record's fields and ``parts``.

    Each part's ``document_ids`` stays under ``max_bytes`` as JSON (a single id
    longer than that still gets a part of its own); there is always at least
    one part.
    """
    commit = uuid.uuid4().hex
    groups: list[list[str]] = [[]]
    used = 0
    for document_id in record.document_ids:
        cost = len(json.dumps(document_id, ensure_ascii=False).encode("utf-8")) + 2
        if groups[-1] and used + cost > max_bytes:
            groups.append([])
            used = 0
        groups[-1].append(document_id)
        used += cost
    parts: list[dict[str, Any]] = []
    for number, ids in enumerate(groups):
        data: dict[str, Any] = {"commit": commit, "document_ids": ids}
        if number == 0:
            data.update(
                content_hash=record.content_hash,
                size=record.size,
                mtime=record.mtime,
                chunk_count=record.chunk_count,
                parts=len(groups),
            )
        parts.append(data)
    return parts


def assemble_source_record(source: str, parts: Mapping[int, Mapping[str, Any]]) -> SourceRecord | None:
    """The record of ``source`` from its parts by number, or ``None`` when one is missing or from another write."""
    head = parts.get(0)
    if head is None or "parts" not in head:
        return None
    pieces = [parts.get(number) for number in range(int(head["parts"]))]
    if any(piece is None or piece.get("commit") != head.get("commit") for piece in pieces):
        return None
    return SourceRecord(
        source=source,
        content_hash=head["content_hash"],
        size=int(head["size"]),
        mtime=float(head["mtime"]),
        document_ids=[str(i) for piece in pieces if piece is not None for i in piece["document_ids"]],
        chunk_count=int(head["chunk_count"]),
    )


__all__ = ["assemble_source_record", "split_source_record"]
