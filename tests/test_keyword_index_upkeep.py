"""A collection's keyword index: kept up to date by each ingest, rebuilt only when it cannot be trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragkit import Collection
from ragkit.lexical import DB_FILE


@pytest.fixture
def home(sample_store: Path, tmp_path: Path) -> Path:
    """A private copy of the sample store (five documents, default config), so tests may change it."""
    copy = tmp_path / "home"
    shutil.copytree(sample_store, copy)
    return copy


def _index_file(collection: Collection) -> Path:
    return collection.files.lexical / DB_FILE


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def test_an_added_file_is_indexed_without_rebuilding_the_index(home: Path, tmp_path: Path) -> None:
    col = Collection.open("sample", store_dir=home)
    col.search("Black Death", mode="lexical")
    before = _identity(_index_file(col))
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "quokka.md").write_text("# Quokkas\n\nThe quokka marmalade festival is held on Rottnest Island.\n")
    report = col.ingest(extra)
    assert report.added == 1 and "lexical" in report.stage_seconds
    assert _identity(_index_file(col)) == before  # updated in place: a rebuild swaps in a new folder
    [best, *_] = col.search("quokka marmalade", top_k=3, mode="lexical")
    assert best.chunk.source.endswith("quokka.md")
    assert col.lexical is not None and col.lexical.count() == col.store.count()
    source = best.chunk.source
    assert col.delete_sources([source]) > 0
    hits = col.search("quokka marmalade", top_k=3, mode="lexical")
    assert all(hit.chunk.source != source for hit in hits)
    assert col.lexical.count() == col.store.count()
    col.close()


def test_keyword_search_reads_chunks_from_the_index_not_the_vector_store(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    col = Collection.open("sample", store_dir=home)
    expected = [hit.chunk.to_dict() for hit in col.search("Super Bowl 50 stadium", top_k=3, mode="lexical")]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("keyword search asked the vector store for chunks")

    monkeypatch.setattr(col.store, "get", refuse)
    monkeypatch.setattr(col.store, "iter_chunks", refuse)
    hits = col.search("Super Bowl 50 stadium", top_k=3, mode="lexical")
    assert [hit.chunk.to_dict() for hit in hits] == expected and all(hit.origin == "lexical" for hit in hits)
    col.close()


def test_an_index_in_the_old_format_is_rebuilt_once_from_the_chunk_store(home: Path) -> None:
    col = Collection.open("sample", store_dir=home)
    expected = [(h.chunk.id, h.score) for h in col.search("plague in Europe", top_k=4, mode="lexical")]
    col.close()
    folder = col.files.lexical
    shutil.rmtree(folder)  # what the previous version left: bm25s files and chunks.jsonl, no index.sqlite
    folder.mkdir()
    (folder / "params.index.json").write_text("{}")
    (folder / "chunks.jsonl").write_text(json.dumps({"id": "old", "fields": {}}) + "\n")

    reopened = Collection.open("sample", store_dir=home)
    assert reopened.lexical is not None and reopened.lexical.outdated
    hits = reopened.search("plague in Europe", top_k=4, mode="lexical")
    assert [h.chunk.id for h in hits] == [chunk_id for chunk_id, _ in expected]
    assert [h.score for h in hits] == pytest.approx([score for _, score in expected])
    assert (folder / DB_FILE).exists() and not (folder / "chunks.jsonl").exists()
    rebuilt = _identity(folder / DB_FILE)
    reopened.search("plague", mode="lexical")
    assert _identity(folder / DB_FILE) == rebuilt  # once: the next search uses it as it is
    reopened.close()


def test_a_stale_marker_left_by_a_crash_makes_the_next_search_rebuild(home: Path) -> None:
    col = Collection.open("sample", store_dir=home)
    expected = [h.chunk.id for h in col.search("packet switching", top_k=3, mode="lexical")]
    assert col.lexical is not None
    col.lexical.delete_sources(sorted(col.store.sources()))  # the index lost chunks the vectors kept ...
    col.files.lexical_stale.touch()  # ... while a write that never finished had marked it
    assert [h.chunk.id for h in col.search("packet switching", top_k=3, mode="lexical")] == expected
    assert not col.files.lexical_stale.exists()
    col.close()
