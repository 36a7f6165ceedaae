"""Fixtures: a FAKE Pinecone service per test (no Pinecone server can run here), and a store factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ragkit_pinecone import PineconeStore
from ragkit_pinecone.testing import FakePineconeServer


@pytest.fixture
def fake_pinecone(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePineconeServer]:
    """A fresh fake Pinecone service on loopback, its key in ``PINECONE_API_KEY``; stopped after the test."""
    with FakePineconeServer() as fake:
        monkeypatch.setenv("PINECONE_API_KEY", fake.api_key)
        yield fake


@pytest.fixture
def pinecone_store(fake_pinecone: FakePineconeServer) -> Callable[..., PineconeStore]:
    """Builds stores on the fake: index ``conformance``, one namespace per store folder."""

    def make(path: Path, dimension: int, **options: object) -> PineconeStore:
        settings: dict[str, object] = {
            "index": "conformance",
            "namespace": Path(path).name,
            "host": fake_pinecone.url,
            "retries": 0,
            **options,
        }
        return PineconeStore(path=path, dimension=dimension, name="conformance", **settings)  # type: ignore[arg-type]

    return make
