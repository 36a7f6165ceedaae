"""``ragkit collections reindex`` and :func:`ragkit.collection.reindex` (issue 14, item 16).

A collection's config could never change (a new splitter option was a
ConflictError; the only way was delete and re-ingest). A reindex rebuilds it
from its recorded sources into a new generation beside the live one, which
keeps serving until the new one is swapped in atomically; a failure, a cancel
or missing files leave the collection exactly as it was.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragkit import registry
from ragkit.collection import Collection, reindex_collection
from ragkit.collection.reindex import exchange
from ragkit.errors import ConfigError, ConflictError, InputError

WIDE = {"splitter": {"type": "recursive", "chunk_size": 1000, "chunk_overlap": 0}}
NARROW = {"splitter": {"type": "recursive", "chunk_size": 200, "chunk_overlap": 0}}

TOPICS = {
    "lighthouses.txt": "The Eddystone lighthouse stands on rocks fourteen kilometres south of Plymouth.",
    "volcanoes.txt": "Mount Etna on Sicily is the most active volcano in Europe and erupts every few years.",
    "glaciers.txt": "The Aletsch glacier in the Swiss Alps is the largest glacier of the Alps, twenty kilometres long.",
}


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, sentence in TOPICS.items():
        paragraphs = [
            f"{sentence} Paragraph {i} adds a little more about it, and then a little more." for i in range(25)
        ]
        (folder / name).write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return folder


def _config(tmp_path: Path, name: str, config: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ragkit.cli", *map(str, args)], capture_output=True, text=True, timeout=600, check=False
    )


def _show(home: Path, name: str = "notes") -> dict[str, Any]:
    shown = _cli("collections", "show", name, "--json", "--store-dir", home)
    assert shown.returncode == 0, shown.stderr
    info: dict[str, Any] = json.loads(shown.stdout)
    return info


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "collections").iterdir() if p.name.startswith("."))


@pytest.fixture()
def ingested(tmp_path: Path) -> tuple[Path, Path]:
    """A home with collection 'notes' (three text files, 1,000-character chunks), ingested by the CLI."""
    home, corpus = tmp_path / "home", _corpus(tmp_path / "corpus")
    made = _cli("ingest", corpus, "-c", "notes", "--config", _config(tmp_path, "wide", WIDE), "--store-dir", home)
    assert made.returncode == 0, made.stderr
    return home, corpus


def test_cli_reindex_puts_the_new_config_in_effect_and_leaves_no_old_generation(
    ingested: tuple[Path, Path], tmp_path: Path
) -> None:
    home, corpus = ingested
    before = _show(home)
    refused = _cli(
        "ingest", corpus, "-c", "notes", "--config", _config(tmp_path, "narrow", NARROW), "--store-dir", home
    )
    assert refused.returncode == ConflictError.exit_code, "a new config on ingest is still refused"

    done = _cli("collections", "reindex", "notes", "--config", tmp_path / "narrow.yaml", "--store-dir", home)
    assert done.returncode == 0, done.stderr
    assert "reindexed 3 sources" in done.stdout

    after = _show(home)
    assert after["config"]["splitter"]["chunk_size"] == 200
    assert after["stats"]["sources"] == 3
    assert after["stats"]["chunks"] > 2 * before["stats"]["chunks"], (before["stats"], after["stats"])
    assert _leftovers(home) == [], "the old generation and the staging folder are gone"
    again = _cli("ingest", corpus, "-c", "notes", "--config", tmp_path / "narrow.yaml", "--store-dir", home)
    assert again.returncode == 0 and "unchanged 3" in again.stdout, again.stdout + again.stderr
    hits = _cli("search", "Which volcano erupts every few years?", "-c", "notes", "--json", "--store-dir", home)
    assert hits.returncode == 0, hits.stderr
    assert "Etna" in json.loads(hits.stdout)["hits"][0]["text"]


def test_missing_source_files_are_refused_by_name_unless_dropped(ingested: tuple[Path, Path], tmp_path: Path) -> None:
    home, corpus = ingested
    before = _show(home)
    (corpus / "glaciers.txt").unlink()
    narrow = _config(tmp_path, "narrow", NARROW)

    refused = _cli("collections", "reindex", "notes", "--config", narrow, "--store-dir", home)
    assert refused.returncode == ConflictError.exit_code, refused.stderr
    assert "glaciers.txt" in refused.stderr and "--drop-missing" in refused.stderr
    assert _show(home) == before, "nothing changed"
    assert _leftovers(home) == []

    dropped = _cli("collections", "reindex", "notes", "--config", narrow, "--drop-missing", "--store-dir", home)
    assert dropped.returncode == 0, dropped.stderr
    assert "glaciers.txt" in dropped.stderr and "reindexed 2 sources" in dropped.stdout
    assert _show(home)["stats"]["sources"] == 2


def test_during_the_rebuild_the_old_generation_serves_and_other_writers_are_kept_out(
    ingested: tuple[Path, Path],
) -> None:
    home, corpus = ingested
    entered, gate = threading.Event(), threading.Event()

    def hold(stage: str, done: int, total: int) -> None:
        if stage == "files" and not gate.is_set():
            entered.set()
            assert gate.wait(300)

    outcome: dict[str, Any] = {}

    def run() -> None:
        with Collection.open("notes", home) as live:
            try:
                outcome["report"] = reindex_collection(live, NARROW, progress=hold)
            except BaseException as exc:
                outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert entered.wait(300), "the rebuild started"
        assert len(_leftovers(home)) == 1, "the new generation is built beside the live one"
        with Collection.open("notes", home) as reader:
            old_chunks = reader.store.count()
            assert reader.config.splitter["chunk_size"] == 1000
            assert "Eddystone" in reader.search("Where is the Eddystone lighthouse?", top_k=1)[0].chunk.text
        blocked = _cli("ingest", corpus, "-c", "notes", "--store-dir", home)
        assert blocked.returncode == ConflictError.exit_code, blocked.stdout + blocked.stderr
        assert "another ingest into collection 'notes' is running" in blocked.stderr
    finally:
        gate.set()
        worker.join(600)
    assert "error" not in outcome, outcome
    report = outcome["report"]
    assert report.chunks_before == old_chunks and report.chunks_after > old_chunks
    with Collection.open("notes", home) as reopened:
        assert reopened.config.splitter["chunk_size"] == 200
        assert reopened.store.count() == report.chunks_after
    assert _leftovers(home) == []


def test_a_failing_or_cancelled_rebuild_leaves_the_collection_as_it_was(
    ingested: tuple[Path, Path], tmp_path: Path
) -> None:
    home, _ = ingested
    before = _show(home)
    failing = {**NARROW, "loader": {"max_file_bytes": 100}}  # every file is larger than that

    refused = _cli(
        "collections", "reindex", "notes", "--config", _config(tmp_path, "failing", failing), "--store-dir", home
    )
    assert refused.returncode == InputError.exit_code, refused.stderr
    assert "100" in refused.stderr and "3 of its sources" in refused.stderr, refused.stderr
    assert "the collection is unchanged" in refused.stderr
    assert _show(home) == before and _leftovers(home) == []

    class Stop(Exception):
        pass

    calls: list[int] = []

    def cancel_on_second_call() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with Collection.open("notes", home) as live:
        with pytest.raises(Stop):
            reindex_collection(live, NARROW, checkpoint=cancel_on_second_call)
        assert "Etna" in live.search("Which volcano erupts every few years?", top_k=1)[0].chunk.text
    assert _show(home) == before and _leftovers(home) == []


def test_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "which").write_text("first")
    (second / "which").write_text("second")
    if not exchange(first, second):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here; reindex falls back to two renames")
    assert (first / "which").read_text() == "second" and (second / "which").read_text() == "first"


def test_a_store_keeping_its_data_outside_the_folder_is_refused(
    ingested: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two generations of a Milvus-like store would share one outside collection: refused before anything is built."""

    class OutsideStore:
        capabilities = frozenset({"drop"})

    monkeypatch.setitem(registry._registry, ("store", "outside-test"), OutsideStore)
    home, _ = ingested
    before = _show(home)
    with Collection.open("notes", home) as live, pytest.raises(ConfigError, match="outside the collection folder"):
        reindex_collection(live, {**NARROW, "store": {"type": "outside-test"}})
    assert _show(home) == before and _leftovers(home) == []


def test_without_renameat2_the_swap_falls_back_to_two_renames(
    ingested: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the C library or the file system lacks RENAME_EXCHANGE (simulated), two renames do the swap."""
    module = importlib.import_module("ragkit.collection.reindex")
    monkeypatch.setattr(module, "exchange", lambda first, second: False)
    home, _ = ingested
    with Collection.open("notes", home) as live:
        report = live.reindex(NARROW)
        assert report.swap == "rename"
        assert live.config.splitter["chunk_size"] == 200, "Collection.reindex leaves the object on the new generation"
        assert live.store.count() == report.chunks_after
        assert "Etna" in live.search("Which volcano erupts every few years?", top_k=1)[0].chunk.text
    assert _show(home)["config"]["splitter"]["chunk_size"] == 200
    assert _leftovers(home) == []
