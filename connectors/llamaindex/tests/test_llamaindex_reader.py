"""LlamaIndex readers as ragkit loaders: llama_index.core's SimpleDirectoryReader and JSONReader, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_index.core import Document as LIDocument
from ragkit_llamaindex.reader import LlamaIndexLoader, ragkit_metadata

from ragkit import Collection, registry
from ragkit.errors import ConfigError

SIMPLE = "llama_index.core.SimpleDirectoryReader"
JSON_READER = "llama_index.core.readers.json.JSONReader"


def test_readers_ingest_files_with_ragkit_sources_and_metadata(tmp_path: Path, squad: Path):
    data = tmp_path / "data"
    (data / "history").mkdir(parents=True)
    full = (squad / "0002-normans.md").read_text(encoding="utf-8")
    opening = full[: full.find("\n\n", 3000)] + "\n"  # a few paragraphs keep the test fast
    (data / "history" / "normans.mdx").write_text(opening, encoding="utf-8")
    (data / "cities.json").write_text(json.dumps([{"city": "Paris", "country": "France"}, {"city": "Lisbon"}]))
    config = {
        "loader": {
            "loaders": {
                ".mdx": {"type": "llamaindex", "reader": SIMPLE, "kwargs": {"encoding": "utf-8"}},
                ".json": {"type": "llamaindex", "reader": JSON_READER, "kwargs": {"levels_back": 0}},
            }
        }
    }
    with Collection.create("read", config, store_dir=tmp_path / "home") as col:
        report = col.ingest(data)
        assert (report.added, report.failed) == (2, [])
        [hit] = col.search("Who was the leader of the Norse raiders?", top_k=1)
        chunk = hit.chunk
        assert chunk.source == "history/normans.mdx" and "Rollo" in chunk.text  # relative, as ragkit's loaders
        assert chunk.metadata["file_name"] == "normans.mdx" and chunk.metadata["file_type"] == "mdx"
        assert chunk.metadata["uri"] == (data / "history" / "normans.mdx").absolute().as_uri()
        assert "file_path" not in chunk.metadata and "last_accessed_date" not in chunk.metadata
        assert chunk.metadata["file_size"] == (data / "history" / "normans.mdx").stat().st_size
        assert opening[chunk.start : chunk.end] == chunk.text  # the reader kept the text: offsets are exact
        [city] = col.search("Lisbon", top_k=1, mode="lexical", filters={"source": "cities.json"})
        assert "Lisbon" in city.chunk.text
        # unchanged files cost nothing the second time (no metadata that changes on every read)
        again = col.ingest(data)
        assert (again.added, again.updated, again.unchanged) == (0, 0, 2)


def test_page_labels_become_ragkit_pages():
    meta = {"page_label": "3", "file_path": "/abs/x.pdf", "file_name": "x.pdf", "title": "Report", "tags": ["a"]}
    assert ragkit_metadata(meta) == {"page": 3, "page_label": "3", "title": "Report"}
    assert ragkit_metadata({"page_label": "iv"}) == {"page_label": "iv"}  # a roman label is no page number
    assert ragkit_metadata({"page_number": 2}) == {"page_number": 2, "page": 2}
    assert LIDocument(text="x", metadata=meta).metadata["page_label"] == "3"


def test_a_file_the_reader_cannot_read_fails_alone(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.txt").write_text("Plain text is read by ragkit's own loader.")
    (data / "bad.json").write_text("{not json")
    config = {"loader": {"loaders": {".json": {"type": "llamaindex", "reader": JSON_READER}}}}
    with Collection.create("partial", config, store_dir=tmp_path / "home") as col:
        report = col.ingest(data)
    assert report.added == 1
    assert [f.source for f in report.failed] == ["bad.json"] and "JSONReader" in report.failed[0].reason


def test_a_bad_reader_config_fails_when_built():
    with pytest.raises(ConfigError, match="no class 'NoSuchReader'"):
        registry.build("loader", {"type": "llamaindex", "reader": "llama_index.core.readers.json.NoSuchReader"})
    with pytest.raises(ConfigError, match="not a LlamaIndex reader"):
        registry.build("loader", {"type": "llamaindex", "reader": "llama_index.core.node_parser.SentenceSplitter"})
    loader = registry.build("loader", {"type": "llamaindex", "reader": JSON_READER, "kwargs": {"levels_back": 0}})
    assert isinstance(loader, LlamaIndexLoader) and loader.path_argument == "input_file"
    config = loader.to_config()
    assert config["reader"] == JSON_READER and config["kwargs"] == {"levels_back": 0}
    assert registry.build("loader", config).to_config() == config  # round-trips through YAML
