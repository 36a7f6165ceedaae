"""Agents named by recipe: ``pipelines/agent.yaml`` and any recipe with an ``agent:`` section.

Shared by ``ragkit agent`` and ``POST /v1/agents/{name}/runs``: the recipe's
agent config, with the store folder given to the tools that read
collections, and the command line's overrides (``--tools``,
``--collection``, ``--max-steps``) applied.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError, NotFoundError

COLLECTION_TOOLS = frozenset({"search", "ask"})
"""Tool types that read one collection (``collection`` option)."""
HOME_TOOLS = frozenset({"search", "ask", "list_collections"})
"""Tool types that read the store folder (``home`` option)."""
AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def agent_config(
    name_or_path: str,
    *,
    home: str | Path | None = None,
    tools: Sequence[str] | None = None,
    collection: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The agent config of a recipe, ready for :meth:`Agent.from_config <ragkit.agents.agent.Agent.from_config>`.

    Args:
        name_or_path: A recipe name (``agent``) or YAML file with an ``agent:`` section.
        home: The store folder the collection tools read (unless their config names one).
        tools: Tool names replacing the recipe's list (``search``, ``calculator`` ...).
        collection: The collection of the ``search`` and ``ask`` tools.
        **overrides: Agent options (``max_steps`` ...); ``None`` values are ignored.

    """
    from ragkit.agents.agent import load_agent_config

    config = load_agent_config(name_or_path, **overrides)
    specs: list[Any] = list(tools) if tools else list(config.get("tools") or [])
    config["tools"] = [_tool_spec(spec, home, collection) for spec in specs]
    return config


def service_agent_config(name: str, home: Path) -> dict[str, Any]:
    """The config of the agent recipe ``name`` for the service: names only (no paths), tools in its store folder."""
    if not AGENT_NAME.match(name):
        raise NotFoundError(f"no agent named {name!r} (agents are recipes with an 'agent:' section)")
    try:
        return agent_config(name, home=home)
    except ConfigError as exc:
        if "has no 'agent:' section" in str(exc):
            raise NotFoundError(f"no agent named {name!r}: recipe {name!r} has no 'agent:' section") from None
        raise


def _tool_spec(spec: Any, home: str | Path | None, collection: str | None) -> Any:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        return spec
    spec = dict(spec)
    kind = spec.get("type")
    if kind in COLLECTION_TOOLS and collection is not None:
        spec["collection"] = collection
    if kind in COLLECTION_TOOLS and not spec.get("collection"):
        raise ConfigError(f"tool {kind!r} needs a collection: give --collection (or 'collection' in the recipe)")
    if kind in HOME_TOOLS and home is not None and spec.get("home") is None:
        spec["home"] = str(home)
    return spec
