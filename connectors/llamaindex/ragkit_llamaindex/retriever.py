"""Any ragkit pipeline over a collection as a LlamaIndex ``BaseRetriever``.

::

    from llama_index.core.query_engine import RetrieverQueryEngine
    from ragkit_llamaindex import RagkitRetriever

    retriever = RagkitRetriever("docs", pipeline="hybrid", top_k=4)
    engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
    response = engine.query("How do I reset my password?")
    response.source_nodes[0].metadata["source"], response.source_nodes[0].metadata["start"]

The pipeline's query stages run as they do for ``ragkit search`` (query
transforms, dense/lexical retrieval, fusion, reranking, thresholds); no
answer is generated (the query engine's LLM does that). Each node is one hit:
a ``TextNode`` whose id is the chunk id and whose text is the chunk's, with
``start_char_idx``/``end_char_idx`` its offsets into the document's text,
its ``ref_doc_id`` the source, and the hit's score. Its metadata is the
chunk's metadata plus ragkit's hit fields (:meth:`ragkit.schema.Hit.to_dict`):
``source``, ``uri``, ``chunk_id``, ``document_id``, ``score``, ``origin``,
``rank``, ``start``, ``end``, ``page``, ``section``, ``row``, ``title``,
``scores`` and ``ranks``. Only ``source``, ``page``, ``section``, ``row``
and ``title`` are shown to the LLM next to the text (LlamaIndex's
``excluded_llm_metadata_keys`` hides the rest), so a prompt names where a
passage comes from without ids and scores.
"""

from __future__ import annotations

from pathlib import Path

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode

from ragkit.collection import Collection
from ragkit.errors import InputError
from ragkit.filters import FilterLike
from ragkit.rag.pipeline import RagPipeline
from ragkit.schema import Hit

HIT_FIELDS = ("source", "uri", "chunk_id", "document_id", "score", "origin", "rank", "start", "end")
"""Hit fields every retrieved node's metadata carries (besides ``page``, ``section``, ``row``, ``title``)."""
SHOWN_TO_LLM = frozenset({"source", "page", "section", "row", "title"})
"""The hit fields a node shows an LLM next to its text; the others are for code (citations, scores)."""
_HIT_KEYS = (*HIT_FIELDS, "page", "section", "row", "title", "scores", "ranks", "chunk_index", "headings")


def hit_to_node(hit: Hit, rank: int = 1) -> NodeWithScore:
    """A LlamaIndex node of one hit: the chunk's text and metadata plus ragkit's hit fields."""
    data = hit.to_dict(rank)
    text = data.pop("text")
    metadata = {**data.pop("metadata"), **data}
    metadata.pop("chunk_index", None)
    chunk = hit.chunk
    node = TextNode(
        id_=chunk.id,
        text=text,
        metadata=metadata,
        start_char_idx=chunk.start,
        end_char_idx=chunk.end,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=chunk.source)},
        excluded_llm_metadata_keys=[k for k in metadata if k not in SHOWN_TO_LLM],
        excluded_embed_metadata_keys=[k for k in metadata if k in _HIT_KEYS],
    )
    return NodeWithScore(node=node, score=float(hit.score))


class RagkitRetriever(BaseRetriever):
    """A ragkit pipeline's query stages over a collection, as a LlamaIndex retriever (see the module docstring).

    Args:
        collection: An open collection, or the name of one in ``store_dir``.
        pipeline: A recipe name or YAML path (``basic``, ``hybrid`` ...) or a :class:`~ragkit.rag.RagPipeline`.
        top_k: How many nodes to return.
        filters: A ragkit filter applied to every query (an expression or a dict; see :mod:`ragkit.filters`).
        mode: A retriever mode for pipelines without stages (``dense``, ``lexical``).
        store_dir: The ragkit store folder, when ``collection`` is a name.
        callback_manager: LlamaIndex's callback manager.

    """

    def __init__(
        self,
        collection: Collection | str,
        pipeline: RagPipeline | str = "basic",
        top_k: int = 4,
        filters: FilterLike = None,
        mode: str | None = None,
        store_dir: str | Path | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"RagkitRetriever: top_k must be a positive integer, got {top_k!r}")
        self.collection = collection if isinstance(collection, Collection) else Collection.open(collection, store_dir)
        self.pipeline = pipeline if isinstance(pipeline, RagPipeline) else RagPipeline.load(pipeline)
        self.top_k = top_k
        self.filters = filters
        self.mode = mode
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self.pipeline.search(
            query_bundle.query_str, self.collection, top_k=self.top_k, filters=self.filters, mode=self.mode
        )
        return [hit_to_node(hit, rank) for rank, hit in enumerate(result.hits[: self.top_k], 1)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = await self.pipeline.asearch(
            query_bundle.query_str, self.collection, top_k=self.top_k, filters=self.filters, mode=self.mode
        )
        return [hit_to_node(hit, rank) for rank, hit in enumerate(result.hits[: self.top_k], 1)]

    def __repr__(self) -> str:
        name = self.pipeline.name if hasattr(self.pipeline, "name") else type(self.pipeline).__name__
        return f"RagkitRetriever(collection={self.collection.name!r}, pipeline={name!r}, top_k={self.top_k})"
