"""ChromaStore beyond the conformance suite: configuration, errors, no embedding by Chroma, telemetry off."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("chromadb") is None or importlib.util.find_spec("ragkit_chroma") is None:
    pytest.skip(
        "ragkit-chroma or chromadb is not installed: pip install -c constraints.txt -e connectors/chroma",
        allow_module_level=True,
    )

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
from ragkit_chroma import ChromaStore, collection_name_for

from ragkit import registry
from ragkit.errors import ConfigError, ConflictError, StorageError, UnavailableError
from ragkit.filters import parse_filter
from ragkit.schema import SourceRecord
from ragkit.testing.vector_store_conformance import make_chunk, unit_vectors

DIM = 8


@pytest.fixture
def store(tmp_path):
    s = ChromaStore(path=tmp_path / "store", dimension=DIM, name="docs")
    yield s
    s.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- configuration --------------------------------------------------------------------------


def test_entry_point_and_config_round_trip(tmp_path):
    config = {"type": "chroma", "collection": "my-chunks", "ef_search": 50}
    first = registry.build("store", {**config, "path": tmp_path / "s", "dimension": DIM, "name": "n"})
    try:
        assert type(first) is ChromaStore
        saved = first.to_config()
        assert saved == {
            **config,
            "url": None,
            "tenant": None,
            "database": None,
            "token_env": None,
            "ef_construction": 200,
        }
        first.upsert([make_chunk("a")], unit_vectors(1, DIM, 0))
    finally:
        first.close()
    assert (tmp_path / "s" / "chroma").is_dir()  # the embedded database lives in the store's folder
    again = ChromaStore.from_config(saved, path=tmp_path / "s", dimension=DIM, name="n")
    try:
        assert again.to_config() == saved and again.count() == 1
    finally:
        again.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "ftp://host:1"}, "must be http(s)://host:port"),
        ({"url": "localhost:8000"}, "must be http(s)://host:port"),
        ({"tenant": "t"}, "need a url"),
        ({"collection": "a b"}, "not a valid Chroma name"),
        ({"collection": "xy"}, "not a valid Chroma name"),
        ({"ef_search": 0}, "ef_search must be positive"),
        ({"url": "http://127.0.0.1:1", "token_env": "RAGKIT_TEST_UNSET_TOKEN"}, "RAGKIT_TEST_UNSET_TOKEN"),
    ],
)
def test_bad_options_are_refused_when_built(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ChromaStore(path=tmp_path, dimension=DIM, **options)


def test_collection_names_follow_chroma_rules(tmp_path):
    assert collection_name_for("docs") == "ragkit-docs"
    odd = collection_name_for("my docs/ü")
    assert odd.startswith("ragkit-my_docs") and odd != collection_name_for("my docs/ä")
    assert collection_name_for("") == "ragkit"
    for name in ("my docs/ü", "-x-", "", "a" * 600):
        ChromaStore(path=tmp_path / str(len(name)), dimension=DIM, name=name).close()  # Chroma accepts each


# -- Chroma never embeds; telemetry off ---------------------------------------------------------


@pytest.mark.parametrize("where", ["embedded", "server"])
def test_chroma_never_builds_or_downloads_its_embedding_model(tmp_path, monkeypatch, request, where):
    """Chroma's default embedding function downloads an ONNX model; the store never lets it run."""
    from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2

    model = onnx_mini_lm_l6_v2.ONNXMiniLM_L6_V2
    download_dir = tmp_path / "onnx-cache"
    monkeypatch.setattr(model, "DOWNLOAD_PATH", download_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("Chroma tried to build or run its default embedding model")

    for method in ("__init__", "__call__", "_download_model_if_not_exists", "_download"):
        monkeypatch.setattr(model, method, refuse)
    url = request.getfixturevalue("chroma_server") if where == "server" else None
    options = {"url": url, "collection": f"noembed-{os.getpid()}"} if url else {}
    s = ChromaStore(path=tmp_path / "s", dimension=DIM, name="noembed", **options)
    try:
        chunks = [make_chunk(f"c{i}", metadata={"i": i}) for i in range(5)]
        vectors = unit_vectors(5, DIM, 1)
        s.upsert(chunks, vectors)
        s.commit_sources([SourceRecord("docs/a.md", "h", chunk_ids=[c.id for c in chunks], chunk_count=5)])
        [hits] = s.search(vectors[:1], top_k=2, filter=parse_filter("i >= 0"))
        assert hits[0].chunk.id == "id-c0"
        assert len(s.get(["id-c1"])) == 1 and s.sources()["docs/a.md"].chunk_count == 5
        assert s._chunks._embedding_function is None  # Chroma's own client holds no embedding function
    finally:
        if url:
            s.drop()
        else:
            s.close()
    assert not download_dir.exists()


def test_telemetry_off_and_chromadb_imported_only_when_a_store_opens(tmp_path):
    code = """
        import os, sys
        import ragkit, ragkit_chroma
        assert "chromadb" not in sys.modules, "importing ragkit_chroma imported chromadb"
        assert "ANONYMIZED_TELEMETRY" not in os.environ
        store = ragkit_chroma.ChromaStore(path=sys.argv[1], dimension=4)
        print(os.environ["ANONYMIZED_TELEMETRY"], store._client.get_settings().anonymized_telemetry)
        store.close()
    """
    env = {k: v for k, v in os.environ.items() if k != "ANONYMIZED_TELEMETRY"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


# -- errors -----------------------------------------------------------------------------------


def test_server_that_is_not_there_is_unavailable(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(UnavailableError, match=f"Chroma server at {url} is unavailable"):
        ChromaStore(path=tmp_path, dimension=DIM, url=url)


def test_a_collection_not_made_by_ragkit_is_a_conflict(tmp_path):
    import chromadb

    folder = tmp_path / "s" / "chroma"
    client = chromadb.PersistentClient(path=str(folder))
    client.create_collection("theirs", embedding_function=None)
    client.close()
    with pytest.raises(ConflictError, match=r"'theirs'.*not made by ragkit"):
        ChromaStore(path=tmp_path / "s", dimension=DIM, collection="theirs")
    ChromaStore(path=tmp_path / "s", dimension=DIM, collection="ours").close()


def test_use_after_close_is_a_storage_error(store):
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StorageError, match="closed"):
        store.count()


def test_drop_removes_the_chroma_collections(tmp_path):
    s = ChromaStore(path=tmp_path / "s", dimension=DIM, name="docs")
    s.upsert([make_chunk("a", metadata={"x": 1})], unit_vectors(1, DIM, 0))
    s.commit_sources([SourceRecord("docs/a.md", "h", chunk_ids=["id-a"])])
    s.drop()
    again = ChromaStore(path=tmp_path / "s", dimension=DIM * 2, name="docs")  # any dimension: it is all gone
    try:
        assert again.count() == 0 and again.sources() == {} and again.metadata_fields() == {"source", "document_id"}
    finally:
        again.close()


# -- data --------------------------------------------------------------------------------------


def test_repeated_ids_in_one_batch_keep_the_last(store):
    first, last = make_chunk("a", text="first"), make_chunk("a", text="last")
    store.upsert([first, last], unit_vectors(2, DIM, 0))
    assert [c.text for c in store.get(["id-a"])] == ["last"]


def test_more_chunks_than_one_chroma_batch(store):
    chunks = [make_chunk(f"{i:05d}", metadata={"i": i}) for i in range(2500)]
    store.upsert(chunks, unit_vectors(2500, DIM, 4))
    assert store.count() == 2500
    assert sum(len(b) for b in store.iter_chunks(batch_size=1000)) == 2500
    assert store.delete_documents([chunks[0].document_id]) == 2500 and store.count() == 0


def test_writes_while_iterating_neither_skip_nor_repeat_a_chunk(store):
    kept = [make_chunk(f"k{i:02d}", document_id="keep") for i in range(20)]
    gone = [make_chunk(f"g{i:02d}", document_id="gone") for i in range(10)]
    store.upsert(gone + kept, unit_vectors(30, DIM, 5))
    seen: list[str] = []
    for number, batch in enumerate(store.iter_chunks(batch_size=7)):
        seen += [chunk.id for chunk in batch]
        if number == 0:  # by offset, deleting ten rows here would skip ten of the kept ones
            store.delete_documents(["gone"])
            store.upsert([make_chunk("late", document_id="late")], unit_vectors(1, DIM, 6))
    assert len(seen) == len(set(seen)), "no chunk twice"
    assert {c.id for c in kept} <= set(seen), "every chunk that stayed was seen"
    assert "id-late" not in seen  # added after iteration began


def test_stats(store):
    store.upsert([make_chunk("a")], unit_vectors(1, DIM, 0))
    stats = store.stats()
    assert stats["chunks"] == 1 and stats["collection"] == "ragkit-docs" and stats["where"].startswith("Chroma at ")


def test_non_json_metadata_is_refused_naming_the_chunk(store):
    from ragkit.errors import InputError

    with pytest.raises(InputError, match="id-odd"):
        store.upsert([make_chunk("odd", metadata={"when": object()})], unit_vectors(1, DIM, 0))


def test_scores_are_cosine_for_vectors_that_are_not_unit_length(store):
    vectors = np.array([[3.0] + [0.0] * (DIM - 1), [1.0, 1.0] + [0.0] * (DIM - 2)], dtype=np.float32)
    store.upsert([make_chunk("x"), make_chunk("xy")], vectors)
    [hits] = store.search(np.array([[2.0] + [0.0] * (DIM - 1)], dtype=np.float32), top_k=2)
    assert [h.chunk.id for h in hits] == ["id-x", "id-xy"]
    assert [h.score for h in hits] == pytest.approx([1.0, 2**-0.5], abs=1e-4)


def test_two_stores_on_one_embedded_folder_share_it(tmp_path):
    """Closing one store leaves another open on the same folder working (Chroma shares one system per path)."""
    first = ChromaStore(path=tmp_path, dimension=DIM, name="shared")
    second = ChromaStore(path=tmp_path, dimension=DIM, name="shared")
    try:
        first.upsert([make_chunk("a")], unit_vectors(1, DIM, 0))
        assert second.count() == 1
        first.close()
        second.upsert([make_chunk("b")], unit_vectors(1, DIM, 1))
        assert second.count() == 2
    finally:
        first.close()
        second.close()
    again = ChromaStore(path=tmp_path, dimension=DIM, name="shared")
    try:
        assert sorted(c.id for c in again.get(["id-a", "id-b"])) == ["id-a", "id-b"]
    finally:
        again.close()
