"""The Pinecone store's own behaviour against the FAKE Pinecone: config, limits, batching, errors, no network."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from ragkit import registry
from ragkit.errors import ConfigError, ConflictError, FilterError, InputError, NotFoundError, UnavailableError
from ragkit.filters import parse_filter
from ragkit.testing.vector_store_conformance import make_chunk, unit_vectors

INSTALL = "pip install -c constraints.txt -e connectors/pinecone"
pytest.importorskip("pinecone", reason=f"needs the official pinecone client: {INSTALL}")
pytest.importorskip("ragkit_pinecone", reason=f"needs the connector installed: {INSTALL}")

from ragkit_pinecone import PineconeStore  # noqa: E402
from ragkit_pinecone.testing import FakePineconeServer  # noqa: E402


def upserts(fake: FakePineconeServer) -> int:
    return sum(1 for method, path, _ in fake.requests if path == "/vectors/upsert")


def test_registered_as_store_pinecone() -> None:
    assert registry.get("store", "pinecone") is PineconeStore


def test_the_index_is_created_with_the_collection_dimension(pinecone_store, fake_pinecone, tmp_path: Path) -> None:
    store = pinecone_store(tmp_path / "col", 8, index="made-here", metric="dotproduct")
    made = fake_pinecone.indexes["made-here"]
    assert (made.dimension, made.metric) == (8, "dotproduct")
    assert store.to_config() == {
        "type": "pinecone",
        "index": "made-here",
        "namespace": "col",
        "api_key_env": "PINECONE_API_KEY",
        "host": fake_pinecone.url,
        "index_host": None,
        "create": True,
        "metric": "dotproduct",
        "cloud": "aws",
        "region": "us-east-1",
        "batch_size": 100,
        "timeout": 30.0,
        "retries": 0,
    }
    store.close()


def test_default_namespace_is_the_collection_name(fake_pinecone, tmp_path: Path) -> None:
    store = PineconeStore(path=tmp_path, dimension=4, name="handbook", host=fake_pinecone.url)
    assert (store.index, store.namespace) == ("ragkit", "handbook")
    store.close()


def test_missing_api_key_names_the_variable(fake_pinecone, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PINECONE_API_KEY")
    with pytest.raises(ConfigError, match="PINECONE_API_KEY"):
        PineconeStore(path=tmp_path, dimension=4, host=fake_pinecone.url)
    monkeypatch.setenv("MY_KEY", fake_pinecone.api_key)
    PineconeStore(path=tmp_path, dimension=4, host=fake_pinecone.url, api_key_env="MY_KEY").close()


def test_a_wrong_api_key_is_a_config_error(fake_pinecone, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="API key"):
        PineconeStore(path=tmp_path, dimension=4, host=fake_pinecone.url, api_key="wrong", retries=0)


def test_invalid_options_are_refused_when_built(fake_pinecone, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="index name"):
        PineconeStore(path=tmp_path, dimension=4, host=fake_pinecone.url, index="Not_Valid")
    with pytest.raises(ConfigError, match="metric"):
        PineconeStore(path=tmp_path, dimension=4, host=fake_pinecone.url, metric="manhattan")
    with pytest.raises(ConfigError, match="batch_size"):
        PineconeStore(path=tmp_path, dimension=4, host=fake_pinecone.url, batch_size=5000)


def test_without_create_a_missing_index_is_not_found(pinecone_store, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        pinecone_store(tmp_path / "x", 4, index="absent", create=False)


def test_an_unreachable_host_is_unavailable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "k")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UnavailableError, match="unreachable"):
        PineconeStore(path=tmp_path, dimension=4, host=f"http://127.0.0.1:{port}", retries=0)


def test_upserts_are_batched(pinecone_store, fake_pinecone, tmp_path: Path) -> None:
    store = pinecone_store(tmp_path / "b", 4, batch_size=100)
    chunks = [make_chunk(f"c{i}") for i in range(250)]
    before = upserts(fake_pinecone)
    store.upsert(chunks, unit_vectors(250, 4, 1))
    assert upserts(fake_pinecone) - before == 3  # (the chunks have no metadata fields to record)
    assert store.count() == 250
    # 60 chunks of ~35 KB each: the 2 MB request limit splits them before the count does
    big = [make_chunk(f"big{i}", text="x" * 35_000) for i in range(60)]
    before = upserts(fake_pinecone)
    store.upsert(big, unit_vectors(60, 4, 2))
    assert upserts(fake_pinecone) - before >= 2
    assert store.count() == 310


def test_a_chunk_over_the_metadata_limit_is_refused_by_name(pinecone_store, tmp_path: Path) -> None:
    store = pinecone_store(tmp_path / "m", 4)
    chunks = [make_chunk("fine"), make_chunk("huge", text="ü" * 30_000)]
    with pytest.raises(InputError, match="chunk 'id-huge'.*40,960"):
        store.upsert(chunks, unit_vectors(2, 4, 1))
    assert store.count() == 0


def test_metadata_pinecone_cannot_hold_round_trips_and_reads_as_missing(pinecone_store, tmp_path: Path) -> None:
    metadata = {"nested": {"a": [1, 2]}, "tags": ["x", "y"], "big": 2**60, "none": None, "$odd": 1, "n": 3}
    chunk = make_chunk("odd", metadata=metadata)
    weird_id = make_chunk("ü" * 600)  # not ASCII, over 512 characters: stored under a hash
    store = pinecone_store(tmp_path / "odd", 4)
    store.upsert([chunk, weird_id], unit_vectors(2, 4, 3))
    [got] = store.get([chunk.id])
    assert got.to_dict() == chunk.to_dict()
    assert [c.id for c in store.get([weird_id.id])] == [weird_id.id]

    def ids(flt: str) -> set[str]:
        return {hit.chunk.id for hit in store.search(unit_vectors(1, 4, 9), 10, parse_filter(flt))[0]}

    assert ids("n == 3") == {chunk.id}
    assert ids('tags == "x"') == set()  # a list is not filterable: the chunk lacks the field
    assert ids("not (tags == 'x')") == {chunk.id, weird_id.id}
    assert {"nested", "tags", "big", "n"} <= store.metadata_fields()


def test_untranslatable_filters_fail_before_any_request(pinecone_store, fake_pinecone, tmp_path: Path) -> None:
    store = pinecone_store(tmp_path / "f", 4)
    sent = len(fake_pinecone.requests)
    with pytest.raises(FilterError, match="prefix"):
        store.search(unit_vectors(1, 4, 1), 5, parse_filter('source.startswith("docs/")'))
    assert len(fake_pinecone.requests) == sent


def test_more_than_a_thousand_hits_come_through_ids_then_fetch(pinecone_store, fake_pinecone, tmp_path: Path) -> None:
    store = pinecone_store(tmp_path / "many", 4)
    vectors = unit_vectors(1100, 4, 5)
    store.upsert([make_chunk(f"m{i}") for i in range(1100)], vectors)
    [hits] = store.search(vectors[:1], 1050)
    assert len(hits) == 1050 and hits[0].chunk.id == "id-m0"
    scores = [hit.score for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_a_dimension_the_server_refuses_is_a_conflict(fake_pinecone, pinecone_store, tmp_path: Path) -> None:
    pinecone_store(tmp_path / "a", 4, index="four").close()
    host = fake_pinecone.indexes["four"].host
    # index_host skips the control plane, so only the service's own check (a 400) can catch the mismatch
    store = PineconeStore(path=tmp_path, dimension=6, index="four", index_host=host, retries=0)
    with pytest.raises(ConflictError, match="dimension 6 does not match the dimension of the index 4"):
        store.upsert([make_chunk("x")], unit_vectors(1, 6, 1))


def test_drop_empties_its_namespace_and_leaves_the_others(pinecone_store, fake_pinecone, tmp_path: Path) -> None:
    mine = pinecone_store(tmp_path / "mine", 4)
    theirs = pinecone_store(tmp_path / "theirs", 4)
    for store in (mine, theirs):
        store.upsert([make_chunk("a"), make_chunk("b")], unit_vectors(2, 4, 1))
    mine.drop()
    index = fake_pinecone.indexes["conformance"]
    assert "mine" not in index.namespaces and "mine:ragkit-book" not in index.namespaces
    assert theirs.count() == 2
    pinecone_store(tmp_path / "empty", 4).drop()  # namespaces that were never written: nothing to delete


def test_only_loopback_is_contacted(pinecone_store, monkeypatch, tmp_path: Path) -> None:
    """Opening, writing, searching and closing connect to the fake on 127.0.0.1 and nowhere else."""
    elsewhere: list[object] = []
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: object) -> None:
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1")):
            elsewhere.append(address)
            raise OSError("only loopback in this test")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    store = pinecone_store(tmp_path / "net", 4)
    store.upsert([make_chunk("a")], unit_vectors(1, 4, 1))
    assert store.search(np.ones((1, 4), dtype=np.float32), 1)[0][0].chunk.id == "id-a"
    store.close()
    assert elsewhere == []


def test_the_control_plane_host_can_come_from_the_environment(fake_pinecone, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", fake_pinecone.url)
    store = PineconeStore(path=tmp_path, dimension=4, name="from-env")
    assert "ragkit" in fake_pinecone.indexes
    store.close()


def test_a_smaller_record_replaces_all_parts_of_a_bigger_one(pinecone_store, fake_pinecone, tmp_path: Path) -> None:
    from ragkit.schema import SourceRecord

    store = pinecone_store(tmp_path / "parts", 4)
    many = [f"{i:064x}" for i in range(2000)]  # about 134 KB of ids: several parts of at most 30 KB
    store.commit_sources([SourceRecord("big.jsonl", "h1", document_ids=many, chunk_count=2000)])
    book = fake_pinecone.indexes["conformance"].namespaces["parts:ragkit-book"]
    assert len(book) >= 5
    store.commit_sources([SourceRecord("big.jsonl", "h2", document_ids=["one"], chunk_count=1)])
    assert len(book) == 1  # the leftover parts are deleted
    assert store.sources()["big.jsonl"].document_ids == ["one"]
    assert store.delete_sources(["big.jsonl"]) == 0
    assert store.sources() == {} and not book


def test_euclidean_scores_are_negated_distances_best_first(pinecone_store, tmp_path: Path) -> None:
    store = pinecone_store(tmp_path / "l2", 2, index="euclid", metric="euclidean")
    vectors = np.array([[0.0, 1.0], [3.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    store.upsert([make_chunk(f"e{i}") for i in range(3)], vectors)
    [hits] = store.search(np.array([[1.0, 1.0]], dtype=np.float32), 3)
    assert [hit.chunk.id for hit in hits] == ["id-e2", "id-e0", "id-e1"]
    assert [hit.score for hit in hits] == pytest.approx([0.0, -1.0, -5.0])
