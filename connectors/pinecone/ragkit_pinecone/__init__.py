"""Pinecone for ragkit: a vector store in a Pinecone index, through the official ``pinecone`` client.

Installing ``ragkit-pinecone`` registers the store as ``{"type": "pinecone"}``.
The client is imported only when a store is opened. :mod:`ragkit_pinecone.testing`
holds a FAKE Pinecone service (its REST wire protocol on loopback) for tests.
"""

from ragkit_pinecone.filters import to_pinecone_filter
from ragkit_pinecone.store import PineconeStore, namespace_for

__all__ = ["PineconeStore", "namespace_for", "to_pinecone_filter"]
