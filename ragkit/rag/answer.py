"""What a RAG pipeline returns: the :class:`Answer`, its :class:`Citation` list, and stream events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ragkit.generation.base import FinishReason, Usage
from ragkit.query.state import Query, StageTrace
from ragkit.schema import Hit, chunk_location, hit_dicts


@dataclass(slots=True)
class Citation:
    """One numbered source the answer cites, pointing at the exact chunk and span.

    ``number`` is the block number as it appears in the answer (``[2]``).
    ``start``/``end`` are character offsets of the chunk in its document's
    text; ``uri``, ``page``, ``section``, ``row`` and ``title`` come from the
    chunk's metadata (``None`` when it has none), spelled as a hit spells them
    (:func:`ragkit.schema.chunk_location`). ``positions`` are the character
    offsets in the answer where the marker appears. ``inferred`` is true when
    the model wrote no marker and the pipeline attributed the answer to this
    source by word overlap.
    """

    number: int
    chunk_id: str
    document_id: str
    source: str
    start: int
    end: int
    score: float
    uri: str | None = None
    page: int | None = None
    section: str | None = None
    row: int | None = None
    title: str | None = None
    quote: str = ""
    positions: list[int] = field(default_factory=list)
    inferred: bool = False

    @classmethod
    def from_hit(cls, number: int, hit: Hit, quote_chars: int = 240) -> Citation:
        """The citation of context block ``number``, built from the hit it shows."""
        chunk = hit.chunk
        where = chunk_location(chunk)
        return cls(
            number=number,
            chunk_id=chunk.id,
            document_id=chunk.document_id,
            source=where["source"],
            start=where["start"],
            end=where["end"],
            score=float(hit.score),
            uri=where["uri"],
            page=where["page"],
            section=where["section"],
            row=where["row"],
            title=where["title"],
            quote=chunk.text[:quote_chars],
        )

    @property
    def location(self) -> str:
        """``file › section, page N, row N [chars a-b]`` for humans."""
        where = self.source
        if self.section:
            where += f" › {self.section}"
        if self.page is not None:
            where += f", page {self.page}"
        if self.row is not None:
            where += f", row {self.row}"
        return f"{where} [chars {self.start}-{self.end}]"

    def to_dict(self) -> dict[str, Any]:
        """The citation's JSON shape, the same in Python, the CLI, REST and reports.

        ``number``, ``chunk_id``, ``document_id``, ``score``, the location
        (:data:`ragkit.schema.LOCATION_FIELDS`, spelled as in a hit), ``quote``,
        ``positions`` and ``inferred``.
        """
        return {
            "number": self.number,
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "score": self.score,
            "source": self.source,
            "uri": self.uri,
            "start": self.start,
            "end": self.end,
            "page": self.page,
            "section": self.section,
            "row": self.row,
            "title": self.title,
            "quote": self.quote,
            "positions": list(self.positions),
            "inferred": self.inferred,
        }


@dataclass(slots=True)
class Answer:
    """A generated answer with its citations, the hits it was built from, usage and timings.

    ``hits`` are the context blocks in order: block ``[n]`` is ``hits[n-1]``.
    ``dropped_citations`` are numbers the model cited that match no block
    (removed from ``citations``, reported here). ``grounded`` is true when
    the answer cites a source or one was inferred for it, so never with an
    empty ``citations`` list. With no ``hits`` no retrieved chunk cleared the
    pipeline's relevance threshold: the text then says the documents do not
    answer the question and no model ran.
    ``timings`` holds seconds per stage (``retrieve``, ``assemble``,
    ``generate``, ``first_token``, ``total``).
    """

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    dropped_citations: list[int] = field(default_factory=list)
    grounded: bool = False
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    model: str = ""
    pipeline: str = ""
    finish_reason: FinishReason = "stop"
    skipped_hits: int = 0
    """Retrieved hits left out of the context because the token budget was spent."""
    trace: list[StageTrace] = field(default_factory=list)
    """What each stage did: the query stages' outputs, timings and model calls, then ``generate``."""
    queries: list[Query] = field(default_factory=list)
    """The queries retrieval used (the question, and any a transform wrote)."""
    conversation_id: str | None = None
    """The stored conversation this answer was added to, when the ask named one."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "question": self.question,
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "hits": hit_dicts(self.hits),
            "dropped_citations": list(self.dropped_citations),
            "grounded": self.grounded,
            "usage": self.usage.to_dict(),
            "timings": dict(self.timings),
            "model": self.model,
            "pipeline": self.pipeline,
            "finish_reason": self.finish_reason,
            "skipped_hits": self.skipped_hits,
            "conversation_id": self.conversation_id,
            "queries": [q.to_dict() for q in self.queries],
            "trace": [t.to_dict() for t in self.trace],
        }


EventType = Literal["retrieval", "token", "citation", "answer"]


@dataclass(slots=True)
class AskEvent:
    """One event of a streamed answer.

    In order: one ``retrieval`` event (``hits``: the context blocks, as soon
    as they are known; ``trace``: what each query stage did), ``token`` events (``text``), a ``citation`` event
    each time the stream completes a marker that names a real block (the
    first time it is cited), and a final ``answer`` event carrying the whole
    :class:`Answer`, citations included.
    """

    type: EventType
    text: str = ""
    hits: list[Hit] | None = None
    citation: Citation | None = None
    answer: Answer | None = None
    trace: list[StageTrace] | None = None
    """With ``retrieval``: what each query stage did before generation."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with only the fields this event type carries."""
        if self.type == "token":
            return {"type": "token", "text": self.text}
        if self.type == "retrieval":
            return {
                "type": "retrieval",
                "hits": hit_dicts(self.hits or []),
                "trace": [t.to_dict() for t in self.trace or []],
            }
        if self.type == "citation":
            assert self.citation is not None
            return {"type": "citation", "citation": self.citation.to_dict()}
        assert self.answer is not None
        return {"type": "answer", "answer": self.answer.to_dict()}
