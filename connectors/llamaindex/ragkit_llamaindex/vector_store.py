"""A ragkit collection as a LlamaIndex vector store (``BasePydanticVectorStore``).

::

    from llama_index.core import VectorStoreIndex
    from ragkit_llamaindex import RagkitEmbedding, RagkitVectorStore

    store = RagkitVectorStore("notes")                    # opens or creates collection "notes"
    index = VectorStoreIndex.from_vector_store(store, embed_model=RagkitEmbedding.of(store.collection))
    index.insert(document)
    index.as_retriever(similarity_top_k=3).retrieve("capital of France")

**ragkit embeds.** Nodes are stored through the collection's own API
(:meth:`~ragkit.collection.Collection.add_documents`), so they are embedded
by the collection's embedder, indexed for keywords, and seen by ragkit's
CLI, service and pipelines like anything else ingested. The vectors
LlamaIndex computed for the nodes are not stored: a collection holds one
embedding space, its own. A node whose vector has another length than the
collection's is refused (:class:`~ragkit.errors.ConfigError`): its embed
model is certainly not the collection's. ``is_embedding_query`` is
``False``, so LlamaIndex's retrievers hand over the query *text* and the
collection embeds it with the same model and conventions (e.g. an e5
model's ``query:`` prefix) as its documents; a query given only as a vector
is searched as is, after the same length check. Give the index
:class:`~ragkit_llamaindex.RagkitEmbedding` of the collection as its
``embed_model``: LlamaIndex still embeds inserted nodes itself, and that
way it at least uses the same model and loads nothing else.

**Ids.** A node's ``ref_doc_id`` (the LlamaIndex document it came from) is
its ragkit source, so ``delete(ref_doc_id)`` removes the document's nodes,
``doc_ids=`` and the ``source`` filter select by it, and hits cite it. Each
node is one ragkit document of that source, under the node's id; nodes
added later to a source already stored join the ones there, and
``get_nodes(node_ids)`` / ``delete_nodes(node_ids)`` find nodes by id. The node
itself (relationships, metadata, templates, character offsets) is kept in
its chunks' metadata as LlamaIndex's other stores keep it
(``_node_content``), and comes back from a query as it went in, its text
the matching chunk's. A node longer than the collection's chunk size is
split by ragkit's splitter: a query then returns the matching piece under
the node's id, ``start_char_idx`` moved to the piece.

**Queries.** ``DEFAULT`` mode is dense search, ``TEXT_SEARCH`` / ``SPARSE``
the collection's BM25 index, ``HYBRID`` ragkit's ``hybrid`` recipe (dense
and BM25 fused); other modes are refused. ``filters`` are translated by
:func:`~ragkit_llamaindex.filters.to_ragkit_filter`. A collection ingested
by ragkit from files works too: its chunks come back as nodes carrying
ragkit's hit fields (see :func:`~ragkit_llamaindex.retriever.hit_to_node`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from pydantic import PrivateAttr

from ragkit.collection import Collection
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError, InputError
from ragkit.filters import And, Comparison, Filter
from ragkit.protocols import DocumentChunks, capabilities_of
from ragkit.retrieval import prepare_filter
from ragkit.schema import Chunk, Document, Hit
from ragkit_llamaindex.embeddings import RagkitEmbedding
from ragkit_llamaindex.filters import to_ragkit_filter
from ragkit_llamaindex.retriever import hit_to_node

NODE_KEYS = ("_node_content", "_node_type", "ref_doc_id")
"""Chunk metadata keys holding the LlamaIndex node (as LlamaIndex's own stores name them)."""
_LEXICAL_MODES = (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE)


class RagkitVectorStore(BasePydanticVectorStore):
    """A ragkit :class:`~ragkit.collection.Collection` as a LlamaIndex vector store (see the module docstring).

    Args:
        collection: An open collection, or the name of one to open (created when missing).
        store_dir: The ragkit store folder (default: ``RAGKIT_HOME``).
        config: The collection config for one created here.

    """

    stores_text: bool = True
    is_embedding_query: bool = False
    flat_metadata: bool = False

    _collection: Collection = PrivateAttr()
    _writing: Any = PrivateAttr()

    def __init__(
        self,
        collection: Collection | str,
        *,
        store_dir: str | Path | None = None,
        config: CollectionConfig | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(stores_text=True)
        if isinstance(collection, Collection):
            self._collection = collection
        else:
            self._collection = Collection.open_or_create(collection, config, store_dir)
        self._writing = threading.Lock()

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name of this class."""
        return "RagkitVectorStore"

    @property
    def client(self) -> Collection:
        """The ragkit collection."""
        return self._collection

    @property
    def collection(self) -> Collection:
        """The ragkit collection."""
        return self._collection

    @property
    def embed_model(self) -> RagkitEmbedding:
        """The collection's embedder as a LlamaIndex embed model (give it to ``VectorStoreIndex``)."""
        return RagkitEmbedding.of(self._collection)

    # -- writing ---------------------------------------------------------------------------

    def _check_vector(self, vector: Sequence[float], what: str) -> None:
        dimension = int(self._collection.embedding.get("dimension") or 0)
        if dimension and len(vector) != dimension:
            raise ConfigError(
                f"{what} has {len(vector)} dimensions but collection {self._collection.name!r} embeds with "
                f"{self._collection.embedding.get('fingerprint')} ({dimension} dimensions); give the index "
                "embed_model=RagkitEmbedding.of(collection) (the store embeds text with the collection's model)"
            )

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store ``nodes`` (their text embedded by the collection); returns their ids."""
        grouped: dict[str, list[Document]] = {}
        for i, node in enumerate(nodes):
            if node.embedding is not None:
                self._check_vector(node.embedding, f"nodes[{i}] ({node.node_id})'s embedding")
            source = node.ref_doc_id or node.node_id
            metadata = node_to_metadata_dict(node, remove_text=True, flat_metadata=self.flat_metadata)
            kept = {**node.metadata, **{k: metadata[k] for k in NODE_KEYS}}
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            grouped.setdefault(source, []).append(Document(node.node_id, source, text, None, kept))
        if not grouped:
            return []
        with self._writing:
            known = self._collection.store.sources()
            stored = [s for s in grouped if s in known]
            for doc in self._collection.get_documents(stored) if stored else []:
                group = grouped[doc.source]
                if all(d.id != doc.id for d in group):
                    group.insert(0, doc)
            self._collection.add_documents([d for docs in grouped.values() for d in docs])
        return [node.node_id for node in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Async twin of :meth:`add` (runs in a worker thread)."""
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the nodes of the LlamaIndex document ``ref_doc_id`` (unknown: nothing happens)."""
        with self._writing:
            self._collection.delete_documents([ref_doc_id])

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Async twin of :meth:`delete`."""
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def _chunks_of_nodes(self, node_ids: Sequence[str]) -> list[Chunk]:
        """The chunks of the nodes ``node_ids`` (a node is a ragkit document under its own id)."""
        store = self._collection.store
        if "chunks_of_documents" in capabilities_of(store):
            return cast(DocumentChunks, store).chunks_of_documents(list(node_ids))
        wanted = set(node_ids)
        return [c for batch in store.iter_chunks(1000) for c in batch if c.document_id in wanted]

    @staticmethod
    def _node_ids_only(method: str, node_ids: list[str] | None, filters: Any) -> list[str]:
        if filters is not None or node_ids is None:
            raise InputError(f"RagkitVectorStore.{method}: give node_ids (filters are not supported here)")
        return list(node_ids)

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes ``node_ids`` (unknown ones left out), as they were added."""
        ids = self._node_ids_only("get_nodes", node_ids, filters)
        sources = {c.source for c in self._chunks_of_nodes(ids)}
        found = {d.id: d for d in self._collection.get_documents(sorted(sources)) if d.id in set(ids)}
        nodes: list[BaseNode] = []
        for node_id in ids:
            doc = found.get(node_id)
            if doc is not None and "_node_content" in doc.metadata:
                nodes.append(metadata_dict_to_node(doc.metadata, text=doc.text))
        return nodes

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete the nodes ``node_ids`` (the other nodes of their documents stay; unknown ids are ignored)."""
        ids = set(self._node_ids_only("delete_nodes", node_ids, filters))
        with self._writing:
            sources = sorted({c.source for c in self._chunks_of_nodes(sorted(ids))})
            if not sources:
                return
            documents = self._collection.get_documents(sources)
            left = [d for d in documents if d.id not in ids]
            emptied = sorted(set(sources) - {d.source for d in left})
            if left:
                self._collection.add_documents(left)  # a source's documents are replaced together
            if emptied:
                self._collection.delete_documents(emptied)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Async twin of :meth:`get_nodes`."""
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Async twin of :meth:`delete_nodes`."""
        await asyncio.to_thread(self.delete_nodes, node_ids, filters)

    def clear(self) -> None:
        """Delete everything in the collection."""
        with self._writing:
            self._collection.delete_sources(list(self._collection.store.sources()))

    async def aclear(self) -> None:
        """Async twin of :meth:`clear`."""
        await asyncio.to_thread(self.clear)

    # -- queries ---------------------------------------------------------------------------

    def _filter(self, query: VectorStoreQuery) -> Filter | None:
        if query.node_ids:
            raise InputError("RagkitVectorStore: node_ids= is not supported; filter by doc_ids= or metadata instead")
        parts: list[Filter] = []
        translated = to_ragkit_filter(query.filters)
        if translated is not None:
            parts.append(translated)
        if query.doc_ids:
            parts.append(Comparison("source", "in", tuple(query.doc_ids)))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _hits(self, query: VectorStoreQuery) -> list[Hit]:
        top_k = query.similarity_top_k
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"RagkitVectorStore: similarity_top_k must be a positive integer, got {top_k!r}")
        flt = self._filter(query)
        collection = self._collection
        if collection.store.count() == 0:
            return []
        mode = query.mode
        text = query.query_str
        if mode == VectorStoreQueryMode.DEFAULT:
            if text:
                return collection.search(text, top_k, flt)
            if query.query_embedding is None:
                raise InputError("RagkitVectorStore: the query has neither query_str nor query_embedding")
            self._check_vector(query.query_embedding, "the query embedding")
            store = collection.store
            checked = prepare_filter(flt, store, f"collection {collection.name!r}")
            vector = np.asarray([query.query_embedding], dtype=np.float32)
            vector /= float(np.linalg.norm(vector)) or 1.0
            return store.search(vector, top_k, checked)[0]
        if not text:
            raise InputError(f"RagkitVectorStore: mode {mode.value!r} needs query_str")
        if mode in _LEXICAL_MODES:
            return collection.search(text, top_k, flt, mode="lexical")
        if mode == VectorStoreQueryMode.HYBRID:
            from ragkit.rag.pipeline import RagPipeline

            return RagPipeline.load("hybrid").search(text, collection, top_k=top_k, filters=flt).hits[:top_k]
        raise InputError(
            f"RagkitVectorStore: query mode {mode.value!r} is not supported (default, text_search, sparse, hybrid)"
        )

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` best nodes for ``query`` with their scores (cosine for dense search)."""
        hits = self._hits(query)
        nodes = [_node_of(hit, rank) for rank, hit in enumerate(hits, 1)]
        return VectorStoreQueryResult(
            nodes=nodes, similarities=[float(h.score) for h in hits], ids=[n.node_id for n in nodes]
        )

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Async twin of :meth:`query` (runs in a worker thread)."""
        return await asyncio.to_thread(self.query, query, **kwargs)


def _node_of(hit: Hit, rank: int) -> BaseNode:
    """The LlamaIndex node a hit's chunk holds (its text the chunk's), or a hit node for ragkit's own chunks."""
    chunk = hit.chunk
    if "_node_content" not in chunk.metadata:
        return hit_to_node(hit, rank).node
    node = metadata_dict_to_node(chunk.metadata, text=chunk.text)
    if isinstance(node, TextNode) and node.start_char_idx is not None:
        node.start_char_idx += chunk.start
        node.end_char_idx = node.start_char_idx + len(chunk.text)
    return node
