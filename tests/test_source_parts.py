"""Source records split into parts under a row limit (Milvus, Pinecone) and put back; torn writes are refused."""

from __future__ import annotations

import json

from ragkit.schema import SourceRecord
from ragkit.stores.source_parts import assemble_source_record, split_source_record

RECORD = SourceRecord(
    source="docs/handbook.pdf",
    content_hash="c0ffee",
    size=123_456,
    mtime=1_700_000_000.5,
    document_ids=[f"handbook.pdf#page-{n:04d}-ü" for n in range(500)],
    chunk_count=1_500,
)


def test_a_large_record_is_split_under_the_budget_and_read_back_whole() -> None:
    parts = split_source_record(RECORD, max_bytes=2_000)
    assert len(parts) > 5 and parts[0]["parts"] == len(parts)
    assert all(len(json.dumps(p["document_ids"], ensure_ascii=False).encode()) <= 2_000 for p in parts)
    assert len({p["commit"] for p in parts}) == 1
    assert all("content_hash" not in p for p in parts[1:])  # only the head carries the record's fields
    assert assemble_source_record(RECORD.source, dict(enumerate(parts))) == RECORD


def test_a_record_without_documents_or_with_one_huge_id_still_has_a_part() -> None:
    empty = SourceRecord("empty.txt", "e", document_ids=[])
    assert len(split_source_record(empty, 100)) == 1
    assert assemble_source_record("empty.txt", dict(enumerate(split_source_record(empty, 100)))) == empty
    huge = SourceRecord("huge.txt", "h", document_ids=["x" * 500, "y"])
    parts = split_source_record(huge, 100)
    assert [p["document_ids"] for p in parts] == [["x" * 500], ["y"]]


def test_a_missing_part_or_parts_of_two_writes_are_not_trusted() -> None:
    first = split_source_record(RECORD, max_bytes=2_000)
    second = split_source_record(RECORD, max_bytes=2_000)  # the same record written again: another commit
    missing = dict(enumerate(first))
    del missing[2]
    assert assemble_source_record(RECORD.source, missing) is None
    mixed = dict(enumerate(first)) | {1: second[1]}
    assert assemble_source_record(RECORD.source, mixed) is None
    assert assemble_source_record(RECORD.source, {1: first[1]}) is None  # no head: how many parts is unknown
