"""The store contract: building with injected values, declared capabilities, and the home's folder layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ragkit import registry
from ragkit.collection import HomeLayout
from ragkit.errors import ConfigError, InputError
from ragkit.protocols import capabilities_of
from ragkit.stores.base import StoreBase, build_store, store_stats
from ragkit.stores.faiss_store import FaissStore


def test_a_collection_builds_its_store_with_injected_path_dimension_and_name(tmp_path: Path) -> None:
    store = build_store({"type": "faiss", "index": "flat"}, path=tmp_path / "store", dimension=8, name="docs")
    assert isinstance(store, FaissStore)
    assert store.path == tmp_path / "store" and store.dimension == 8 and store.name == "docs"
    assert store.to_config()["index"] == "flat" and not {"path", "dimension", "name", "read_only"} & set(
        store.to_config()
    )
    store.close()
    with pytest.raises(ConfigError, match="unknown option"):
        build_store({"type": "faiss", "colour": "blue"}, path=tmp_path / "x", dimension=8, name="docs")
    with pytest.raises(ConfigError, match="building it needs path and dimension"):
        FaissStore.from_config({"index": "flat"})


class _OldStyleStore:
    """A store registered before StoreBase existed: built as cls(path=, dimension=, name=, **options)."""

    def __init__(self, path: Path, dimension: int, name: str, colour: str = "red") -> None:
        self.path, self.dimension, self.name, self.colour = path, dimension, name, colour

    def count(self) -> int:
        return 7


def test_a_store_class_without_the_base_is_still_built_the_old_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry._registry, ("store", "old-style-test"), _OldStyleStore)  # registered for this test
    store: Any = build_store({"type": "old-style-test", "colour": "blue"}, path=tmp_path, dimension=3, name="n")
    assert (store.path, store.dimension, store.name, store.colour) == (tmp_path, 3, "n", "blue")
    assert capabilities_of(store) == frozenset()
    assert store_stats(store) == {"chunks": 7}  # no declared ``stats``: the count alone
    with pytest.raises(ConfigError, match="old-style-test"):
        build_store({"type": "old-style-test", "shape": "round"}, path=tmp_path, dimension=3, name="n")


def test_capabilities_are_declared_and_checked_when_the_class_is_made() -> None:
    assert capabilities_of(FaissStore.__new__(FaissStore)) == {"stats", "chunks_of_documents", "refresh"}
    with pytest.raises(TypeError, match="unknown capabilities"):

        class _Boasting(StoreBase):
            capabilities = frozenset({"time_travel"})


def test_the_home_layout_names_every_folder(tmp_path: Path) -> None:
    layout = HomeLayout(tmp_path)
    folder = layout.collection("docs")
    assert folder.config_file == tmp_path / "collections" / "docs" / "collection.yaml"
    assert (folder.store, folder.lexical) == (folder.path / "store", folder.path / "lexical")
    assert folder.home == layout and layout.embedding_cache == tmp_path / "cache" / "embeddings.sqlite"
    assert layout.documents("docs") == tmp_path / "documents" / "docs" and layout.staging == tmp_path / "staging"
    assert layout.collection_names() == []
    folder.path.mkdir(parents=True)
    folder.config_file.write_text("{}")
    assert layout.collection_names() == ["docs"]
    with pytest.raises(InputError, match="not valid"):
        layout.collection("../escape")


def test_the_service_reads_creation_times_through_the_layout(tmp_path: Path) -> None:
    from ragkit.service.stores import CollectionCache

    cache = CollectionCache(tmp_path)
    assert cache.created("missing") == 0
    folder = HomeLayout(tmp_path).collection("docs")
    folder.path.mkdir(parents=True)
    folder.config_file.write_text("{}")
    assert cache.created("docs") == int(folder.config_file.stat().st_mtime) > 0
