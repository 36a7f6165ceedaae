"""The MCP client tool against ragkit's own MCP server over stdio: the tools are called directly, as an
agent would call them (no model runs)."""

from __future__ import annotations

import pytest
from mcp_fixtures import RAGKIT, server_env
from ragkit_mcp import McpTool, mcp_tools
from ragkit_mcp.client import McpServer, connection

from ragkit.agents.tools import ToolArgumentsError, ToolError, build_tools


def _command(corpus) -> list[str]:
    return [RAGKIT, "mcp", "--config", str(corpus["config"])]


def test_mcp_tools_are_ragkit_tools_whose_search_carries_hits_and_citations(corpus):
    tools = {t.name: t for t in mcp_tools(server=_command(corpus), env=server_env(corpus["home"]))}
    assert set(tools) == {"search", "ask", "list_collections"}
    search = tools["search"]
    assert isinstance(search, McpTool)
    spec = search.spec()["function"]
    assert spec["name"] == "search" and "passages" in spec["description"]
    assert {"collection", "query", "top_k"} <= set(spec["parameters"]["properties"])
    assert "collection" in spec["parameters"]["required"]

    with pytest.raises(ToolArgumentsError, match="collection"):  # refused before any server is spawned
        search.call({"query": "Super Bowl"})

    output = search.call({"collection": "sample", "query": "Which team won Super Bowl 50?", "top_k": 2})
    assert output.hits and output.hits[0].chunk.source == "super-bowl-50.pdf"
    assert [c.number for c in output.citations] == [1, 2]
    assert output.citations[0].source == "super-bowl-50.pdf"
    assert output.citations[0].chunk_id == output.hits[0].chunk.id
    assert "[1] super-bowl-50.pdf" in output.content
    assert output.data["hits"][0]["source"] == "super-bowl-50.pdf"
    # listing and calling went over one kept session: the server was started once
    assert connection(search.server).opened == 1
    search.close()


def test_a_yaml_tool_entry_of_type_mcp_is_one_dispatcher_over_the_servers_tools(corpus):
    env = server_env(corpus["home"])
    opened = connection(McpServer.of(_command(corpus), env=env)).opened  # sessions opened by earlier tests
    [dispatcher] = build_tools([{"type": "mcp", "command": _command(corpus), "env": env, "name": "docs"}])
    assert isinstance(dispatcher, McpTool) and dispatcher.name == "docs"
    assert "- search(" in dispatcher.description and "- ask(" in dispatcher.description
    assert dispatcher.parameters["required"] == ["tool"]

    listed = dispatcher.call({"tool": "list_collections", "arguments": {}})
    assert {c["name"] for c in listed.data["collections"]} == {"sample", "other"}
    assert "sample: 3 documents" in listed.content

    with pytest.raises(ToolError, match="nope"):  # the server's error becomes the observation
        dispatcher.call({"tool": "search", "arguments": {"collection": "nope", "query": "anything"}})

    assert dispatcher.to_config()["command"] == _command(corpus)
    assert connection(dispatcher.server).opened == opened + 1  # one server process for all three calls
    dispatcher.close()
    again = dispatcher.call({"tool": "list_collections", "arguments": {}})  # a closed session reopens
    assert again.data == listed.data
    assert connection(dispatcher.server).opened == opened + 2
    dispatcher.close()


def test_a_server_that_cannot_start_is_a_clear_error(tmp_path):
    from ragkit.errors import ConfigError, UnavailableError

    with pytest.raises(ConfigError, match="either 'command'"):
        McpTool()
    with pytest.raises(UnavailableError, match="cannot list the tools"):
        mcp_tools(server=[str(tmp_path / "no-such-server")])
