"""Fixtures: a FAKE Pinecone service per test (no Pinecone server can run here), and a store factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported in the fixtures: the test modules skip when the connector is not installed
    from ragkit_pinecone import PineconeStore
    from ragkit_pinecone.testing import FakePineconeServer


@pytest.fixture
def fake_pinecone(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePineconeServer]:
    """A fresh fake Pinecone service on loopback, its key in ``PINECONE_API_KEY``; stopped after the test."""
    from ragkit_pinecone.testing import FakePineconeServer

    with FakePineconeServer() as fake:
        monkeypatch.setenv("PINECONE_API_KEY", fake.api_key)
        yield fake


@pytest.fixture
def pinecone_store(fake_pinecone: FakePineconeServer) -> Callable[..., PineconeStore]:
    """Builds stores on the fake: index ``conformance``, one namespace per store folder."""

    from ragkit_pinecone import PineconeStore

    def make(path: Path, dimension: int, **options: Any) -> PineconeStore:
        settings: dict[str, Any] = {
            "index": "conformance",
            "namespace": Path(path).name,
            "host": fake_pinecone.url,
            "retries": 0,
            **options,
        }
        return PineconeStore(path=path, dimension=dimension, name="conformance", **settings)

    return make
