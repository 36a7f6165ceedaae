"""Something that answers a question: the small protocol a router (or an agent tool) calls.

A RAG pipeline over a collection answers (:class:`PipelineAnswerer`), and so
does a text-to-SQL engine from a connector (``registry.build("sql_engine",
...)``, whose ``ask`` returns an answer with ``text``, ``sql``, ``rows`` and
``citations``). The core codes against :class:`Answerer` only, so it never
imports a connector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.filters import FilterLike
    from ragkit.rag.answer import Answer
    from ragkit.rag.pipeline import RagPipeline


@runtime_checkable
class AnswerLike(Protocol):
    """An answer: its text and the numbered citations its ``[n]`` markers point at."""

    @property
    def text(self) -> str:
        """The answer's text, with ``[n]`` citation markers."""
        ...

    @property
    def citations(self) -> Sequence[Any]:
        """The citations, each with a ``number`` (a :class:`ragkit.rag.answer.Citation` or alike)."""
        ...


@runtime_checkable
class Answerer(Protocol):
    """Answers one question (a RAG pipeline over a collection, a text-to-SQL engine ...)."""

    def ask(self, question: str) -> AnswerLike:
        """The answer to ``question``, with its citations."""
        ...


class PipelineAnswerer:
    """A :class:`~ragkit.rag.pipeline.RagPipeline` over one collection, as an :class:`Answerer`.

    Args:
        pipeline: The RAG pipeline.
        collection: The collection it answers from.
        top_k: Hits handed to the generator (default: the pipeline's).
        filters: A metadata filter applied to every question.

    """

    def __init__(
        self, pipeline: RagPipeline, collection: Collection, top_k: int | None = None, filters: FilterLike = None
    ) -> None:
        self.pipeline = pipeline
        self.collection = collection
        self.top_k = top_k
        self.filters = filters

    def ask(self, question: str) -> Answer:
        """The pipeline's cited answer from the collection."""
        return self.pipeline.ask(question, self.collection, self.top_k, self.filters)
