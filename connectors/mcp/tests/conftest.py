"""Fixtures of the MCP tests (see :mod:`mcp_fixtures`)."""

from mcp_fixtures import corpus

__all__ = ["corpus"]
