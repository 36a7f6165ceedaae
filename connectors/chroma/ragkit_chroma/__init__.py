"""Chroma for ragkit: a vector store in an embedded Chroma database (a local folder) or a Chroma server (by URL).

Installing ``ragkit-chroma`` registers the store as ``{"type": "chroma"}``
(add ``url: http://host:8000`` for a server). chromadb is imported only when a
store is opened, with its telemetry off; Chroma never embeds anything itself.
"""

from ragkit_chroma.store import ChromaStore, collection_name_for
from ragkit_chroma.where import to_chroma_where

__all__ = ["ChromaStore", "collection_name_for", "to_chroma_where"]
