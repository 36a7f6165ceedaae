"""A ragkit embedder as a LlamaIndex embed model (``BaseEmbedding``).

::

    from ragkit_llamaindex import RagkitEmbedding

    embed_model = RagkitEmbedding.of(collection)          # the collection's own embedder
    Settings.embed_model = embed_model                    # or pass embed_model= where LlamaIndex asks

Queries and texts keep the embedder's own conventions (an e5 model's
``query:`` / ``passage:`` prefixes, normalisation), so vectors made here are
the ones the collection stores and searches with.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from ragkit.collection import Collection
from ragkit.protocols import Embedder


class RagkitEmbedding(BaseEmbedding):
    """A ragkit :class:`~ragkit.protocols.Embedder` as a LlamaIndex ``BaseEmbedding``.

    Args:
        embedder: The ragkit embedder (``collection.embedder``, or one built with ``ragkit.registry.build``).
        embed_batch_size: How many texts LlamaIndex hands over at once.

    """

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, embed_batch_size: int = 64, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", str(getattr(embedder, "fingerprint", type(embedder).__name__)))
        super().__init__(embed_batch_size=embed_batch_size, **kwargs)
        self._embedder = embedder

    @classmethod
    def of(cls, collection: Collection, **kwargs: Any) -> RagkitEmbedding:
        """The embed model of ``collection``: its own embedder."""
        return cls(collection.embedder, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name of this class."""
        return "RagkitEmbedding"

    @property
    def embedder(self) -> Embedder:
        """The wrapped ragkit embedder."""
        return self._embedder  # type: ignore[no-any-return]

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._embedder.embed_queries([query])[0]]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in (await self._embedder.aembed_queries([query]))[0]]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [row.tolist() for row in self._embedder.embed_documents(texts)] if texts else []

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [row.tolist() for row in await self._embedder.aembed_documents(texts)] if texts else []
