"""How ragkit's chunks and source records become Pinecone records, and back.

A chunk is one record in the store's namespace. Its metadata holds:

- ``_ragkit_chunk``: the whole chunk as JSON, which is what is read back, so
  text, offsets and metadata of any JSON shape (nested objects, integers
  beyond 2^53, lists of numbers) come back exactly as they were written;
- ``source`` and ``document_id``;
- each metadata value Pinecone can filter as ragkit does: strings, booleans
  and finite numbers. Lists, objects and ``null`` stay only in the JSON, so
  a filter on such a field treats the chunk as lacking it. (Pinecone would
  filter a list of strings by its elements, where ragkit compares the whole
  value.) Keys Pinecone refuses (empty, or starting with ``$``) and the key
  ``_ragkit_chunk`` itself are kept in the JSON only too.

Pinecone allows 40 KB of metadata per record, so a chunk whose JSON and
filterable fields exceed it is refused with an :class:`~ragkit.errors.InputError`
that names it (split documents into smaller chunks). Ids Pinecone refuses
(non-ASCII, NUL, over 512 characters) are stored under ``ragkit-sha256-`` and
the id's hash; the real id is in the JSON.

Source records and the names of metadata fields live in a second namespace,
the *book* (``<namespace>:ragkit-book``), as records with a placeholder
vector. A record with thousands of document ids is split into parts of at
most 30 KB each, written tagged with one commit id so a torn write is seen.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ragkit.errors import InputError
from ragkit.schema import Chunk, SourceRecord
from ragkit.stores.source_parts import assemble_source_record, split_source_record

CHUNK_KEY = "_ragkit_chunk"
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_LENGTH = 512
PART_BYTES = 30_000
_HASHED_ID = "ragkit-sha256-"
_EXACT_INT = 2**53
T = TypeVar("T")


def record_id(chunk_id: str) -> str:
    """The Pinecone id for a chunk id: itself when Pinecone accepts it, else a hash of it."""
    if chunk_id and len(chunk_id) <= MAX_ID_LENGTH and chunk_id.isascii() and "\x00" not in chunk_id:
        return chunk_id
    return _HASHED_ID + hashlib.sha256(chunk_id.encode("utf-8", "surrogatepass")).hexdigest()


def filterable(key: str, value: Any) -> bool:
    """Whether a metadata entry is also written as a Pinecone metadata field."""
    if not key or key.startswith("$") or key == CHUNK_KEY:
        return False
    if isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return -_EXACT_INT <= value <= _EXACT_INT
    return isinstance(value, float) and math.isfinite(value)


def chunk_metadata(chunk: Chunk) -> dict[str, Any]:
    """The Pinecone metadata of a chunk, or an :class:`InputError` when it does not fit."""
    metadata = {key: value for key, value in chunk.metadata.items() if filterable(key, value)}
    metadata["source"] = chunk.source
    metadata["document_id"] = chunk.document_id
    try:
        metadata[CHUNK_KEY] = json.dumps(chunk.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"chunk {chunk.id!r} of {chunk.source!r}: its metadata is not JSON ({exc})") from None
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_METADATA_BYTES:
        raise InputError(
            f"chunk {chunk.id!r} of {chunk.source!r} needs {size:,} bytes of Pinecone metadata (its text and "
            f"metadata); Pinecone allows {MAX_METADATA_BYTES:,} per record: split documents into smaller chunks"
        )
    return metadata


def metadata_chunk(metadata: Mapping[str, Any]) -> Chunk | None:
    """The chunk a record's metadata holds (``None`` for a record ragkit did not write)."""
    data = metadata.get(CHUNK_KEY)
    if not isinstance(data, str):
        return None
    return Chunk.from_dict(json.loads(data))


def batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def sized_batches(records: Sequence[dict[str, Any]], count: int, max_bytes: int) -> Iterator[list[dict[str, Any]]]:
    """Upsert batches of at most ``count`` records and about ``max_bytes`` of JSON each."""
    batch: list[dict[str, Any]] = []
    used = 0
    for record in records:
        size = len(json.dumps(record, ensure_ascii=False).encode()) + 2
        if batch and (len(batch) >= count or used + size > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(record)
        used += size
    if batch:
        yield batch


# -- the book: source records and field names ---------------------------------------------------


def source_key(source: str) -> str:
    """The id stem of a source's record parts."""
    return "source:" + hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def source_parts(record: SourceRecord) -> list[tuple[str, dict[str, Any]]]:
    """``(id, metadata)`` of each part of a source record, the head (part 0) first."""
    return [
        (
            f"{source_key(record.source)}:{number}",
            {"kind": "source", "source": record.source, "part": number, "data": json.dumps(data)},
        )
        for number, data in enumerate(split_source_record(record, PART_BYTES))
    ]


def assemble_sources(metadata: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, SourceRecord], list[str]]:
    """Source records from the book's source parts, and the sources whose parts are torn or missing."""
    parts: dict[str, dict[int, dict[str, Any]]] = {}
    for entry in metadata.values():
        if entry.get("kind") == "source":
            parts.setdefault(str(entry["source"]), {})[int(entry["part"])] = json.loads(entry["data"])
    records: dict[str, SourceRecord] = {}
    torn: list[str] = []
    for source, by_number in parts.items():
        record = assemble_source_record(source, by_number)
        if record is None:
            torn.append(source)
        else:
            records[source] = record
    return records, torn


def field_id(name: str) -> str:
    """The book id recording that some chunk has a metadata field ``name``."""
    return "field:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:40]
