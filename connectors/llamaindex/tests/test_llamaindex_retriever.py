"""A ragkit pipeline as a LlamaIndex retriever, inside LlamaIndex's own query engine.

The LLM is llama-index-llms-openai-like's ``OpenAILike`` talking HTTP to ragkit's fake
OpenAI server (a wire-protocol fake of a remote model server). What is checked is what
a user of the query engine relies on: the response's source nodes are ragkit's hits,
with citation fields exact enough to cite, and they are what the LLM was shown.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode
from llama_index.llms.openai_like import OpenAILike
from ragkit_llamaindex import RagkitRetriever

from ragkit import Collection
from ragkit.errors import InputError
from ragkit.testing.fake_openai import FakeOpenAIServer

QUESTION = "Who was the leader of the Norse raiders who swore fealty to King Charles III?"


def test_a_query_engine_answers_from_ragkit_hits_that_carry_citations(collection: Collection, squad: Path):
    with FakeOpenAIServer(model="fake-chat") as fake:
        state = fake.reset(reply="Rollo led the Norse raiders.")
        llm = OpenAILike(model="fake-chat", api_base=fake.v1, api_key="not-needed", is_chat_model=True, max_retries=0)
        retriever = RagkitRetriever(collection, pipeline="basic", top_k=3)
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
        response = engine.query(QUESTION)

    assert str(response) == "Rollo led the Norse raiders."
    nodes = response.source_nodes
    assert len(nodes) == 3
    top = nodes[0]
    meta = top.node.metadata
    assert meta["source"] == "0002-normans.md" and "Rollo" in top.node.get_content()
    # ragkit's citation fields, exact: the span is the file's text, the uri opens the file
    text = (squad / meta["source"]).read_text(encoding="utf-8")
    assert text[meta["start"] : meta["end"]] == top.node.get_content()
    assert (top.node.start_char_idx, top.node.end_char_idx) == (meta["start"], meta["end"])
    assert meta["uri"] == (squad / "0002-normans.md").absolute().as_uri()
    assert top.node.node_id == meta["chunk_id"] and meta["document_id"]
    assert top.node.ref_doc_id == "0002-normans.md"
    assert meta["rank"] == 1 and meta["origin"] == "dense" and top.score == meta["score"]
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    assert {"section", "page", "row"} <= set(meta)
    # the retrieved passages are what the LLM was shown, named by source, without ids and scores
    sent = "\n".join(m["content"] for m in state.requests[-1]["body"]["messages"])
    assert top.node.get_content() in sent and "source: 0002-normans.md" in sent
    assert meta["chunk_id"] not in sent and "score:" not in sent
    assert top.node.get_content(metadata_mode=MetadataMode.LLM).startswith("source: 0002-normans.md")


def test_the_async_retriever_with_a_ragkit_filter(collection: Collection):
    asyncio.run(_async_retrieval(collection))


async def _async_retrieval(collection: Collection) -> None:
    retriever = RagkitRetriever(collection, pipeline="basic", top_k=2, filters={"source": "0000-super-bowl-50.md"})
    nodes = await retriever.aretrieve("Which team won the game?")
    assert nodes and {n.node.metadata["source"] for n in nodes} == {"0000-super-bowl-50.md"}
    lexical = RagkitRetriever(collection, top_k=1, mode="lexical", filters="source.startswith('0003')")
    [hit] = await lexical.aretrieve("alternating current")
    assert hit.node.metadata["source"] == "0003-nikola-tesla.md" and hit.node.metadata["origin"] == "lexical"


def test_an_async_query_engine_and_a_collection_by_name(collection: Collection):
    retriever = RagkitRetriever("squad", store_dir=collection.folder.parent.parent, top_k=2)
    with FakeOpenAIServer(model="fake-chat") as fake:
        fake.reset(reply="Denver.")
        llm = OpenAILike(model="fake-chat", api_base=fake.v1, api_key="x", is_chat_model=True, max_retries=0)
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
        response = asyncio.run(engine.aquery("Which team won Super Bowl 50?"))
    assert str(response) == "Denver."
    assert response.source_nodes[0].node.metadata["source"] == "0000-super-bowl-50.md"


def test_a_bad_top_k_is_refused():
    with pytest.raises(InputError, match="top_k"):
        RagkitRetriever("nowhere", top_k=0)


def test_a_collection_gives_its_llamaindex_retriever(collection: Collection):
    """``Collection.as_retriever(framework="llamaindex")``: the core finds this connector by its entry point."""
    retriever = collection.as_retriever("basic", framework="llamaindex", top_k=2)
    assert isinstance(retriever, RagkitRetriever)
    nodes = retriever.retrieve(QUESTION)
    assert len(nodes) == 2 and nodes[0].node.metadata["source"] == "0002-normans.md"
