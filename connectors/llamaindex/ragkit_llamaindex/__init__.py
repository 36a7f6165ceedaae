"""ragkit inside LlamaIndex, and LlamaIndex readers inside ragkit.

- :class:`RagkitRetriever`: any ragkit pipeline over a collection as a LlamaIndex retriever,
  its nodes carrying ragkit's citation fields.
- :class:`RagkitVectorStore`: a ragkit collection as a LlamaIndex vector store
  (``VectorStoreIndex.from_vector_store``), LlamaIndex metadata filters translated.
- :class:`RagkitEmbedding`: a ragkit embedder as a LlamaIndex embed model.
- ``loader.llamaindex`` (:class:`~ragkit_llamaindex.reader.LlamaIndexLoader`): any
  LlamaIndex reader as a ragkit loader.

The modules import LlamaIndex at import time; the core finds the components through
the registry, so ``import ragkit`` never imports LlamaIndex.
"""

from __future__ import annotations

from ragkit_llamaindex.embeddings import RagkitEmbedding
from ragkit_llamaindex.filters import to_ragkit_filter
from ragkit_llamaindex.retriever import RagkitRetriever, hit_to_node
from ragkit_llamaindex.vector_store import RagkitVectorStore

__all__ = ["RagkitEmbedding", "RagkitRetriever", "RagkitVectorStore", "hit_to_node", "to_ragkit_filter"]
