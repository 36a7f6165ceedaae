"""The built-in collection tools over a real collection: search, ask, list_collections.

The collection is the shared ``sample`` fixture (tests/conftest.py): the five
sample documents ingested with the default config into a temporary store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragkit.agents.builtin import AskTool, ListCollectionsTool, SearchTool
from ragkit.agents.tools import ToolArgumentsError, ToolError, build_tools
from ragkit.errors import ConfigError
from ragkit.rag.answer import Citation

QUESTION = "Who designed the data network that connected GE's computer sales and service centers?"


@pytest.fixture()
def search(sample_store: Path) -> Iterator[SearchTool]:
    tool = SearchTool(collection="sample", home=sample_store)
    yield tool
    tool.close()


def test_search_returns_numbered_passages_with_hits_and_citations(search: SearchTool):
    out = search.call({"query": QUESTION, "top_k": 3})
    assert len(out.hits) == 3
    assert out.hits[0].chunk.source == "packet-switching.md"
    assert out.content.startswith("[1] packet-switching.md › ")
    assert "[2] " in out.content and "[3] " in out.content and "[4] " not in out.content
    assert "Sinback" in out.content
    assert all(isinstance(c, Citation) for c in out.citations)
    assert [c.number for c in out.citations] == [1, 2, 3]
    assert [c.chunk_id for c in out.citations] == [h.chunk.id for h in out.hits]
    assert out.citations[0].source == "packet-switching.md"
    assert [d["chunk_id"] for d in out.data] == [h.chunk.id for h in out.hits]


def test_search_bounds_top_k_and_cuts_long_passages(sample_store: Path):
    tool = SearchTool(collection="sample", home=sample_store, top_k=2, max_top_k=4, max_chars=60)
    assert tool.parameters["properties"]["top_k"]["maximum"] == 4
    out = tool.call({"query": QUESTION})
    assert len(out.hits) == 2  # the configured default
    for passage in out.content.split("\n\n"):
        _label, text = passage.split("\n", 1)
        assert len(text) <= 60 and text.endswith("…")
    assert out.citations[0].quote  # the citation keeps the chunk's own text
    with pytest.raises(ToolArgumentsError, match=r"^search: invalid arguments: top_k: input should be less than"):
        tool.call({"query": QUESTION, "top_k": 5})
    with pytest.raises(ToolArgumentsError, match="query: string should have at least 1 character"):
        tool.call({"query": ""})
    tool.close()


def test_search_filters_in_the_filter_language(search: SearchTool):
    out = search.call({"query": QUESTION, "top_k": 3, "filters": 'source == "black-death.txt"'})
    assert out.hits and {h.chunk.source for h in out.hits} == {"black-death.txt"}
    out = search.call({"query": QUESTION, "top_k": 3, "filters": {"source": "amazon-rainforest.md"}})
    assert {h.chunk.source for h in out.hits} == {"amazon-rainforest.md"}
    unfiltered = search.call({"query": QUESTION, "top_k": 3, "filters": ""})  # small models send empty filters
    assert unfiltered.hits[0].chunk.source == "packet-switching.md"


def test_a_bad_filter_is_a_tool_error_naming_the_field(search: SearchTool):
    with pytest.raises(ToolError) as caught:
        search.call({"query": QUESTION, "filters": "author == 'Smith'"})
    message = str(caught.value)
    assert message.startswith("search: invalid filters: ")
    assert "'author'" in message and "known fields:" in message and "source" in message
    with pytest.raises(ToolError, match="search: invalid filters: cannot parse filter"):
        search.call({"query": QUESTION, "filters": "source ==="})


def test_search_with_a_pipeline_recipe_or_a_mode(sample_store: Path):
    hybrid, lexical = build_tools(
        [
            {"type": "search", "collection": "sample", "home": str(sample_store), "pipeline": "hybrid"},
            {
                "type": "search",
                "collection": "sample",
                "home": str(sample_store),
                "mode": "lexical",
                "name": "keywords",
            },
        ]
    )
    out = hybrid.call({"query": "Sinback time-sharing", "top_k": 2})
    assert out.hits[0].chunk.source == "packet-switching.md"
    assert set(out.hits[0].scores) >= {"dense", "lexical"}  # both retrievers ran and were fused
    out = lexical.call({"query": "Sinback", "top_k": 2})
    assert out.hits[0].chunk.source == "packet-switching.md" and out.hits[0].origin == "lexical"
    for tool in (hybrid, lexical):
        tool.close()


def test_search_async_and_lazy_opening(sample_store: Path):
    tool = SearchTool(collection="sample", home=sample_store)
    assert tool._collections == {}  # nothing opened when built
    out = asyncio.run(tool.acall({"query": QUESTION, "top_k": 1}))
    assert out.hits[0].chunk.source == "packet-switching.md"
    opened = tool.collection("sample")
    tool.call({"query": "rainforest", "top_k": 1})
    assert tool.collection("sample") is opened  # cached per tool
    tool.close()


def test_a_missing_collection_is_a_tool_error_when_called(tmp_path: Path):
    tool = SearchTool(collection="nope", home=tmp_path)
    with pytest.raises(ToolError, match=r"^search: collection 'nope' does not exist"):
        tool.call({"query": "x"})


def test_collection_tool_configs_are_checked_when_built_and_round_trip(sample_store: Path):
    with pytest.raises(ConfigError, match="need 1 <= top_k <= max_top_k"):
        SearchTool(collection="sample", top_k=30, max_top_k=20)
    with pytest.raises(ConfigError, match="no-such-recipe"):
        SearchTool(collection="sample", pipeline="no-such-recipe")
    with pytest.raises(ConfigError, match="'collection' must name a collection"):
        AskTool(collection="")
    specs = [
        {"type": "search", "collection": "sample", "home": str(sample_store), "pipeline": "hybrid", "top_k": 3},
        {"type": "ask", "collection": "sample", "home": str(sample_store), "max_tokens": 8, "name": "ask_docs"},
        {"type": "list_collections", "home": str(sample_store), "collections": ["sample"]},
    ]
    tools = build_tools(specs)
    configs = [t.to_config() for t in tools]
    for spec, config in zip(specs, configs, strict=True):
        assert spec.items() <= config.items()
    assert [t.to_config() for t in build_tools(configs)] == configs


def test_list_collections_shows_counts_and_metadata_fields(sample_store: Path):
    tool = ListCollectionsTool(home=sample_store)
    out = tool.call({})
    [entry] = out.data
    assert entry["name"] == "sample" and entry["documents"] == 5 and entry["chunks"] > 5
    fields = {f["name"]: f for f in entry["fields"]}
    assert fields["source"]["type"] == "string"
    assert set(fields["source"]["examples"]) <= {
        "amazon-rainforest.md",
        "black-death.txt",
        "oil-crisis-1973.html",
        "packet-switching.md",
        "super-bowl-50.pdf",
    }
    assert 1 <= len(fields["source"]["examples"]) <= 3
    assert fields["page"]["type"] == "number"
    assert "document_id" not in fields  # bookkeeping, not a useful filter
    lines = out.content.splitlines()
    assert lines[0] == f"sample: 5 documents, {entry['chunks']} chunks"
    assert any(line.startswith("  - source (string), e.g. '") for line in lines)
    assert tool.call({"collection": "sample"}).data == out.data
    with pytest.raises(ToolError, match=r"^list_collections: no collection named 'other'; collections: sample$"):
        tool.call({"collection": "other"})
    tool.close()


def test_list_collections_can_be_limited_to_some_collections(sample_store: Path, tmp_path: Path):
    assert ListCollectionsTool(home=sample_store, collections=["elsewhere"]).call({}).content == (
        "There are no collections."
    )
    assert ListCollectionsTool(home=tmp_path).call({}).data == []


def test_ask_answers_with_the_pipelines_citations_using_the_local_model(sample_store: Path):
    tool = AskTool(collection="sample", home=sample_store, max_tokens=24, top_k=2)
    out = tool.call({"question": QUESTION})
    assert out.content.strip()
    assert out.hits[0].chunk.source == "packet-switching.md"
    assert len(out.hits) <= 2
    assert out.data["text"].strip() and out.content.startswith(out.data["text"].strip())
    assert [c.to_dict() for c in out.citations] == out.data["citations"]
    for citation in out.citations:  # each cites one of the answer's own context blocks
        assert citation.chunk_id == out.hits[citation.number - 1].chunk.id
    if out.citations:
        assert "\nSources: [" in out.content
    assert 0 < out.data["usage"]["completion_tokens"] <= 24
    tool.close()
