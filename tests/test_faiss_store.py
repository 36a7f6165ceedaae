"""The FAISS + SQLite store: conformance, index kinds, and crash safety."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragkit.errors import ConfigError, StorageError
from ragkit.filters import parse_filter
from ragkit.schema import Chunk, SourceRecord
from ragkit.stores.faiss_store import FaissStore
from ragkit.testing.vector_store_conformance import VectorStoreConformance

from .readonly import read_only_folder


class TestFaissConformance(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        return lambda path, dimension: FaissStore(path=path, dimension=dimension)


class TestFaissHnswConformance(VectorStoreConformance):
    @pytest.fixture
    def make_store(self):
        return lambda path, dimension: FaissStore(path=path, dimension=dimension, index="hnsw")


def unit_vectors(n, d=16, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_chunks(n, source="s.md", start=0):
    return [
        Chunk(
            id=f"{source}-{i}",
            document_id=f"{source}-doc",
            source=source,
            text=f"chunk {i}",
            start=i,
            end=i + 1,
            metadata={"i": i, "even": i % 2 == 0},
        )
        for i in range(start, start + n)
    ]


def test_ivf_index_above_threshold_finds_nearly_what_exact_search_finds(tmp_path):
    vectors = unit_vectors(3000)
    chunks = make_chunks(3000)
    approx = FaissStore(path=tmp_path / "ivf", dimension=16, approximate_threshold=1000, nlist=32, nprobe=8)
    exact = FaissStore(path=tmp_path / "flat", dimension=16, index="flat")
    for store in (approx, exact):
        store.upsert(chunks, vectors)
    assert approx.stats()["index"] == "ivf" and exact.stats()["index"] == "flat"
    queries = unit_vectors(50, seed=1)
    found = approx.search(queries, 10)
    truth = exact.search(queries, 10)
    overlaps = [len({h.chunk.id for h in f} & {h.chunk.id for h in t}) for f, t in zip(found, truth, strict=True)]
    recall = np.mean(overlaps) / 10
    assert recall >= 0.8
    # deletions reach the IVF index, and a filtered search is exact over the matches
    approx.delete_documents(["s.md-doc"])
    assert approx.search(queries[:1], 5) == [[]]


def test_filtered_search_on_ivf_returns_the_true_best_matches(tmp_path):
    vectors = unit_vectors(2000)
    store = FaissStore(path=tmp_path / "s", dimension=16, index="ivf", nlist=16, nprobe=1)
    store.upsert(make_chunks(2000), vectors)
    query = unit_vectors(1, seed=5)
    hits = store.search(query, 5, parse_filter("i < 40"))
    expected = np.argsort(-(vectors[:40] @ query[0]))[:5]
    assert [h.chunk.metadata["i"] for h in hits[0]] == list(expected)


def test_hnsw_hides_deleted_vectors_and_survives_reopen(tmp_path):
    store = FaissStore(path=tmp_path / "h", dimension=16, index="hnsw")
    vectors = unit_vectors(200)
    store.upsert(make_chunks(100, "a"), vectors[:100])
    store.upsert(make_chunks(100, "b"), vectors[100:])
    store.delete_sources(["a"])
    hits = store.search(vectors[:10], 3)
    assert all(h.chunk.source == "b" for row in hits for h in row)
    store.close()
    reopened = FaissStore(path=tmp_path / "h", dimension=16, index="hnsw")
    assert reopened.count() == 100
    assert all(h.chunk.source == "b" for h in reopened.search(vectors[:1], 5)[0])


def test_a_crash_before_flush_is_repaired_from_sqlite(tmp_path):
    store = FaissStore(path=tmp_path / "c", dimension=16)
    vectors = unit_vectors(20)
    store.upsert(make_chunks(10), vectors[:10])
    store.flush()
    # a second batch commits to SQLite, then the process "dies" before the index is saved
    store.upsert(make_chunks(10, start=10), vectors[10:])
    meta_before = json.loads((tmp_path / "c" / "vectors.json").read_text())
    assert meta_before["count"] == 10
    del store  # no close(), no flush
    reopened = FaissStore(path=tmp_path / "c", dimension=16)
    assert reopened.count() == 20
    assert reopened.search(vectors[15:16], 1)[0][0].chunk.id == "s.md-15"


def test_a_corrupt_index_file_is_rebuilt(tmp_path):
    store = FaissStore(path=tmp_path / "c", dimension=16)
    vectors = unit_vectors(5)
    store.upsert(make_chunks(5), vectors)
    store.close()
    (tmp_path / "c" / "vectors.faiss").write_bytes(b"garbage")
    reopened = FaissStore(path=tmp_path / "c", dimension=16)
    assert reopened.search(vectors[2:3], 1)[0][0].chunk.id == "s.md-2"


def test_read_only_folder_can_be_searched_but_not_written(tmp_path):
    folder = tmp_path / "ro"
    store = FaissStore(path=folder / "store", dimension=16)
    vectors = unit_vectors(5)
    store.upsert(make_chunks(5), vectors)
    store.commit_sources([SourceRecord("s.md", "h", chunk_ids=[f"s.md-{i}" for i in range(5)])])
    store.close()
    with read_only_folder(folder):
        reader = FaissStore(path=folder / "store", dimension=16)
        assert reader.search(vectors[:1], 1)[0][0].chunk.id == "s.md-0"
        with pytest.raises(StorageError, match=r"store folder .*ro/store is read-only"):
            reader.upsert(make_chunks(1, start=9), vectors[:1])
        assert reader.count() == 5


def test_config_validation_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="index must be one of"):
        FaissStore(path=tmp_path, dimension=4, index="annoy")
    with pytest.raises(ConfigError, match="nprobe must be positive"):
        FaissStore(path=tmp_path, dimension=4, nprobe=0)
    store = FaissStore(path=tmp_path / "x", dimension=4, index="hnsw", ef_search=40)
    config = store.to_config()
    assert config["type"] == "faiss" and config["index"] == "hnsw" and config["ef_search"] == 40
    assert "path" not in config and "dimension" not in config
    again = FaissStore.from_config({**config, "path": tmp_path / "x", "dimension": 4})
    assert again.to_config() == config


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_broad_filters_go_through_the_index_with_a_selector(tmp_path, kind):
    vectors = unit_vectors(2000)
    # exact_filter_limit=10 sends every filter with more matches through the index's own selector
    store = FaissStore(path=tmp_path / kind, dimension=16, index=kind, nlist=16, nprobe=16, exact_filter_limit=10)
    store.upsert(make_chunks(2000), vectors)
    store.delete_documents([])  # no-op keeps the index as built
    queries = unit_vectors(20, seed=3)
    hits = store.search(queries, 5, parse_filter("even and i >= 100"))
    allowed = np.array([i for i in range(2000) if i % 2 == 0 and i >= 100])
    for query, row in zip(queries, hits, strict=True):
        assert row and all(h.chunk.metadata["even"] and h.chunk.metadata["i"] >= 100 for h in row)
        truth = allowed[np.argsort(-(vectors[allowed] @ query))[:5]]
        if kind == "flat":
            assert [h.chunk.metadata["i"] for h in row] == truth.tolist()
    # rows deleted after the columns were built are not returned
    store.delete_sources(["s.md"])
    assert store.search(queries[:1], 5, parse_filter("even")) == [[]]
