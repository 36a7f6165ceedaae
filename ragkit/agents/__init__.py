"""Agents and their tools.

The agent lives in :mod:`ragkit.agents.agent` (its result and trace in
:mod:`ragkit.agents.trace`, its streamed events in :mod:`ragkit.agents.events`);
the tool contract in :mod:`ragkit.agents.tools`; the built-in tools in
:mod:`ragkit.agents.builtin` and :mod:`ragkit.agents.calculator`. Names are
imported lazily, so ``import ragkit.agents`` costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "Agent": "ragkit.agents.agent",
    "AgentEvent": "ragkit.agents.events",
    "AgentResult": "ragkit.agents.trace",
    "AgentStep": "ragkit.agents.trace",
    "FunctionTool": "ragkit.agents.tools",
    "Tool": "ragkit.agents.tools",
    "ToolArgumentsError": "ragkit.agents.tools",
    "ToolError": "ragkit.agents.tools",
    "ToolOutput": "ragkit.agents.tools",
    "ToolTimeoutError": "ragkit.agents.tools",
    "build_tools": "ragkit.agents.tools",
    "tool": "ragkit.agents.tools",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit.agents' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
