"""What flows through a query pipeline: the request, the state each stage extends, and the trace.

One :class:`QueryRequest` (question, history, filters, top_k, options)
becomes a :class:`QueryState`. Stages read and extend it: query transforms
add :class:`Query` objects, retrievers add :class:`CandidateList` objects
(one per retriever and query), a fuser turns them into ``hits``, rerankers,
thresholds and context shapers rework ``hits``. Each stage leaves a
:class:`StageTrace` behind: its output, its timing and its model calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ragkit.filters import FilterLike
from ragkit.generation.base import Message
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.collection import Collection

QueryKind = Literal["question", "passage"]
TRACE_HITS = 50
"""Hits kept per stage in a trace (the best ones)."""


@dataclass(slots=True)
class Query:
    """One text to retrieve with.

    ``kind`` is ``question`` for a question (embedded as a query) or
    ``passage`` for text written to look like an answer (HyDE; embedded as a
    document). ``origin`` names the stage that wrote it (``original`` for
    the user's question).
    """

    text: str
    kind: QueryKind = "question"
    origin: str = "original"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"text": self.text, "kind": self.kind, "origin": self.origin}


@dataclass(slots=True)
class QueryRequest:
    """What a caller asks: the question and how to search for it.

    ``top_k`` is the number of hits the pipeline hands on (to the generator,
    or back to a search caller); ``None`` takes the pipeline's default.
    ``history`` holds the conversation so far (oldest first), for stages
    that condense a follow-up into a standalone question. ``options`` are
    free-form per-request settings stages may read (``mode`` picks a single
    retriever).
    """

    question: str
    top_k: int | None = None
    filters: FilterLike = None
    history: list[Message] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CandidateList:
    """The ranked hits one retriever found for one query."""

    label: str
    """The retriever's label, with ``#n`` for the n-th query when there are several (``dense#2``)."""
    retriever: str
    query_index: int
    hits: list[Hit]


@dataclass(slots=True)
class ModelCall:
    """One call a stage made to a model (an LLM rewrite, a rerank prompt)."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data: dict[str, Any] = {
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 6),
            "cached": self.cached,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(slots=True)
class StageTrace:
    """What one stage did for one question.

    ``hits`` is the stage's output list (its best :data:`TRACE_HITS`, as
    ``{chunk_id, source, score, scores, ranks}``) when the stage changed the
    hits; ``candidates`` the per-retriever lists a retrieval stage produced;
    ``queries`` the queries after a transform. ``notes`` say what the stage
    decided not to do and why (an unparsable model answer keeps the input,
    an adaptive rewrite that was not needed); ``error`` is set when the stage
    failed and the pipeline went on without it.
    """

    stage: str
    kind: str
    seconds: float = 0.0
    queries: list[dict[str, Any]] | None = None
    candidates: dict[str, list[dict[str, Any]]] | None = None
    hits: list[dict[str, Any]] | None = None
    calls: list[ModelCall] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: bool = False

    @property
    def tokens(self) -> int:
        """Tokens spent in this stage's model calls."""
        return sum(c.prompt_tokens + c.completion_tokens for c in self.calls)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (fields a stage did not fill are left out)."""
        data: dict[str, Any] = {"stage": self.stage, "kind": self.kind, "seconds": round(self.seconds, 6)}
        if self.skipped:
            data["skipped"] = True
        if self.queries is not None:
            data["queries"] = self.queries
        if self.candidates is not None:
            data["candidates"] = self.candidates
        if self.hits is not None:
            data["hits"] = self.hits
        if self.calls:
            data["calls"] = [c.to_dict() for c in self.calls]
            data["tokens"] = self.tokens
        if self.notes:
            data["notes"] = list(self.notes)
        if self.error is not None:
            data["error"] = self.error
        return data


def hit_summary(hits: list[Hit], limit: int = TRACE_HITS) -> list[dict[str, Any]]:
    """The trace form of a hit list: ids, sources and every stage's score, best first."""
    out = []
    for hit in hits[:limit]:
        entry: dict[str, Any] = {"chunk_id": hit.chunk.id, "source": hit.chunk.source, "score": hit.score}
        if hit.scores:
            entry["scores"] = dict(hit.scores)
        if hit.ranks:
            entry["ranks"] = dict(hit.ranks)
        out.append(entry)
    return out


@dataclass(slots=True)
class QueryState:
    """One question on its way through the stages."""

    request: QueryRequest
    collection: Collection
    queries: list[Query] = field(default_factory=list)
    candidates: list[CandidateList] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    trace: list[StageTrace] = field(default_factory=list)
    fused: bool = False
    """Whether a fusion stage has merged the candidate lists into ``hits``."""
    scratch: dict[str, Any] = field(default_factory=dict)
    """Room for stages to leave data for later stages (keyed by stage label)."""

    @classmethod
    def start(cls, request: QueryRequest, collection: Collection) -> QueryState:
        """The state of a new request: its question is the only query."""
        return cls(request, collection, queries=[Query(request.question)])

    @property
    def question(self) -> str:
        """The question as asked (or as a condensing stage made it standalone)."""
        return self.request.question

    @property
    def top_k(self) -> int:
        """Hits to hand on (the request's, resolved by the pipeline before any stage runs)."""
        return self.request.top_k or 5

    def current(self, stage: str) -> StageTrace:
        """The trace entry of ``stage`` (the last one recorded with that label)."""
        for entry in reversed(self.trace):
            if entry.stage == stage:
                return entry
        raise KeyError(stage)
