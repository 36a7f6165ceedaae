"""LangChain's own standard suites (``langchain-tests``), unmodified, over ragkit.

``VectorStoreIntegrationTests`` (sync and async) runs on a fresh ragkit
collection per test, embedding with the suite's own ``DeterministicFakeEmbedding``
through ``embedder.langchain``; ``RetrieversIntegrationTests`` runs ragkit's
``basic`` pipeline over a real collection embedded by the packaged model.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests, VectorStoreIntegrationTests
from ragkit_langchain import RagkitRetriever, RagkitVectorStore

from ragkit import Collection

CAPITALS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "Madrid is the capital of Spain.",
    "Rome is the capital of Italy.",
    "Lisbon is the capital of Portugal.",
]


class TestRagkitVectorStore(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path: Path) -> Iterator[VectorStore]:  # type: ignore[override]
        """An empty store: a new collection in a fresh folder."""
        store = RagkitVectorStore("standard", self.get_embeddings(), store_dir=tmp_path)
        try:
            yield store
        finally:
            store.collection.close()


@cache
def _capitals_collection() -> Collection:
    """A real collection (packaged embedder) of five sentences, built once for the retriever suite."""
    home = Path(mkdtemp(prefix="ragkit-lc-retriever-"))
    collection = Collection.create("capitals", store_dir=home)
    collection.add_texts(CAPITALS)
    return collection


class TestRagkitRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return RagkitRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"collection": _capitals_collection(), "pipeline": "basic", "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "Which city is the capital of France?"
