"""``/mcp`` on the real service (uvicorn on loopback) with the service's API keys, driven by the ``mcp``
SDK's streamable HTTP client; one ``ask`` with the real local model."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_fixtures import TINY_PIPELINE
from ragkit_mcp.server import document_uri

from ragkit.service import ApiKey, ServiceSettings, create_app
from tests.service.conftest import LiveServer

READER = "mcp-reader-key-0123456789"
LIMITED = "mcp-limited-key-0123456789"
"""A read key limited to the collection 'other'."""


@pytest.fixture(scope="module")
def service(corpus: dict[str, Any]):
    settings = ServiceSettings(
        store_dir=corpus["home"],
        api_keys=[
            ApiKey(key=READER, name="reader", scopes={"read"}),
            ApiKey(key=LIMITED, name="limited", scopes={"read"}, collections=["other"]),
        ],
        ingest_roots=[corpus["docs"]],
        pipelines={"tiny": TINY_PIPELINE},
        default_pipeline="tiny",
    )
    with LiveServer(create_app(settings)) as server:
        yield server


def _client(url: str, key: str | None, header: str = "Authorization", mode: str = "auto") -> Client:
    """The SDK's client; ``mode="legacy"``: the initialize handshake of the 2025 protocol versions."""
    headers = {header: f"Bearer {key}" if header == "Authorization" else key} if key else None
    transport = streamable_http_client(f"{url}/mcp", http_client=create_mcp_http_client(headers=headers))
    return Client(transport, cache=None, read_timeout_seconds=120, mode=mode)


def test_a_read_key_searches_asks_and_reads_documents(service):
    async def session() -> dict[str, Any]:
        async with _client(service.url, READER) as client:
            return {
                "tools": await client.list_tools(),
                "listed": await client.call_tool("list_collections", {}),
                "found": await client.call_tool(
                    "search", {"collection": "sample", "query": "What is packet switching?", "top_k": 2}
                ),
                "answer": await client.call_tool(
                    "ask", {"collection": "sample", "question": "Which team won Super Bowl 50?", "max_tokens": 8}
                ),
                "document": await client.read_resource(document_uri("sample", "packet-switching.md")),
                "pdf": await client.read_resource(document_uri("sample", "super-bowl-50.pdf")),
            }

    out = anyio.run(session)
    assert {"search", "ask", "list_collections"} <= {t.name for t in out["tools"].tools}
    assert {c["name"] for c in out["listed"].structured_content["collections"]} == {"sample", "other"}
    hits = out["found"].structured_content["hits"]
    assert hits and hits[0]["source"] == "packet-switching.md"

    answer = out["answer"]
    assert not answer.is_error, answer.content[0].text
    data = answer.structured_content
    assert data["pipeline"] == "tiny"
    assert data["answer"].strip()
    assert data["usage"]["completion_tokens"] <= 8
    for citation in data["citations"]:  # the small model may cite nothing; what it cites must be real
        assert citation["source"] in {"super-bowl-50.pdf", "packet-switching.md", "amazon-rainforest.md"}
        assert citation["chunk_id"] and citation["end"] > citation["start"]

    # the file itself (it lies in the ingest roots), as the REST download sends it
    folder = service.app.state.ragkit.settings.ingest_roots[0] / "sample"
    original = (folder / "packet-switching.md").read_text("utf-8")
    assert out["document"].contents[0].text == original
    pdf = out["pdf"].contents[0]  # the PDF's bytes, as a blob
    assert pdf.mime_type == "application/pdf"
    assert base64.b64decode(pdf.blob) == (folder / "super-bowl-50.pdf").read_bytes()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_limited_key_sees_only_its_collection(service, mode):
    async def session() -> dict[str, Any]:
        async with _client(service.url, LIMITED, header="X-API-Key", mode=mode) as client:
            return {
                "listed": await client.call_tool("list_collections", {}),
                "own": await client.call_tool("search", {"collection": "other", "query": "plague"}),
                "hidden": await client.call_tool("search", {"collection": "sample", "query": "Super Bowl"}),
                "missing": await client.call_tool("search", {"collection": "nope", "query": "Super Bowl"}),
                "resources": await client.list_resources(),
            }

    out = anyio.run(session)
    assert [c["name"] for c in out["listed"].structured_content["collections"]] == ["other"]
    assert not out["own"].is_error and out["own"].structured_content["hits"]
    hidden, missing = out["hidden"], out["missing"]
    assert hidden.is_error and missing.is_error
    # the same answer for a hidden collection as for one that does not exist
    assert hidden.content[0].text.replace("sample", "X") == missing.content[0].text.replace("nope", "X")
    uris = [str(r.uri) for r in out["resources"].resources]
    assert uris and all(u.startswith("ragkit://collections/other/") for u in uris)

    async def read_hidden() -> MCPError | None:
        async with _client(service.url, LIMITED, header="X-API-Key", mode=mode) as client:
            try:
                await client.read_resource(document_uri("sample", "packet-switching.md"))
            except MCPError as exc:
                return exc
        return None

    refused = anyio.run(read_hidden)
    assert refused is not None and refused.code == -32002 and "may access" in str(refused)


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_without_a_valid_key_the_endpoint_refuses(service, key):
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(f"{service.url}/mcp", json=body, headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json()["error"]["message"]

    async def session() -> None:
        async with _client(service.url, key) as client:
            await client.list_tools()

    with pytest.raises(BaseException):  # noqa: B017 - the SDK's client fails to connect on a 401
        anyio.run(session)


def test_mcp_tools_over_http_with_the_key_from_the_environment(service, monkeypatch):
    from ragkit_mcp import mcp_tools

    monkeypatch.setenv("MCP_TEST_DOCS_KEY", LIMITED)
    headers = {"Authorization": "Bearer ${MCP_TEST_DOCS_KEY}"}
    tools = {t.name: t for t in mcp_tools(server=f"{service.url}/mcp", headers=headers, prefix="docs_")}
    assert set(tools) == {"docs_search", "docs_ask", "docs_list_collections"}
    assert tools["docs_search"].to_config()["headers"] == headers  # the config holds no secret
    output = tools["docs_search"].call({"collection": "other", "query": "What was the Black Death?", "top_k": 1})
    assert [h.chunk.source for h in output.hits] == ["black-death.txt"]
    listed = tools["docs_list_collections"].call({})
    assert [c["name"] for c in listed.data["collections"]] == ["other"]  # the limited key's view
    tools["docs_search"].close()
