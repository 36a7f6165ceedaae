"""``ragkit mcp`` over stdio, spawned as a real subprocess and driven by the ``mcp`` SDK's own client."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp_fixtures import RAGKIT, server_env
from ragkit_mcp.server import document_uri


def _client(corpus: dict[str, Any], *args: str) -> Client:
    params = StdioServerParameters(
        command=RAGKIT, args=["mcp", "--config", str(corpus["config"]), *args], env=server_env(corpus["home"])
    )
    return Client(params, cache=None, read_timeout_seconds=120)


def test_stdio_lists_tools_searches_with_citations_and_reads_a_document(corpus):
    async def session() -> dict[str, Any]:
        async with _client(corpus) as client:
            tools = await client.list_tools()
            found = await client.call_tool(
                "search", {"collection": "sample", "query": "Which team won Super Bowl 50?", "top_k": 3}
            )
            listed = await client.call_tool("list_collections", {})
            resources = await client.list_resources()
            templates = await client.list_resource_templates()
            document = await client.read_resource(document_uri("sample", "packet-switching.md"))
            pdf = await client.read_resource(document_uri("sample", "super-bowl-50.pdf"))
            missing = await client.call_tool("search", {"collection": "nope", "query": "anything"})
            bad = await client.call_tool("search", {"collection": "sample", "query": "x", "top_k": 0})
            return {
                "tools": tools,
                "found": found,
                "listed": listed,
                "resources": resources,
                "templates": templates,
                "document": document,
                "pdf": pdf,
                "missing": missing,
                "bad": bad,
            }

    out = anyio.run(session)
    names = {t.name for t in out["tools"].tools}
    assert {"search", "ask", "list_collections"} <= names
    search_tool = next(t for t in out["tools"].tools if t.name == "search")
    assert {"collection", "query", "top_k", "filters", "pipeline"} <= set(search_tool.input_schema["properties"])

    found = out["found"]
    assert not found.is_error
    hits = found.structured_content["hits"]
    assert 1 <= len(hits) <= 3
    assert hits[0]["source"] == "super-bowl-50.pdf"  # the right document, ranked first
    for key in ("chunk_id", "start", "end", "page", "section", "score", "text"):
        assert key in hits[0]
    assert hits[0]["end"] > hits[0]["start"]
    assert hits[0]["page"] is not None  # a PDF's hits name their page
    assert "[1] super-bowl-50.pdf" in found.content[0].text

    collections = {c["name"]: c for c in out["listed"].structured_content["collections"]}
    assert set(collections) == {"sample", "other"}
    assert collections["sample"]["documents"] == 3

    uris = {str(r.uri) for r in out["resources"].resources}
    assert document_uri("sample", "super-bowl-50.pdf") in uris
    assert document_uri("other", "black-death.txt") in uris or len(uris) == 4
    assert out["templates"].resource_templates[0].uri_template == "ragkit://collections/{name}/documents/{source}"
    # no ingest roots over stdio by default: the text comes from the stored chunks
    text = out["document"].contents[0].text
    original = (corpus["docs"] / "sample" / "packet-switching.md").read_text(encoding="utf-8")
    first_paragraph = original.split("\n\n")[1].strip()
    assert first_paragraph[:200] in text
    assert len(text) >= 0.8 * len(original.strip())
    assert "Super Bowl 50" in out["pdf"].contents[0].text  # a PDF's text, as its chunks hold it

    assert out["missing"].is_error and "nope" in out["missing"].content[0].text
    assert out["bad"].is_error and "top_k" in out["bad"].content[0].text


def test_stdio_collections_option_hides_the_others(corpus):
    async def session() -> tuple[Any, Any, Any]:
        async with _client(corpus, "--collections", "other") as client:
            listed = await client.call_tool("list_collections", {})
            hidden = await client.call_tool("search", {"collection": "sample", "query": "Super Bowl"})
            resources = await client.list_resources()
            return listed, hidden, resources

    listed, hidden, resources = anyio.run(session)
    assert [c["name"] for c in listed.structured_content["collections"]] == ["other"]
    assert hidden.is_error and "may access" in hidden.content[0].text
    assert all("/collections/other/" in str(r.uri) for r in resources.resources)
