"""ragas' LLM and embeddings interfaces, implemented over ragkit components.

ragas 0.4 has two LLM interfaces. The metrics in ``ragas.metrics.collections``
(the current ones: ``Faithfulness``, ``ContextRecall`` ...) accept only an
``InstructorBaseRagasLLM``: ``generate(prompt, response_model)`` /
``agenerate(prompt, response_model)`` returning a validated pydantic object.
The legacy metrics (``ragas.metrics._*``, ``MetricWithLLM``) accept the same
object too: their prompts call ``agenerate`` when the LLM says ``is_async``.
So one class, :class:`RagkitRagasLLM`, serves both, with the parsing,
retries, cache and concurrency bound of :class:`~ragkit_ragas.judge.Judge`
underneath. No OpenAI client, key or network is involved (unless the ragkit
generator itself is a remote one).

:class:`RagkitRagasEmbeddings` is ragas' ``BaseRagasEmbedding`` over a
ragkit :class:`~ragkit.protocols.Embedder`, with the LangChain-style
methods (``embed_query`` ...) of ragas' legacy embeddings as well.

Importing this module imports ragas (several seconds).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, TypeVar

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

from pydantic import BaseModel
from ragas.embeddings.base import BaseRagasEmbedding
from ragas.llms.base import InstructorBaseRagasLLM

from ragkit_ragas._sync import run_sync
from ragkit_ragas.judge import Judge

M = TypeVar("M", bound=BaseModel)


class RagkitRagasLLM(InstructorBaseRagasLLM):
    """A ragas LLM (``InstructorBaseRagasLLM``) backed by a ragkit generator through a :class:`Judge`.

    ``agenerate(prompt, response_model)`` asks the judge and parses its
    answer into ``response_model``; ``generate`` is its blocking twin (safe
    to call inside a running event loop: it then runs on a worker thread).
    A judgement that fails for good raises :class:`~ragkit_ragas.judge.JudgeError`.
    """

    is_async = True
    """Tells ragas' legacy prompts to call :meth:`agenerate`."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.model = judge.model_name
        self.provider = "ragkit"
        self.model_args: dict[str, Any] = {
            "temperature": judge.options.temperature,
            "max_tokens": judge.options.max_tokens,
        }
        self.system_prompt: str | None = None
        self.cache = None

    async def agenerate(self, prompt: str, response_model: type[M]) -> M:
        """The judge's answer to ``prompt``, validated as ``response_model``."""
        return await self.judge.structured(str(prompt), response_model)

    def generate(self, prompt: str, response_model: type[M]) -> M:
        """Blocking twin of :meth:`agenerate`."""
        return run_sync(self.agenerate(prompt, response_model))

    def __repr__(self) -> str:
        return f"RagkitRagasLLM(model={self.model!r})"


class RagkitRagasEmbeddings(BaseRagasEmbedding):
    """ragas embeddings over a ragkit embedder.

    Every text is embedded as a *query* (``embed_queries``): ragas compares
    short texts with each other (a question with questions generated from
    an answer, a reference with a response), so both sides take the same
    side of an asymmetric model's prefixes.
    """

    def __init__(self, embedder: Any) -> None:
        super().__init__(cache=None)
        self.embedder = embedder

    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        """The vector of one text."""
        return self.embed_texts([text])[0]

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        """Async twin of :meth:`embed_text`."""
        return (await self.aembed_texts([text]))[0]

    def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        """Vectors of several texts, in one batch."""
        return _rows(self.embedder.embed_queries(list(texts)))

    async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        """Async twin of :meth:`embed_texts`."""
        aembed = getattr(self.embedder, "aembed_queries", None)
        if aembed is None:
            return await asyncio.to_thread(self.embed_texts, texts)
        return _rows(await aembed(list(texts)))

    # the LangChain-style names of ragas' legacy embeddings
    def embed_query(self, text: str) -> list[float]:
        """Legacy name of :meth:`embed_text`."""
        return self.embed_text(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Legacy name of :meth:`embed_texts`."""
        return self.embed_texts(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Legacy name of :meth:`aembed_text`."""
        return await self.aembed_text(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Legacy name of :meth:`aembed_texts`."""
        return await self.aembed_texts(texts)

    def set_run_config(self, run_config: Any) -> None:
        """Accepted for ragas' legacy metrics; timeouts and retries are the judge's business."""

    def __repr__(self) -> str:
        return f"RagkitRagasEmbeddings(embedder={type(self.embedder).__name__})"


def _rows(vectors: Any) -> list[list[float]]:
    return [[float(x) for x in row] for row in vectors]


__all__ = ["RagkitRagasEmbeddings", "RagkitRagasLLM"]
