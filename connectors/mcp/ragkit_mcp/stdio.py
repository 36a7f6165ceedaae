"""The stdio transport: one MCP session over the process's stdin and stdout."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp.server import ServerRequestContext
from mcp.server.stdio import stdio_server

from ragkit.rag import RagPipeline
from ragkit.service.app import build_pipelines
from ragkit.service.auth import Principal
from ragkit.service.settings import ServiceSettings
from ragkit.service.state import ServiceState
from ragkit_mcp.server import RagkitMcp

LOCAL_SCOPES = frozenset({"read"})
"""What the local user may do over stdio: search, ask and read documents (nothing is written)."""


def local_state(
    config: Path | None = None,
    store_dir: Path | None = None,
    pipeline: str | None = None,
) -> ServiceState:
    """The service's state as ``ragkit serve`` would build it from ``config`` and the environment.

    ``pipeline`` (a recipe name or YAML path) becomes the default pipeline.
    """
    settings = ServiceSettings.load(config, store_dir=store_dir)
    pipelines = build_pipelines(settings)
    if pipeline is not None and pipeline not in pipelines:
        loaded = RagPipeline.load(pipeline)
        name = Path(pipeline).stem if pipeline.endswith((".yaml", ".yml")) else pipeline
        loaded.name = name
        pipelines[name] = loaded
        pipeline = name
    if pipeline is not None:
        settings = settings.model_copy(update={"default_pipeline": pipeline})
    return ServiceState(settings, pipelines)


async def serve_stdio(
    config: Path | None = None,
    store_dir: Path | None = None,
    collections: Sequence[str] | None = None,
    pipeline: str | None = None,
) -> None:
    """Serve until stdin closes; the caller is the local user, limited to ``collections`` when given."""
    state = local_state(config, store_dir, pipeline)
    principal = Principal("local", LOCAL_SCOPES, tuple(collections) if collections is not None else None)

    def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
        return principal

    server = RagkitMcp(state, principal_of, allow_recipes=True).server()
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await asyncio.to_thread(state.close)
