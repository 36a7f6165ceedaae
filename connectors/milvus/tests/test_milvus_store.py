"""MilvusStore beyond the shared suite: config, limits, error wrapping, Milvus Lite sharing and crashes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ragkit_milvus import MilvusStore, collection_name_for

from ragkit import registry
from ragkit.errors import ConfigError, ConflictError, InputError, StorageError, UnavailableError
from ragkit.filters import And, Comparison, Not, Or
from ragkit.schema import SourceRecord
from ragkit.testing.vector_store_conformance import expected_filter_ids, filter_corpus, make_chunk, unit_vectors

CONNECTOR = Path(__file__).resolve().parent.parent
DIM = 8


@pytest.fixture
def store(tmp_path):
    s = MilvusStore(path=tmp_path / "store", dimension=DIM, name="docs")
    yield s
    s.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(code: str, *args: str, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CONNECTOR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", textwrap.dedent(code), *args]
    if wait:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    return subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# -- configuration --------------------------------------------------------------------------


def test_config_round_trip_through_the_registry(tmp_path):
    config = {"type": "milvus", "collection": "my_chunks", "index": "hnsw", "consistency_level": "Bounded"}
    first = registry.build("store", {**config, "path": tmp_path / "s", "dimension": DIM, "name": "n"})
    try:
        assert type(first) is MilvusStore
        saved = first.to_config()
        assert saved == {**config, "uri": None, "token_env": None, "timeout": 30.0}
        first.upsert([make_chunk("a")], unit_vectors(1, DIM, 0))
    finally:
        first.close()
    again = MilvusStore.from_config({**saved, "path": tmp_path / "s", "dimension": DIM, "name": "n"})
    try:
        assert again.to_config() == saved
        assert again.collection == "my_chunks" and again.count() == 1
    finally:
        again.close()


def test_token_is_not_saved_but_token_env_is(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_MILVUS_TOKEN", "root:Milvus")
    with_env = MilvusStore(path=tmp_path / "a", dimension=DIM, token_env="MY_MILVUS_TOKEN")
    with_token = MilvusStore(path=tmp_path / "b", dimension=DIM, token="root:Milvus")
    try:
        assert with_env.to_config()["token_env"] == "MY_MILVUS_TOKEN"
        assert "token" not in with_token.to_config()
        assert "root:Milvus" not in repr(with_token.to_config())
    finally:
        with_env.close()
        with_token.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"index": "ivf_pq"}, "index must be one of"),
        ({"consistency_level": "strong"}, "consistency_level must be one of"),
        ({"collection": "9lives"}, "not a valid Milvus name"),
        ({"collection": "has-dash"}, "not a valid Milvus name"),
        ({"collection": "x" * 250}, "too long"),
        ({"token": "a", "token_env": "B"}, "not both"),
        ({"token_env": "RAGKIT_TEST_SURELY_UNSET"}, "RAGKIT_TEST_SURELY_UNSET"),
        ({"uri": "ftp://host"}, "must be http"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"dimension": 0}, "dimension must be positive"),
    ],
)
def test_bad_options_are_refused_when_built(tmp_path, options, message):
    params = {"path": tmp_path / "s", "dimension": DIM, "name": "n", **options}
    with pytest.raises(ConfigError, match=message):
        MilvusStore(**params)
    assert not (tmp_path / "s").exists()  # nothing was created


def test_unknown_option_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown option"):
        registry.build("store", {"type": "milvus", "path": tmp_path, "dimension": DIM, "indx": "flat"})


def test_collection_names_follow_milvus_rules():
    assert collection_name_for("docs") == "ragkit_docs"
    assert collection_name_for("Docs_2") == "ragkit_Docs_2"
    odd = collection_name_for("my docs-v2.1")
    assert odd.startswith("ragkit_my_docs_v2_1_") and len(odd) == len("ragkit_my_docs_v2_1_") + 8
    assert collection_name_for("a-b") != collection_name_for("a_b")  # sanitising never merges two names
    assert collection_name_for("") == "ragkit"
    long = collection_name_for("x" * 400)
    assert len(long) <= 246
    for name in ("docs", "my docs-v2.1", "x" * 400, "ünï", ""):
        assert collection_name_for(name)[0].isalpha()
        assert all((ch.isalnum() and ch.isascii()) or ch == "_" for ch in collection_name_for(name))


def test_lite_file_can_live_elsewhere(tmp_path):
    elsewhere = tmp_path / "shared" / "vectors.db"
    s = MilvusStore(path=tmp_path / "store", dimension=DIM, uri=str(elsewhere))
    try:
        s.upsert([make_chunk("a")], unit_vectors(1, DIM, 0))
        assert s.is_lite and elsewhere.is_dir()
        assert not (tmp_path / "store" / "milvus.db").exists()
    finally:
        s.close()


def test_index_option_applies_when_the_collection_is_created(tmp_path, caplog):
    MilvusStore(path=tmp_path / "s", dimension=DIM, index="hnsw").close()
    for option in ("auto", "flat"):
        s = MilvusStore(path=tmp_path / "s", dimension=DIM, index=option)
        try:
            assert s.stats()["index"] == "hnsw"
        finally:
            s.close()
    assert "already has a hnsw index" in caplog.text


def test_stats(store):
    store.upsert([make_chunk("a")], unit_vectors(1, DIM, 0))
    assert store.stats() == {"chunks": 1, "sources": 0, "index": "flat", "uri": store.uri, "collection": "ragkit_docs"}


# -- limits -----------------------------------------------------------------------------------


def test_text_longer_than_milvus_allows_is_refused(store):
    ok = make_chunk("ok")
    too_long = make_chunk("long", text="é" * 40_000)  # 80,000 bytes in UTF-8
    with pytest.raises(InputError, match=r"the text of chunk 'id-long'.*80000 bytes.*65535"):
        store.upsert([ok, too_long], unit_vectors(2, DIM, 0))
    assert store.count() == 0  # nothing of the batch was written


def test_several_thousand_characters_are_fine(store):
    chunk = make_chunk("big", text="Lorem ipsum dolor sit amet. " * 700)  # 19,600 characters
    store.upsert([chunk], unit_vectors(1, DIM, 0))
    assert store.get([chunk.id])[0].text == chunk.text


def test_oversized_metadata_is_refused(store):
    chunk = make_chunk("meta", metadata={"blob": "x" * 70_000})
    with pytest.raises(InputError, match="metadata of chunk 'id-meta'"):
        store.upsert([chunk], unit_vectors(1, DIM, 0))


def test_repeated_ids_in_one_batch_keep_the_last(store):
    first, second = make_chunk("same", text="first"), make_chunk("same", text="second")
    store.upsert([first, second], unit_vectors(2, DIM, 0))
    assert store.count() == 1
    assert store.get([first.id])[0].text == "second"


def test_non_json_metadata_is_stored_as_text(store):
    chunk = make_chunk("odd", metadata={"when": Path("/x/y")})
    store.upsert([chunk], unit_vectors(1, DIM, 0))
    assert store.get([chunk.id])[0].metadata == {"when": "/x/y"}


def test_incomplete_source_record_is_left_out(store):
    many = [f"{i:032x}" for i in range(4000)]  # several parts
    store.commit_sources([SourceRecord("big.jsonl", "h", document_ids=many), SourceRecord("small.md", "h2")])
    assert set(store.sources()) == {"big.jsonl", "small.md"}
    store._client.delete(store.sources_collection, filter='kind == "source" and part == 1')
    assert set(store.sources()) == {"small.md"}  # so big.jsonl will be ingested again


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.timeout(120)  # bounds a hang (the client's own connect retries); no assertion on seconds
def test_server_that_is_not_there_is_unavailable(tmp_path):
    """A Milvus URI with nothing listening is refused with UnavailableError naming it, not a hang."""
    uri = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(UnavailableError, match=re.escape(f"Milvus at {uri} is unavailable")):
        MilvusStore(path=tmp_path / "s", dimension=DIM, uri=uri, timeout=2)


def test_foreign_collection_is_a_conflict(tmp_path):
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import DataType, MilvusClient

    db = str(tmp_path / "store" / "milvus.db")
    (tmp_path / "store").mkdir()
    client = MilvusClient(db)
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection("theirs", schema=schema)
    client.close()
    server_manager_instance.release_server(db)
    with pytest.raises(ConflictError, match=r"'theirs'.*not made by ragkit"):
        MilvusStore(path=tmp_path / "store", dimension=DIM, collection="theirs")
    # the folder was released: a valid store opens on it
    MilvusStore(path=tmp_path / "store", dimension=DIM, collection="ours").close()


def test_drop_removes_the_milvus_collections(tmp_path):
    s = MilvusStore(path=tmp_path / "s", dimension=DIM, name="docs")
    s.upsert([make_chunk("a", metadata={"x": 1})], unit_vectors(1, DIM, 0))
    s.commit_sources([SourceRecord("docs/a.md", "h", chunk_ids=["id-a"])])
    s.drop()
    again = MilvusStore(path=tmp_path / "s", dimension=DIM * 2, name="docs")  # any dimension: it is all gone
    try:
        assert again.count() == 0 and again.sources() == {} and again.metadata_fields() == {"source", "document_id"}
    finally:
        again.close()


def test_use_after_close_is_a_storage_error(store):
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(StorageError, match="closed"):
        store.count()


# -- Milvus Lite in one process and across processes ------------------------------------------


def test_two_stores_on_one_lite_folder_share_it(tmp_path):
    one = MilvusStore(path=tmp_path / "s", dimension=DIM, name="docs")
    two = MilvusStore(path=tmp_path / "s", dimension=DIM, name="docs")
    one.upsert([make_chunk("a", metadata={"from_one": 1})], unit_vectors(1, DIM, 0))
    assert two.count() == 1
    assert "from_one" in two.metadata_fields()  # field names written by another store are seen
    one.close()
    assert two.count() == 1  # closing one keeps the shared server up for the other
    two.close()
    three = MilvusStore(path=tmp_path / "s", dimension=DIM, name="docs")
    assert three.count() == 1
    three.close()


def test_lite_folder_held_by_another_process_is_unavailable(tmp_path):
    holder = _run(
        """
        import sys
        from pathlib import Path
        from ragkit_milvus import MilvusStore
        s = MilvusStore(path=Path(sys.argv[1]), dimension=8)
        print("open", flush=True)
        sys.stdin.readline()
        s.close()
        """,
        str(tmp_path / "s"),
        wait=False,
    )
    try:
        assert holder.stdout.readline().strip() == "open", holder.stderr.read()
        with pytest.raises(UnavailableError, match="in use by another process"):
            MilvusStore(path=tmp_path / "s", dimension=DIM)
    finally:
        holder.communicate("\n", timeout=60)
    MilvusStore(path=tmp_path / "s", dimension=DIM).close()  # free again once the other process is gone


def test_crash_mid_ingest_leaves_the_last_good_state(tmp_path):
    result = _run(
        """
        import os, sys
        from pathlib import Path
        from ragkit.schema import SourceRecord
        from ragkit.testing.vector_store_conformance import make_chunk, unit_vectors
        from ragkit_milvus import MilvusStore
        s = MilvusStore(path=Path(sys.argv[1]), dimension=8)
        old = [make_chunk(f"old{i}", source="a.md") for i in range(5)]
        s.upsert(old, unit_vectors(5, 8, 1))
        s.commit_sources([SourceRecord("a.md", "v1", chunk_ids=[c.id for c in old], chunk_count=5)])
        s.flush()
        new = [make_chunk(f"new{i}", source="a.md") for i in range(3)]
        s.upsert(new, unit_vectors(3, 8, 2))   # the new version is half written ...
        os._exit(9)                            # ... when the process dies, without flush or close
        """,
        str(tmp_path / "s"),
    )
    assert result.returncode == 9, result.stderr
    s = MilvusStore(path=tmp_path / "s", dimension=DIM)
    try:
        assert s.sources()["a.md"].content_hash == "v1"  # so a.md is ingested again
        ids = {c.id for batch in s.iter_chunks() for c in batch}
        assert {f"id-old{i}" for i in range(5)} <= ids  # the old version is still readable
        assert len(s.search(unit_vectors(1, DIM, 5), top_k=10)[0]) == len(ids)
    finally:
        s.close()


def test_half_written_lite_index_files_are_rebuilt(tmp_path, caplog):
    # Milvus Lite writes index files in a background thread after a flush; a
    # process killed meanwhile leaves them truncated (seen in the test above)
    s = MilvusStore(path=tmp_path / "s", dimension=DIM)
    chunks = [make_chunk(f"c{i}") for i in range(20)]
    vectors = unit_vectors(20, DIM, 1)
    s.upsert(chunks, vectors)
    s.commit_sources([SourceRecord("docs/a.md", "h", chunk_ids=[c.id for c in chunks])])
    s.close()
    index_files = sorted((tmp_path / "s" / "milvus.db").glob("collections/*/partitions/*/indexes/*.idx"))
    assert len(index_files) == 2  # the chunks' and the sources' vector indexes
    for file in index_files:
        file.write_bytes(file.read_bytes()[:128])  # header only, as a crash leaves it
    s = MilvusStore(path=tmp_path / "s", dimension=DIM)
    try:
        assert "rebuilding its" in caplog.text
        [[best]] = s.search(vectors[[4]], top_k=1)
        assert best.chunk.id == chunks[4].id
        assert set(s.sources()) == {"docs/a.md"}
    finally:
        s.close()


# -- the filter translation agrees with ragkit's own semantics ----------------------------------

_FIELDS = {
    "lang": st.sampled_from(["en", "de", "fr", "xx"]),
    "page": st.integers(-1, 11),
    "rank": st.sampled_from([0, 0.5, 2.5, 4.0]),
    "draft": st.booleans(),
    "source": st.sampled_from(["src0.md", "src1.md", "nope"]),
    "document_id": st.sampled_from(["doc-0", "doc-3", "doc-9"]),
}


@st.composite
def _comparisons(draw):
    field = draw(st.sampled_from(sorted(_FIELDS)))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"]))
    if op in ("in", "not in"):
        return Comparison(field, op, tuple(draw(st.lists(_FIELDS[field], max_size=3))))
    if field == "draft":
        op = draw(st.sampled_from(["==", "!="]))
    if field in ("lang", "source", "document_id") and draw(st.booleans()):
        return Comparison(field, "prefix", draw(_FIELDS[field])[: draw(st.integers(0, 5))])
    return Comparison(field, op, draw(_FIELDS[field]))


_filters = st.recursive(
    _comparisons(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda items: And(tuple(items))),
        st.lists(inner, min_size=2, max_size=3).map(lambda items: Or(tuple(items))),
        inner.map(Not),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    chunks, vectors = filter_corpus(60, DIM)
    s = MilvusStore(path=tmp_path_factory.mktemp("filters") / "s", dimension=DIM)
    s.upsert(chunks, vectors)
    yield s, chunks
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=_filters)
def test_milvus_filters_agree_with_python(corpus_store, flt):
    store, chunks = corpus_store
    [hits] = store.search(unit_vectors(1, DIM, 3), top_k=100, filter=flt)
    assert {hit.chunk.id for hit in hits} == expected_filter_ids(chunks, flt)


def test_filtered_search_counts_match_on_a_bigger_store(tmp_path):
    # a few thousand vectors: the filter is applied before ranking, not after
    n = 3000
    chunks = [make_chunk(f"c{i}", metadata={"bucket": i % 100}) for i in range(n)]
    vectors = unit_vectors(n, DIM, 4)
    s = MilvusStore(path=tmp_path / "s", dimension=DIM)
    try:
        s.upsert(chunks, vectors)
        s.flush()
        query = unit_vectors(1, DIM, 6)
        [hits] = s.search(query, top_k=20, filter=And((Comparison("bucket", "==", 7),)))
        members = np.array([i for i in range(n) if i % 100 == 7])
        best = members[np.argsort(-(vectors[members] @ query[0]))[:20]]
        assert [h.chunk.id for h in hits] == [chunks[i].id for i in best]
    finally:
        s.close()


def test_prefix_filters_select_a_folder_with_wildcards_taken_literally(store):
    sources = ["hr/a.md", "hr/sub/b.md", "hrx/c.md", "h_/d.md", "h%/e.md", "h\\/f.md", "h\\\\/g", "h\\%x", "hz/g.md"]
    chunks = [make_chunk(str(i), source=source, metadata={"path": source}) for i, source in enumerate(sources)]
    store.upsert(chunks, unit_vectors(len(chunks), DIM, 5))
    store.flush()
    for field in ("source", "path"):  # a scalar field and a key of the JSON metadata
        for prefix, expected in [
            ("hr/", {"hr/a.md", "hr/sub/b.md"}),
            ("h_/", {"h_/d.md"}),
            ("h%/", {"h%/e.md"}),
            ("h\\/", {"h\\/f.md"}),
            ("h\\", {"h\\/f.md", "h\\\\/g", "h\\%x"}),
            ("h\\%", {"h\\%x"}),
            ("h\\\\", {"h\\\\/g"}),
            ("", set(sources)),
        ]:
            flt = Comparison(field, "prefix", prefix)
            [hits] = store.search(unit_vectors(1, DIM, 3), top_k=20, filter=flt)
            assert {hit.chunk.source for hit in hits} == expected, (field, prefix)
            assert expected == {c.source for c in chunks if flt.matches({field: c.source})}
