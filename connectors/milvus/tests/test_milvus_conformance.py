"""The VectorStore conformance suite against Milvus Lite (exact and HNSW indexes)."""

from __future__ import annotations

import pytest
from ragkit_milvus import MilvusStore

from ragkit.testing.vector_store_conformance import VectorStoreConformance


class TestMilvusLiteStore(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        def make(path, dimension):
            return MilvusStore(path=path, dimension=dimension, name="conformance")

        return make


class TestMilvusLiteHnswStore(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        def make(path, dimension):
            return MilvusStore(path=path, dimension=dimension, name="conformance", index="hnsw")

        return make
