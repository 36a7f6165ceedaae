"""The VectorStore conformance suite against Chroma: embedded in process, and a real Chroma server on loopback."""

from __future__ import annotations

import pytest
from ragkit_chroma import ChromaStore

from ragkit.testing.vector_store_conformance import VectorStoreConformance


class TestEmbeddedChromaStore(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        def make(path, dimension):
            return ChromaStore(path=path, dimension=dimension, name="conformance")

        return make
