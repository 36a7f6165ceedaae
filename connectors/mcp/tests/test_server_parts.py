"""The server's small parts that need no process: document URIs and the text pieced together from chunks."""

from __future__ import annotations

import pytest
from ragkit_mcp.server import document_uri, parse_document_uri, stitch

from ragkit.errors import NotFoundError
from ragkit.schema import Chunk


@pytest.mark.parametrize("source", ["a.md", "hr/leave policy.md", "100%/x?y#z.txt", "Zürich.pdf"])
def test_a_document_uri_names_one_source_and_reads_back(source):
    uri = document_uri("handbook", source)
    assert uri.startswith("ragkit://collections/handbook/documents/")
    assert "/" not in uri.removeprefix("ragkit://collections/handbook/documents/")
    assert parse_document_uri(uri) == ("handbook", source)


@pytest.mark.parametrize(
    "uri",
    ["ragkit://collections/handbook", "file:///etc/passwd", "ragkit://collections/a/b/documents/x", "ragkit://x/y"],
)
def test_other_uris_are_not_found(uri):
    with pytest.raises(NotFoundError, match="ragkit://collections/"):
        parse_document_uri(uri)


def _chunk(text: str, document: str, start: int) -> Chunk:
    piece = document[start : start + len(text)]
    assert piece == text
    return Chunk(id=f"c{start}", document_id="d", source="s.md", text=text, start=start, end=start + len(text))


def test_overlapping_chunks_give_the_document_text_once():
    document = "The quick brown fox jumps over the lazy dog."
    chunks = [_chunk(document[20:], document, 20), _chunk(document[:25], document, 0)]  # out of order, overlapping
    assert stitch(chunks) == document


def test_a_gap_between_chunks_is_a_line_break():
    document = "First part. (dropped) Second part."
    chunks = [_chunk("First part.", document, 0), _chunk("Second part.", document, 22)]
    assert stitch(chunks) == "First part.\nSecond part."
