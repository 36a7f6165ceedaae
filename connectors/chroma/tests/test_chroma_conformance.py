"""The VectorStore conformance suite against Chroma: embedded in process, and a real Chroma server on loopback."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("chromadb") is None or importlib.util.find_spec("ragkit_chroma") is None:
    pytest.skip(
        "ragkit-chroma or chromadb is not installed: pip install -c constraints.txt -e connectors/chroma",
        allow_module_level=True,
    )

from ragkit_chroma import ChromaStore

from ragkit.hashing import content_hash
from ragkit.testing.vector_store_conformance import VectorStoreConformance


class TestEmbeddedChromaStore(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        def make(path, dimension):
            return ChromaStore(path=path, dimension=dimension, name="conformance")

        return make


class TestChromaServerStore(VectorStoreConformance):
    """The same suite through ``chromadb.HttpClient`` against a real ``chroma run`` server on loopback."""

    @pytest.fixture
    def make_store(self, chroma_server):
        def make(path, dimension):
            # one Chroma collection per store folder, so each test starts empty and a reopen finds its data
            return ChromaStore(
                path=path, dimension=dimension, name="conformance", url=chroma_server, collection=collection_for(path)
            )

        return make


def collection_for(path) -> str:
    """A Chroma collection name unique to a test's store folder."""
    return "t-" + content_hash(str(path))[:24]
