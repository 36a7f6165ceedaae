"""Any ragkit pipeline over a collection as a LangChain ``BaseRetriever``.

::

    from ragkit_langchain import RagkitRetriever

    retriever = RagkitRetriever(collection="docs", pipeline="hybrid", k=4)
    docs = retriever.invoke("How do I reset my password?")
    docs[0].metadata["source"], docs[0].metadata["start"], docs[0].metadata["score"]

The pipeline's query stages run as they do for ``ragkit search`` (query
transforms, dense/lexical retrieval, fusion, reranking, thresholds); no
answer is generated. Each LangChain document is one hit: its text, its id
the chunk id, and in its metadata the chunk's metadata plus ragkit's hit
fields (:meth:`ragkit.schema.Hit.to_dict`): ``source``, ``uri``,
``chunk_id``, ``document_id``, ``score``, ``origin``, ``rank``, ``start``,
``end``, ``page``, ``section``, ``row``, ``title``, ``scores`` and ``ranks``,
so a chain can cite exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from ragkit.collection import Collection
from ragkit.errors import InputError
from ragkit.rag.pipeline import RagPipeline
from ragkit.schema import Hit

HIT_FIELDS = ("source", "uri", "chunk_id", "document_id", "score", "origin", "rank", "start", "end")
"""Hit fields every retrieved document's metadata carries (besides ``page``, ``section``, ``row``, ``title``)."""


def hit_to_document(hit: Hit, rank: int = 1) -> LCDocument:
    """A LangChain document of one hit: the chunk's text and metadata plus ragkit's hit fields."""
    data = hit.to_dict(rank)
    text = data.pop("text")
    metadata = {**data.pop("metadata"), **data}
    metadata.pop("chunk_index", None)
    return LCDocument(page_content=text, metadata=metadata, id=hit.chunk.id)


class RagkitRetriever(BaseRetriever):
    """A ragkit pipeline's query stages over a collection, as a LangChain retriever (see the module docstring).

    Args:
        collection: An open collection, or the name of one in ``store_dir``.
        pipeline: A recipe name or YAML path (``basic``, ``hybrid`` ...) or a :class:`~ragkit.rag.RagPipeline`.
        k: How many documents to return (``invoke(query, k=3)`` overrides it).
        filters: A ragkit filter applied to every query (``invoke(..., filters=...)`` overrides it).
        mode: A retriever mode for pipelines without stages (``dense``, ``lexical``).
        store_dir: The ragkit store folder, when ``collection`` is a name.

    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: Collection | str
    pipeline: RagPipeline | str = "basic"
    k: int = 4
    filters: Any = None
    mode: str | None = None
    store_dir: str | Path | None = None

    _collection: Collection | None = PrivateAttr(default=None)
    _pipeline: RagPipeline | None = PrivateAttr(default=None)

    def _parts(self) -> tuple[Collection, RagPipeline]:
        if self._collection is None:
            c = self.collection
            self._collection = c if isinstance(c, Collection) else Collection.open(c, self.store_dir)
        if self._pipeline is None:
            p = self.pipeline
            self._pipeline = p if isinstance(p, RagPipeline) else RagPipeline.load(p)
        return self._collection, self._pipeline

    def _arguments(self, k: int | None, filters: Any) -> tuple[int, Any]:
        top_k = self.k if k is None else k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"RagkitRetriever: k must be a positive integer, got {top_k!r}")
        return top_k, self.filters if filters is None else filters

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: Any = None,
    ) -> list[LCDocument]:
        collection, pipeline = self._parts()
        top_k, flt = self._arguments(k, filters)
        result = pipeline.search(query, collection, top_k=top_k, filters=flt, mode=self.mode)
        return [hit_to_document(hit, rank) for rank, hit in enumerate(result.hits[:top_k], 1)]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
        filters: Any = None,
    ) -> list[LCDocument]:
        collection, pipeline = self._parts()
        top_k, flt = self._arguments(k, filters)
        result = await pipeline.asearch(query, collection, top_k=top_k, filters=flt, mode=self.mode)
        return [hit_to_document(hit, rank) for rank, hit in enumerate(result.hits[:top_k], 1)]
