"""A ragkit collection on the Pinecone store, end to end: ingest, search with filters, re-ingest, delete.

Two FAKES stand in for hosted services: Pinecone (this connector's) and an
OpenAI-compatible embedding server (ragkit's), so the test needs no model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit import Collection
from ragkit.errors import FilterError
from ragkit.testing.fake_openai import FakeOpenAIServer

INSTALL = "pip install -c constraints.txt -e connectors/pinecone"
pytest.importorskip("pinecone", reason=f"needs the official pinecone client: {INSTALL}")
pytest.importorskip("ragkit_pinecone", reason=f"needs the connector installed: {INSTALL}")


pytest.importorskip("ragkit_openai", reason="needs the openai connector installed (pip install -e connectors/openai)")


def test_a_collection_ingests_searches_and_is_deleted(fake_pinecone, tmp_path: Path, monkeypatch) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rivers.md").write_text("# Rivers\n\nThe Danube flows through Vienna and Budapest.\n", encoding="utf-8")
    (docs / "peaks.md").write_text("# Peaks\n\nThe Matterhorn stands above Zermatt.\n", encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "fake")
    with FakeOpenAIServer() as embeddings:
        config = {
            "embedder": {"type": "openai", "model": "fake-embedder", "base_url": embeddings.v1},
            "store": {"type": "pinecone", "index": "e2e", "host": fake_pinecone.url},
        }
        collection = Collection.create("geo", config, store_dir=tmp_path / "home")
        report = collection.ingest(docs)
        assert report.added == 2 and not report.failed
        namespace = fake_pinecone.indexes["e2e"].namespaces["geo"]
        assert len(namespace) == collection.store.count() > 0

        hits = collection.search("Danube Vienna", top_k=5)
        assert {Path(hit.chunk.source).name for hit in hits} == {"rivers.md", "peaks.md"}
        peaks = next(hit.chunk.source for hit in hits if hit.chunk.source.endswith("peaks.md"))
        only_peaks = collection.search("Danube Vienna", top_k=5, filters={"source": peaks})
        assert only_peaks and {Path(hit.chunk.source).name for hit in only_peaks} == {"peaks.md"}
        with pytest.raises(FilterError):
            collection.search("x", top_k=3, filters='source.startswith("/")')

        (docs / "peaks.md").unlink()
        again = collection.ingest(docs, sync=True)  # sync: sources gone from the folder are deleted
        assert again.deleted == 1
        assert {Path(c.source).name for batch in collection.store.iter_chunks() for c in batch} == {"rivers.md"}
        collection.close()

        Collection.delete("geo", store_dir=tmp_path / "home")
        assert "geo" not in fake_pinecone.indexes["e2e"].namespaces
        assert "e2e" in fake_pinecone.indexes  # the index stays
