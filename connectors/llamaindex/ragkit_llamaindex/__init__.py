"""ragkit inside LlamaIndex, and LlamaIndex readers inside ragkit.

- :class:`RagkitRetriever`: any ragkit pipeline over a collection as a LlamaIndex retriever,
  its nodes carrying ragkit's citation fields.

The modules import LlamaIndex at import time; the core finds the components through
the registry, so ``import ragkit`` never imports LlamaIndex.
"""

from __future__ import annotations

from ragkit_llamaindex.retriever import RagkitRetriever, hit_to_node

__all__ = ["RagkitRetriever", "hit_to_node"]
