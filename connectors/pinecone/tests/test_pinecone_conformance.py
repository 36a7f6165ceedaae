"""The VectorStore conformance suite against the Pinecone store, talking to a FAKE Pinecone on loopback."""

from __future__ import annotations

import pytest

from ragkit.testing.vector_store_conformance import VectorStoreConformance

INSTALL = "pip install -c constraints.txt -e connectors/pinecone"
pytest.importorskip("pinecone", reason=f"needs the official pinecone client: {INSTALL}")
pytest.importorskip("ragkit_pinecone", reason=f"needs the connector installed: {INSTALL}")


class TestPineconeStore(VectorStoreConformance):
    @pytest.fixture
    def make_store(self, pinecone_store):
        return pinecone_store
