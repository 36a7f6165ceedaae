"""ragkit and LangChain, both ways.

- :class:`RagkitVectorStore`: a ragkit collection as a LangChain ``VectorStore``
  (``as_retriever()`` included).
- :class:`RagkitRetriever`: any ragkit pipeline over a collection as a LangChain retriever,
  its documents carrying ragkit's citation fields.
- Components for ragkit configs (entry points ``loader.langchain``, ``splitter.langchain``,
  ``generator.langchain``, ``embedder.langchain``): LangChain document loaders, text
  splitters, chat models and embeddings, each named by import path plus keyword arguments.

The modules import LangChain at import time; the core finds the components through
the registry, so ``import ragkit`` never imports LangChain.
"""

from __future__ import annotations

from ragkit_langchain.embeddings import LangChainEmbedder, RagkitEmbeddings
from ragkit_langchain.retriever import RagkitRetriever, hit_to_document
from ragkit_langchain.vectorstore import RagkitVectorStore

__all__ = ["LangChainEmbedder", "RagkitEmbeddings", "RagkitRetriever", "RagkitVectorStore", "hit_to_document"]
