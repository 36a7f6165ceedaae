"""A ragkit collection as a LlamaIndex vector store, used through LlamaIndex's own VectorStoreIndex.

The documents are the openings of three SQuAD dev articles; LlamaIndex splits them
into nodes (its SentenceSplitter), the store hands them to ragkit (packaged embedder,
FAISS, BM25), and LlamaIndex's retriever and query engine read them back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.llms.openai_like import OpenAILike
from ragkit_llamaindex import RagkitEmbedding, RagkitVectorStore

from ragkit import Collection
from ragkit.errors import ConfigError, FilterError, InputError
from ragkit.testing.fake_openai import FakeOpenAIServer

ARTICLES = {
    "normans": ("0002-normans.md", "history", 2),
    "super-bowl": ("0000-super-bowl-50.md", "sport", 50),
    "tesla": ("0003-nikola-tesla.md", "science", 3),
}


def _opening(path: Path, chars: int = 2500) -> str:
    text = path.read_text(encoding="utf-8")
    return text[: text.rfind("\n\n", 0, chars)]


@pytest.fixture(scope="module")
def documents(squad: Path) -> list[Document]:
    return [
        Document(id_=name, text=_opening(squad / file), metadata={"file_name": file, "topic": topic, "number": n})
        for name, (file, topic, n) in ARTICLES.items()
    ]


@pytest.fixture(scope="module")
def index(documents: list[Document], tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorStoreIndex]:
    store = RagkitVectorStore("li", store_dir=tmp_path_factory.mktemp("li-home"))
    index = VectorStoreIndex.from_vector_store(
        store, embed_model=store.embed_model, transformations=[SentenceSplitter(chunk_size=200, chunk_overlap=0)]
    )
    for document in documents:
        index.insert(document)
    yield index
    store.collection.close()


def _store(index: VectorStoreIndex) -> RagkitVectorStore:
    store = index.vector_store
    assert isinstance(store, RagkitVectorStore)
    return store


def test_inserted_documents_are_ragkit_sources_and_come_back_as_the_nodes_inserted(index, documents):
    store = _store(index)
    sources = store.collection.store.sources()
    assert set(sources) == {"normans", "super-bowl", "tesla"}
    assert all(len(record.document_ids) > 1 for record in sources.values())  # each node a ragkit document

    [found] = index.as_retriever(similarity_top_k=1).retrieve("Who was the leader of the Norse raiders?")
    node = found.node
    assert isinstance(node, TextNode) and "Rollo" in node.text
    assert node.ref_doc_id == "normans" and node.metadata == {
        "file_name": "0002-normans.md",
        "topic": "history",
        "number": 2,
    }
    normans = documents[0].text
    assert normans[node.start_char_idx : node.end_char_idx] == node.text  # offsets into the LlamaIndex document
    assert node.node_id in sources["normans"].document_ids
    assert 0 < found.score <= 1
    # what LlamaIndex stored, ragkit's own search sees (and cites by the document id)
    [hit] = store.collection.search("Norse raiders Rollo", top_k=1)
    assert hit.chunk.source == "normans" and hit.chunk.document_id == node.node_id


def test_metadata_filters_are_translated(index):
    def sources(filters: MetadataFilters, query: str = "who, when and where") -> set[str]:
        nodes = index.as_retriever(similarity_top_k=20, filters=filters).retrieve(query)
        return {n.node.ref_doc_id for n in nodes}

    eq = MetadataFilters(filters=[MetadataFilter(key="topic", value="sport")])
    assert sources(eq) == {"super-bowl"}
    gte = MetadataFilters(filters=[MetadataFilter(key="number", value=3, operator=FilterOperator.GTE)])
    assert sources(gte) == {"super-bowl", "tesla"}
    in_ = MetadataFilters(
        filters=[MetadataFilter(key="topic", value=["history", "science"], operator=FilterOperator.IN)]
    )
    assert sources(in_) == {"normans", "tesla"}
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value="sport"),
            MetadataFilter(key="number", value=2, operator=FilterOperator.LT),
        ],
        condition=FilterCondition.OR,
    )
    assert sources(either) == {"super-bowl"}
    either.filters[1] = MetadataFilter(key="number", value=3, operator=FilterOperator.LT)
    assert sources(either) == {"super-bowl", "normans"}
    nested_not = MetadataFilters(
        filters=[MetadataFilters(filters=[MetadataFilter(key="topic", value="sport", operator=FilterOperator.NE)])],
        condition=FilterCondition.NOT,
    )
    assert sources(nested_not) == {"super-bowl"}
    nin = MetadataFilters(filters=[MetadataFilter(key="topic", value=["sport"], operator=FilterOperator.NIN)])
    assert sources(nin) == {"normans", "tesla"}
    assert {n.node.ref_doc_id for n in index.as_retriever(similarity_top_k=20, doc_ids=["tesla"]).retrieve("x")} == {
        "tesla"
    }


def test_filters_ragkit_cannot_express_are_refused_clearly(index):
    for op in (FilterOperator.TEXT_MATCH, FilterOperator.CONTAINS, FilterOperator.IS_EMPTY):
        filters = MetadataFilters(filters=[MetadataFilter(key="topic", value="spo", operator=op)])
        with pytest.raises(FilterError, match=rf"'topic'.*{op.name}"):
            index.as_retriever(filters=filters).retrieve("anything")
    unknown = MetadataFilters(filters=[MetadataFilter(key="colour", value="red")])
    with pytest.raises(FilterError, match="colour"):
        index.as_retriever(filters=unknown).retrieve("anything")


def test_query_modes_and_vectors(index):
    store = _store(index)
    lexical = store.query(
        VectorStoreQuery(query_str="Tesla alternating current", mode=VectorStoreQueryMode.TEXT_SEARCH)
    )
    assert [n.ref_doc_id for n in lexical.nodes or []] == ["tesla"] and lexical.ids == [lexical.nodes[0].node_id]
    hybrid = store.query(VectorStoreQuery(query_str="Super Bowl champion", similarity_top_k=2, mode="hybrid"))
    assert [n.ref_doc_id for n in hybrid.nodes or []] == ["super-bowl", "super-bowl"]
    # a vector from the collection's own model is searched as is; one of another length is refused
    vector = store.embed_model.get_query_embedding("Which team won Super Bowl 50?")
    by_vector = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=1))
    by_text = store.query(VectorStoreQuery(query_str="Which team won Super Bowl 50?", similarity_top_k=1))
    assert by_vector.ids == by_text.ids and by_vector.similarities == pytest.approx(by_text.similarities, abs=1e-4)
    with pytest.raises(ConfigError, match="3 dimensions.*RagkitEmbedding"):
        store.query(VectorStoreQuery(query_embedding=[0.1, 0.2, 0.3]))
    with pytest.raises(InputError, match="mmr"):
        store.query(VectorStoreQuery(query_str="x", mode=VectorStoreQueryMode.MMR))


def test_nodes_embedded_by_another_model_are_refused(index):
    store = _store(index)
    with pytest.raises(ConfigError, match=r"nodes\[0\].*3 dimensions"):
        store.add([TextNode(id_="n1", text="Some text.", embedding=[1.0, 0.0, 0.0])])
    assert "n1" not in store.collection.store.sources()


def test_ragkit_embedding_is_the_collections_embedder(index):
    store = _store(index)
    embedder = store.collection.embedder
    model = RagkitEmbedding.of(store.collection)
    assert model.model_name == embedder.fingerprint
    np.testing.assert_allclose(model.get_text_embedding("Rollo"), embedder.embed_documents(["Rollo"])[0], atol=1e-6)
    np.testing.assert_allclose(model.get_query_embedding("Rollo"), embedder.embed_queries(["Rollo"])[0], atol=1e-6)
    vectors = asyncio.run(model.aget_text_embedding_batch(["a", "b"]))
    assert len(vectors) == 2 and len(vectors[0]) == embedder.dimension


def test_a_query_engine_over_the_index_and_async_insert_and_delete(index, documents):
    store = _store(index)
    with FakeOpenAIServer(model="fake-chat") as fake:
        fake.reset(reply="Rollo.")
        llm = OpenAILike(model="fake-chat", api_base=fake.v1, api_key="x", is_chat_model=True, max_retries=0)
        response = index.as_query_engine(llm=llm, similarity_top_k=2).query("Who led the Norse raiders?")
    assert str(response) == "Rollo." and response.source_nodes[0].node.ref_doc_id == "normans"

    extra = Document(
        id_="extra", text="The quokka is a small wallaby living on Rottnest Island.", metadata={"topic": "animals"}
    )

    async def add_then_delete() -> tuple[list[str], list[str]]:
        await index.ainsert(extra)
        found = await index.as_retriever(similarity_top_k=1).aretrieve("quokka wallaby")
        await index.adelete_ref_doc("extra")
        after = await index.as_retriever(similarity_top_k=1).aretrieve("quokka wallaby")
        return [n.node.ref_doc_id for n in found], [n.node.ref_doc_id for n in after]

    found, after = asyncio.run(add_then_delete())
    assert found == ["extra"] and after != ["extra"]
    assert "extra" not in store.collection.store.sources()


def test_nodes_added_later_join_their_document(index):
    store = _store(index)
    before = set(store.collection.store.sources()["tesla"].document_ids)
    store.add([TextNode(id_="tesla-note", text="Tesla kept pigeons in his hotel room.", metadata={"topic": "science"})])
    assert store.collection.store.sources()["tesla-note"]  # no ref doc: the node is its own source
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo

    late = TextNode(
        id_="tesla-late", text="Tesla died in New York in January 1943.", metadata={"topic": "science", "number": 3}
    )
    late.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="tesla")
    store.add([late])
    after = set(store.collection.store.sources()["tesla"].document_ids)
    assert after == before | {"tesla-late"}
    [hit] = index.as_retriever(similarity_top_k=1, doc_ids=["tesla"]).retrieve("When did Tesla die?")
    assert hit.node.node_id == "tesla-late"
    [got] = store.get_nodes(["tesla-late", "no-such-node"])
    assert got.node_id == "tesla-late" and got.ref_doc_id == "tesla" and got.metadata == late.metadata
    assert got.get_content() == late.text
    # deleting nodes keeps the rest of their document; a document's last node takes the source with it
    index.delete_nodes(["tesla-late", "tesla-note"])
    sources = store.collection.store.sources()
    assert set(sources["tesla"].document_ids) == before and "tesla-note" not in sources
    assert store.get_nodes(["tesla-late"]) == []
    with pytest.raises(InputError, match="node_ids"):
        store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="science")]))


def test_a_collection_ingested_by_ragkit_is_a_store_too(collection: Collection):
    store = RagkitVectorStore(collection)
    result = store.query(VectorStoreQuery(query_str="Who founded the Normans?", similarity_top_k=2))
    top = (result.nodes or [])[0]
    assert top.metadata["source"] == "0002-normans.md" and top.node_id == top.metadata["chunk_id"]
    assert top.ref_doc_id == "0002-normans.md"


@pytest.mark.slow  # loads the model a second time, through LlamaIndex's HuggingFaceEmbedding
def test_an_index_with_llamaindex_own_embed_model_of_the_same_model(tmp_path: Path):
    """HuggingFaceEmbedding over the packaged all-MiniLM-L6-v2 folder: its vectors fit, ragkit still embeds."""
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from ragkit_sentence_transformers.embedder import resolve_model

    embed_model = HuggingFaceEmbedding(model_name=resolve_model(None).location, device="cpu")
    store = RagkitVectorStore("hf", store_dir=tmp_path)
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    index.insert_nodes(
        [
            TextNode(id_="a", text="Quokkas live on Rottnest Island."),
            TextNode(id_="b", text="Penguins live in Antarctica."),
        ]
    )
    [found] = index.as_retriever(similarity_top_k=1).retrieve("Where do quokkas live?")
    assert found.node.node_id == "a"
    # the same model as the collection's: the two embedders agree (up to rounding)
    theirs = np.asarray(embed_model.get_text_embedding("Quokkas"))
    ours = np.asarray(store.embed_model.get_text_embedding("Quokkas"))
    assert float(theirs @ ours / np.linalg.norm(theirs) / np.linalg.norm(ours)) > 0.999
    store.collection.close()
