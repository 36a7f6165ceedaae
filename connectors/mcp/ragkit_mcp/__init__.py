"""ragkit over the Model Context Protocol.

* ``ragkit mcp``: the collections as an MCP server over stdio
  (:mod:`ragkit_mcp.cli`);
* ``/mcp`` on ``ragkit serve``: the same server over streamable HTTP, with the
  service's API keys (:mod:`ragkit_mcp.http`);
* :class:`McpTool` and :func:`mcp_tools`: the tools of any MCP server as
  ragkit agent tools (:mod:`ragkit_mcp.client`).

The server itself is :class:`ragkit_mcp.server.RagkitMcp`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit_mcp.client import McpTool, mcp_tools
    from ragkit_mcp.server import RagkitMcp

__all__ = ["McpTool", "RagkitMcp", "mcp_tools"]

_LAZY = {"McpTool": "ragkit_mcp.client", "mcp_tools": "ragkit_mcp.client", "RagkitMcp": "ragkit_mcp.server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ragkit_mcp' has no attribute {name!r}")
