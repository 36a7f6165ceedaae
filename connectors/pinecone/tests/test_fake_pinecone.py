"""The FAKE Pinecone speaks the wire protocol the official client expects: shapes, headers, errors."""

from __future__ import annotations

import httpx
import pytest

INSTALL = "pip install -c constraints.txt -e connectors/pinecone"
pytest.importorskip("pinecone", reason=f"needs the official pinecone client: {INSTALL}")
pytest.importorskip("ragkit_pinecone", reason=f"needs the connector installed: {INSTALL}")

from pinecone import Pinecone, RetryConfig  # noqa: E402
from pinecone.errors import ApiError, ConflictError, NotFoundError, UnauthorizedError  # noqa: E402
from ragkit_pinecone.testing import API_VERSION, FakePineconeServer  # noqa: E402

DEPLOYMENT = {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}


@pytest.fixture
def pc(fake_pinecone: FakePineconeServer) -> Pinecone:
    return Pinecone(api_key=fake_pinecone.api_key, host=fake_pinecone.url, retry_config=RetryConfig(max_retries=0))


def make_index(pc: Pinecone, name: str = "wire", dimension: int = 3):
    model = pc.indexes.create(name=name, dimension=dimension, metric="cosine", deployment=DEPLOYMENT)
    return model, pc.index(host=model.host)


def test_control_plane_creates_describes_lists_and_deletes(pc: Pinecone, fake_pinecone: FakePineconeServer) -> None:
    model, _ = make_index(pc)
    assert model.status.ready and model.host.startswith("http://127.0.0.1:")
    assert model.host != fake_pinecone.url  # each index has a host of its own
    described = pc.indexes.describe("wire")
    assert described.schema.fields["_values"].dimension == 3
    assert described.schema.fields["_values"].metric == "cosine"
    assert [index.name for index in pc.indexes.list()] == ["wire"]
    with pytest.raises(ConflictError, match="already exists"):
        make_index(pc)
    pc.indexes.delete("wire", timeout=-1)
    assert not pc.indexes.exists("wire")
    with pytest.raises(httpx.ConnectError):
        httpx.post(model.host + "/query", json={}, timeout=2)  # its host is gone with it


def test_every_request_carries_the_key_and_the_api_version(pc: Pinecone, fake_pinecone: FakePineconeServer) -> None:
    _, index = make_index(pc)
    index.upsert(vectors=[("a", [1.0, 0.0, 0.0])], namespace="n")
    assert fake_pinecone.requests
    for _, _, headers in fake_pinecone.requests:
        assert headers["Api-Key"] == fake_pinecone.api_key
        assert headers["X-Pinecone-Api-Version"] == API_VERSION


def test_errors_come_in_pinecone_bodies(pc: Pinecone, fake_pinecone: FakePineconeServer) -> None:
    with pytest.raises(NotFoundError) as missing:
        pc.indexes.describe("nope")
    assert missing.value.body == {"error": {"code": "NOT_FOUND", "message": "Resource nope not found"}, "status": 404}
    with pytest.raises(UnauthorizedError):
        Pinecone(api_key="wrong", host=fake_pinecone.url).indexes.describe("nope")
    _, index = make_index(pc)
    with pytest.raises(ApiError) as wrong:
        index.upsert(vectors=[("a", [1.0, 0.0])], namespace="n")
    assert wrong.value.status_code == 400
    assert wrong.value.body == {
        "code": 3,
        "message": "Vector dimension 2 does not match the dimension of the index 3",
        "details": [],
    }
    with pytest.raises(ApiError, match="exceeds the limit of 40960 bytes"):
        index.upsert(vectors=[("big", [1.0, 0.0, 0.0], {"text": "x" * 41_000})], namespace="n")
    # the client refuses nested metadata itself; the service (and the fake) would too
    nested = httpx.post(
        index.host + "/vectors/upsert",
        json={"vectors": [{"id": "nested", "values": [1.0, 0.0, 0.0], "metadata": {"a": {"b": 1}}}]},
        headers={"Api-Key": fake_pinecone.api_key, "X-Pinecone-Api-Version": API_VERSION},
    )
    assert nested.status_code == 400 and "string, number, boolean or list of strings" in nested.json()["message"]
    with pytest.raises(ApiError, match="at most 1000 when includeMetadata"):
        index.query(vector=[1.0, 0.0, 0.0], top_k=1001, namespace="n", include_metadata=True)
    assert index.describe_index_stats().total_vector_count == 0  # a refused batch writes nothing
    with pytest.raises(NotFoundError, match="Namespace not found"):
        index.delete(delete_all=True, namespace="never-written")


def test_data_plane_reads_and_writes(pc: Pinecone) -> None:
    _, index = make_index(pc)
    vectors = [(f"v{i:02d}", [1.0, i / 10, 0.0], {"i": i, "even": i % 2 == 0}) for i in range(25)]
    assert index.upsert(vectors=vectors, namespace="n").upserted_count == 25
    top = index.query(vector=[1.0, 0.0, 0.0], top_k=3, namespace="n", filter={"even": False}, include_metadata=True)
    assert [match.id for match in top.matches] == ["v01", "v03", "v05"]
    assert top.matches[0].metadata == {"i": 1, "even": False}
    assert top.matches[0].score > top.matches[1].score > top.matches[2].score
    assert set(index.fetch(ids=["v02", "zz"], namespace="n").vectors) == {"v02"}
    first = index.list_paginated(namespace="n", limit=10)
    assert len(first.vectors) == 10 and first.pagination is not None
    assert [item.id for page in index.list(namespace="n") for item in page.vectors] == [f"v{i:02d}" for i in range(25)]
    assert [item.id for page in index.list(namespace="n", prefix="v1") for item in page.vectors][:2] == ["v10", "v11"]
    index.update(id="v00", set_metadata={"even": False, "tag": "x"}, namespace="n")
    assert index.fetch(ids=["v00"], namespace="n").vectors["v00"].metadata == {"i": 0, "even": False, "tag": "x"}
    index.delete(filter={"i": {"$gte": 20}}, namespace="n")
    index.delete(ids=["v00", "v01"], namespace="n")
    stats = index.describe_index_stats()
    assert stats.namespaces["n"].vector_count == 18 and stats.dimension == 3
    index.delete(delete_all=True, namespace="n")
    assert index.describe_index_stats().total_vector_count == 0
