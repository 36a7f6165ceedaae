"""What an evaluation scores: questions with their references, and one pipeline's result for each.

An :class:`EvalQuestion` is one line of a suite's questions file: the
question, its reference answers and, optionally, where the answer lives
(gold spans or gold documents). An :class:`EvalSample` is that question as
one pipeline handled it: the hits it retrieved, the answer it wrote, its
token usage and timings, and each metric's :class:`MetricResult`.

Gold sources are resolved to the same form as :attr:`ragkit.schema.Chunk.source`
(the file's POSIX path relative to the documents folder the suite ingests,
``Super_Bowl_50.md``; see :func:`ragkit.evaluation.questions.source_id`), so relevance is a plain
comparison: a chunk is relevant when it lies in a gold document, or when its
character span ``[start, end)`` overlaps a gold span ``[start, end)`` of the
same file (and, when the gold span names a ``page``, the same page).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragkit.schema import Hit


@dataclass(frozen=True, slots=True)
class GoldSpan:
    """A character span ``[start, end)`` of a source file that answers the question.

    For a paged document (a PDF is loaded one page per document, offsets
    relative to the page) ``page`` says which page the span is on, and only
    chunks of that page can overlap it.
    """

    source: str
    start: int
    end: int
    page: int | None = None

    def overlaps(self, source: str, start: int, end: int, page: Any = None) -> bool:
        """Whether ``[start, end)`` of ``source`` (on ``page``) shares at least one character with this span."""
        return (
            source == self.source and start < self.end and self.start < end and (self.page is None or page == self.page)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {"source": self.source, "start": self.start, "end": self.end}
        if self.page is not None:
            data["page"] = self.page
        return data


@dataclass(slots=True)
class EvalQuestion:
    """One question of a suite with what a good result looks like."""

    id: str
    question: str
    answers: list[str] = field(default_factory=list)
    """Reference answers (any one of them is right)."""
    gold_spans: list[GoldSpan] = field(default_factory=list)
    gold_documents: list[str] = field(default_factory=list)
    """Sources (resolved paths) whose every chunk counts as relevant."""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_gold(self) -> bool:
        """Whether the question says where its answer is (spans or documents)."""
        return bool(self.gold_spans or self.gold_documents)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "gold_spans": [g.to_dict() for g in self.gold_spans],
            "gold_documents": list(self.gold_documents),
            "metadata": dict(self.metadata),
        }


@dataclass(slots=True)
class MetricResult:
    """One metric's score for one sample.

    ``value`` is ``None`` when the metric could not score the sample; ``error``
    then says why. A value is never NaN: the runner turns a NaN or infinite
    value into ``None`` with an error. ``details`` holds whatever explains the
    value (the matched answer, the rank of the first relevant hit ...).
    """

    value: float | None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, reason: str) -> MetricResult:
        """A result with no value and the reason why."""
        return cls(None, reason)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {"value": self.value}
        if self.error is not None:
            data["error"] = self.error
        if self.details:
            data["details"] = self.details
        return data


@dataclass(slots=True)
class Relevance:
    """How a ranked hit list meets the gold: per rank, is the chunk relevant, which gold items it covers first.

    ``relevant[i]``: hit ``i`` overlaps some gold span or lies in a gold
    document. ``first_cover[i]``: the index of the gold item that hit ``i``
    covers for the first time in the ranking (``None`` if it covers nothing
    new). ``gold_count``: the number of gold items (spans plus documents).
    """

    relevant: list[bool]
    first_cover: list[int | None]
    gold_count: int


def chunk_span(hit: Hit) -> tuple[int, int]:
    """The hit's character span in its whole source file.

    Streamed text parts carry ``part_offset`` (their offset in the file);
    chunk offsets are relative to the part.
    """
    chunk = hit.chunk
    offset = chunk.metadata.get("part_offset", 0)
    offset = offset if isinstance(offset, int) else 0
    return chunk.start + offset, chunk.end + offset


def relevance(question: EvalQuestion, hits: list[Hit]) -> Relevance:
    """Match ``hits`` (best first) against the question's gold spans and documents."""
    spans = question.gold_spans
    documents = question.gold_documents
    sources = {span.source for span in spans}
    sources.update(documents)
    covered: set[int] = set()
    relevant: list[bool] = []
    first_cover: list[int | None] = []
    for hit in hits:
        chunk = hit.chunk
        source = chunk.source
        new: int | None = None
        found = False
        if source in sources:  # else: a chunk of another file, the common case
            start, end = chunk_span(hit)
            page = chunk.metadata.get("page")
            for i, span in enumerate(spans):
                if span.overlaps(source, start, end, page):
                    found = True
                    if new is None and i not in covered:
                        new = i
            for i, document in enumerate(documents, len(spans)):
                if document == source:
                    found = True
                    if new is None and i not in covered:
                        new = i
        if new is not None:
            covered.add(new)
        relevant.append(found)
        first_cover.append(new)
    return Relevance(relevant, first_cover, len(spans) + len(documents))


@dataclass(slots=True)
class EvalSample:
    """One question as one pipeline handled it, and its metric results.

    ``hits`` are the retrieved chunks, best first (for a RAG pipeline: the
    context blocks the answer was built from). ``answer`` is ``None`` for a
    retrieval-only pipeline. ``error`` is set when the pipeline itself failed
    on this question; its metrics then record that failure.
    """

    question: EvalQuestion
    pipeline: str
    hits: list[Hit] = field(default_factory=list)
    answer: str | None = None
    citations: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    latency: float = 0.0
    """Seconds spent on this question (a batch's time shared evenly in retrieval-only runs)."""
    error: str | None = None
    answer_cached: bool = False
    """The answer was replayed from the answer cache (its latency, timings and usage are the original run's)."""
    metrics: dict[str, MetricResult] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    """Scratch space where metrics share work on this sample (e.g. the rank of the first answer hit)."""
    _relevance: Relevance | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The question text."""
        return self.question.question

    @property
    def references(self) -> list[str]:
        """The reference answers."""
        return self.question.answers

    @property
    def contexts(self) -> list[str]:
        """The retrieved chunks' texts, best first."""
        return [hit.chunk.text for hit in self.hits]

    def relevance(self) -> Relevance:
        """The hits matched against the gold (computed once, shared by the retrieval metrics)."""
        if self._relevance is None:
            self._relevance = relevance(self.question, self.hits)
        return self._relevance
