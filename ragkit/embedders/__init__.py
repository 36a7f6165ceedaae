"""Embedding helpers of the core: the embedding cache and instruction prefixes.

The embedders themselves come with connectors (``ragkit-sentence-transformers``,
``ragkit-openai``), found through the registry::

    from ragkit.registry import build
    embedder = build("embedder", {"type": "sentence-transformers"})

Wrap one in :class:`CachedEmbedder` so text that was embedded before (by the
same model and options) is read back instead of embedded again.
"""

from __future__ import annotations

from ragkit.embedders.cache import CachedEmbedder, EmbeddingCache
from ragkit.embedders.inputs import check_texts
from ragkit.embedders.prefixes import default_prefixes

__all__ = ["CachedEmbedder", "EmbeddingCache", "check_texts", "default_prefixes"]
