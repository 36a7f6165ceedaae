"""The VectorStore conformance suite against the Pinecone store, talking to a FAKE Pinecone on loopback."""

from __future__ import annotations

import pytest

from ragkit.testing.vector_store_conformance import VectorStoreConformance


class TestPineconeStore(VectorStoreConformance):
    @pytest.fixture
    def make_store(self, pinecone_store):
        return pinecone_store
