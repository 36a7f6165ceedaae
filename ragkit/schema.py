"""The data model: Document, Chunk, Hit, SourceRecord.

Plain dataclasses (cheap to create by the million) with ``to_dict`` /
``from_dict`` for JSON. Ids are stable: see :mod:`ragkit.hashing`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ragkit.hashing import chunk_id, content_hash

Metadata = dict[str, Any]
HitOrigin = Literal["dense", "lexical", "fused", "reranked"]


@dataclass(slots=True)
class Document:
    """A unit of source content, as a loader produced it.

    ``text`` holds the parsed text; ``path`` points at bytes not parsed yet
    (a loader may defer parsing). ``source`` is where it came from (a path
    relative to the ingest root, or a URI) and groups the documents of one
    file for incremental ingestion.
    """

    id: str
    source: str
    text: str | None = None
    path: str | None = None
    metadata: Metadata = field(default_factory=dict)
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.content_hash and self.text is not None:
            self.content_hash = content_hash(self.text)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Document:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(slots=True)
class Chunk:
    """A piece of a document that is embedded and retrieved on its own.

    ``start`` and ``end`` are character offsets into the document's text, so
    ``document.text[start:end] == chunk.text``. ``metadata`` holds the
    document's metadata plus the chunk's own (``page``, ``headings`` ...).
    """

    id: str
    document_id: str
    source: str
    text: str
    start: int
    end: int
    metadata: Metadata = field(default_factory=dict)
    content_hash: str = ""

    @classmethod
    def create(
        cls,
        document: Document,
        text: str,
        start: int,
        metadata: Metadata | None = None,
    ) -> Chunk:
        """Make a chunk of ``document`` with a stable id derived from its span and text."""
        text_hash = content_hash(text)
        end = start + len(text)
        merged = {**document.metadata, **(metadata or {})}
        return cls(
            id=chunk_id(document.id, start, end, text_hash),
            document_id=document.id,
            source=document.source,
            text=text,
            start=start,
            end=end,
            metadata=merged,
            content_hash=text_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass(slots=True)
class Hit:
    """A retrieved chunk with its score and the retriever that produced the score."""

    chunk: Chunk
    score: float
    origin: HitOrigin = "dense"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"chunk": self.chunk.to_dict(), "score": self.score, "origin": self.origin}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        """Inverse of :meth:`to_dict`."""
        return cls(chunk=Chunk.from_dict(data["chunk"]), score=data["score"], origin=data["origin"])


@dataclass(slots=True)
class SourceRecord:
    """What a store remembers of one ingested source (file or URI).

    ``content_hash`` is the hash of the source's bytes: when it is unchanged
    the source is skipped without being parsed. ``chunk_ids`` is transient:
    the ids the latest ingest produced, used to delete stale chunks when the
    record is committed; stores do not persist it.
    """

    source: str
    content_hash: str
    size: int = 0
    mtime: float = 0.0
    document_ids: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_ids: list[str] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (without the transient ``chunk_ids``)."""
        data = asdict(self)
        data.pop("chunk_ids")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)
