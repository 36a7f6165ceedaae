"""The data model: Document, Chunk, Hit, SourceRecord.

Plain dataclasses (cheap to create by the million) with ``to_dict`` /
``from_dict`` for JSON. Ids are stable: see :mod:`ragkit.hashing`.
"""

from __future__ import annotations

from collections.abc import Iterable
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


LOCATION_FIELDS = ("source", "uri", "start", "end", "page", "section", "row", "title")
"""Where a hit or a citation points, the same keys in both (see :func:`chunk_location`)."""


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def chunk_location(chunk: Chunk) -> dict[str, Any]:
    """Where ``chunk`` lies, as hits and citations both show it.

    ``source`` (the source id), ``uri`` (metadata ``uri``), ``start``/``end``
    (character offsets in the document's text), ``page``, ``section``, ``row``
    (the row or item of a CSV, JSON or JSONL file) and ``title``; a key the
    chunk's metadata does not have (or holds with another type) is ``None``.
    """
    meta = chunk.metadata
    return {
        "source": chunk.source,
        "uri": _text_or_none(meta.get("uri")),
        "start": chunk.start,
        "end": chunk.end,
        "page": _number_or_none(meta.get("page")),
        "section": _text_or_none(meta.get("section")),
        "row": _number_or_none(meta.get("row")),
        "title": _text_or_none(meta.get("title")),
    }


@dataclass(slots=True)
class Hit:
    """A retrieved chunk with its score and the stage that produced the score.

    ``score`` is on the scale of the last stage that scored the hit (cosine
    for dense retrieval, BM25 for lexical, a fusion or reranker score after
    those stages). ``scores`` and ``ranks`` keep what every earlier stage gave
    it, by stage label (``{"dense": 0.71, "lexical": 12.3, "rrf": 0.032}``,
    ranks from 1), so a result can always explain itself.
    """

    chunk: Chunk
    score: float
    origin: HitOrigin = "dense"
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)

    def to_dict(self, rank: int = 1) -> dict[str, Any]:
        """The hit's JSON shape, the same in Python, the CLI, REST and reports; ``rank``: its place in its list.

        ``rank``, ``score``, ``origin``, ``chunk_id``, ``document_id``, the
        location (:data:`LOCATION_FIELDS`, from :func:`chunk_location`),
        ``text``, ``metadata``, ``scores`` and ``ranks``.
        """
        chunk = self.chunk
        return {
            "rank": rank,
            "score": float(self.score),
            "origin": self.origin,
            "chunk_id": chunk.id,
            "document_id": chunk.document_id,
            **chunk_location(chunk),
            "text": chunk.text,
            "metadata": dict(chunk.metadata),
            "scores": dict(self.scores),
            "ranks": dict(self.ranks),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        """Inverse of :meth:`to_dict`; also reads the older shape that nested the chunk (``{"chunk": {...}}``)."""
        if "chunk" in data:
            chunk = Chunk.from_dict(data["chunk"])
        else:
            text = data["text"]
            chunk = Chunk(
                id=data["chunk_id"],
                document_id=data["document_id"],
                source=data["source"],
                text=text,
                start=data["start"],
                end=data["end"],
                metadata=dict(data.get("metadata") or {}),
                content_hash=content_hash(text),
            )
        return cls(
            chunk=chunk,
            score=data["score"],
            origin=data["origin"],
            scores=dict(data.get("scores") or {}),
            ranks=dict(data.get("ranks") or {}),
        )

    def rescored(self, score: float, label: str, origin: HitOrigin, rank: int | None = None) -> Hit:
        """A copy scored ``score`` by stage ``label``; the earlier stages' scores and ranks are kept."""
        scores = dict(self.scores)
        scores[label] = score
        ranks = dict(self.ranks)
        if rank is not None:
            ranks[label] = rank
        return Hit(self.chunk, score, origin, scores, ranks)


def hit_dicts(hits: Iterable[Hit]) -> list[dict[str, Any]]:
    """The JSON shape of each hit of a list, best first, ranked from 1 (see :meth:`Hit.to_dict`)."""
    return [hit.to_dict(rank) for rank, hit in enumerate(hits, 1)]


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
