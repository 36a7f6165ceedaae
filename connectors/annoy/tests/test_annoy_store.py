"""What the Annoy store adds to the conformance suite: the forest's recall, lazy rebuilds, files, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ragkit_annoy import AnnoyStore

from ragkit import registry
from ragkit.errors import ConfigError
from ragkit.filters import parse_filter
from ragkit.testing.vector_store_conformance import make_chunk, unit_vectors

DIM = 32


def clustered(count: int, seed: int) -> np.ndarray:
    """Unit vectors around 20 centres (embeddings-like: neighbours are much closer than strangers)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(20, DIM))
    vectors = centres[rng.integers(0, 20, count)] + rng.normal(size=(count, DIM)) * 0.5
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def fill(store: AnnoyStore, vectors: np.ndarray, start: int = 0) -> list:
    chunks = [
        make_chunk(str(start + i), source=f"src{(start + i) % 3}.md", metadata={"n": start + i})
        for i in range(len(vectors))
    ]
    store.upsert(chunks, vectors)
    return chunks


def test_the_forest_finds_most_true_neighbours_with_default_search_options(tmp_path: Path) -> None:
    """Approximate by default: recall@10 against brute force stays high on embeddings-like data."""
    store = AnnoyStore(tmp_path / "s", DIM, exact_below=0)  # more vectors than search_k gathers candidates
    vectors = clustered(12_000, seed=1)
    fill(store, vectors)
    queries = clustered(50, seed=2)
    results = store.search(queries, 10)
    assert store.stats()["index"] == "annoy"
    found = 0
    for query, hits in zip(queries, results, strict=True):
        truth = {f"id-{i}" for i in np.argsort(-(vectors @ query))[:10]}
        assert len(hits) == 10
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        found += len(truth & {h.chunk.id for h in hits})
    assert found / 500 >= 0.9
    store.close()


def test_a_write_marks_the_forest_stale_and_the_next_search_rebuilds_it(tmp_path: Path) -> None:
    store = AnnoyStore(tmp_path / "s", DIM, exact_below=0, n_trees=4, search_k=100_000)  # exhaustive at this size
    vectors = unit_vectors(300, DIM, seed=3)
    chunks = fill(store, vectors)
    store.search(vectors[:1], 1)
    assert store.stats()["stale"] is False
    newcomer = make_chunk("new", metadata={"n": -1})
    query = unit_vectors(1, DIM, seed=4)
    store.upsert([newcomer], query)
    assert store.stats()["stale"] is True
    assert store.search(query, 1)[0][0].chunk.id == newcomer.id
    assert store.stats()["stale"] is False
    assert store.delete_documents([newcomer.document_id]) == 1
    best = int(np.argmax(vectors @ query[0]))
    assert store.search(query, 1)[0][0].chunk.id == chunks[best].id
    store.close()


def test_flush_saves_the_forest_and_reopening_memory_maps_it(tmp_path: Path) -> None:
    store = AnnoyStore(tmp_path / "s", DIM, exact_below=0, n_trees=4)
    vectors = unit_vectors(200, DIM, seed=5)
    fill(store, vectors)
    store.close()
    names = {p.name for p in (tmp_path / "s").iterdir()}
    assert {"vectors.annoy", "vectors.npy", "rowids.npy", "annoy.json"} <= names
    reopened = AnnoyStore(tmp_path / "s", DIM, exact_below=0, n_trees=4)
    stats = reopened.stats()
    assert (stats["index"], stats["stale"], stats["memory_mapped"]) == ("annoy", False, True)
    assert reopened.search(vectors[7:8], 1)[0][0].chunk.id == "id-7"
    reopened.close()


def test_other_build_options_or_unflushed_writes_rebuild_from_the_database(tmp_path: Path) -> None:
    store = AnnoyStore(tmp_path / "s", DIM, exact_below=0, n_trees=4)
    vectors = unit_vectors(200, DIM, seed=6)
    fill(store, vectors[:100])
    store.flush()
    fill(store, vectors[100:], start=100)  # written to SQLite, the forest on disk not yet saved (a crash now)
    other = AnnoyStore(tmp_path / "s", DIM, exact_below=0, n_trees=4)
    assert other.stats()["stale"] is True
    assert other.search(vectors[150:151], 1)[0][0].chunk.id == "id-150"
    other.close()
    store.close()
    more_trees = AnnoyStore(tmp_path / "s", DIM, exact_below=0, n_trees=6)
    assert more_trees.stats()["stale"] is True
    assert more_trees.search(vectors[3:4], 1)[0][0].chunk.id == "id-3"
    more_trees.close()


@pytest.mark.parametrize("exact_filter_limit", [1, 50_000], ids=["over-fetch", "exact-subset"])
def test_dot_metric_with_filters_matches_brute_force(tmp_path: Path, exact_filter_limit: int) -> None:
    """``metric: dot``, filtered both ways (over-fetching from Annoy, or exact over the matching vectors)."""
    store = AnnoyStore(
        tmp_path / "s",
        DIM,
        metric="dot",
        exact_below=0,
        n_trees=4,
        search_k=100_000,
        exact_filter_limit=exact_filter_limit,
    )
    vectors = unit_vectors(400, DIM, seed=8)
    fill(store, vectors)
    query = unit_vectors(1, DIM, seed=9)[0]
    flt = parse_filter('source == "src1.md" and n >= 100')
    hits = store.search(query[None, :], 5, flt)[0]
    allowed = [i for i in range(400) if i % 3 == 1 and i >= 100]
    truth = sorted(allowed, key=lambda i: -float(vectors[i] @ query))[:5]
    assert [h.chunk.id for h in hits] == [f"id-{i}" for i in truth]
    assert hits[0].score == pytest.approx(float(vectors[truth[0]] @ query), abs=1e-5)
    store.close()


def test_small_collections_are_searched_exactly_without_a_forest(tmp_path: Path) -> None:
    store = AnnoyStore(tmp_path / "s", DIM, exact_below=500)
    fill(store, unit_vectors(100, DIM, seed=10))
    store.close()
    assert not (tmp_path / "s" / "vectors.annoy").exists()
    assert AnnoyStore(tmp_path / "s", DIM, exact_below=500).stats()["index"] == "exact"


@pytest.mark.parametrize(
    "options",
    [{"metric": "euclidean"}, {"search_k": 0}, {"n_trees": 0}, {"exact_below": -1}, {"n_jobs": 0}],
)
def test_bad_options_are_refused_when_built(tmp_path: Path, options: dict) -> None:
    with pytest.raises(ConfigError, match="store 'annoy'"):
        AnnoyStore(tmp_path / "s", DIM, **options)


def test_registered_as_store_annoy_and_round_trips_its_config(tmp_path: Path) -> None:
    cls = registry.get("store", "annoy")
    assert cls is AnnoyStore
    store = AnnoyStore(tmp_path / "s", DIM, n_trees=7, metric="dot")
    config = store.to_config()
    assert config == {
        "type": "annoy",
        "n_trees": 7,
        "search_k": 10_000,
        "metric": "dot",
        "exact_below": 10_000,
        "exact_filter_limit": 50_000,
        "seed": 1,
        "n_jobs": -1,
    }
    store.close()
