"""Milvus for ragkit: a vector store in Milvus Lite (a local folder) or a Milvus server or cluster (by URI).

Installing ``ragkit-milvus`` registers the store as ``{"type": "milvus"}``.
pymilvus is imported only when a store is opened.
"""

from ragkit_milvus.expressions import to_milvus_expr
from ragkit_milvus.store import MilvusStore, collection_name_for

__all__ = ["MilvusStore", "collection_name_for", "to_milvus_expr"]
