"""The tools of any MCP server as ragkit agent tools.

An MCP server is named by a command to spawn (stdio) or the URL of its
streamable HTTP endpoint::

    from ragkit_mcp import mcp_tools

    tools = mcp_tools(server=["ragkit", "mcp"], env={"RAGKIT_HOME": "/data/ragkit"})
    tools = mcp_tools(server="https://rag.example.com/mcp", headers={"Authorization": "Bearer s3cret"})

:func:`mcp_tools` lists the server's tools and returns one :class:`McpTool`
per tool, each with the server's own name, description and JSON schema.
In a YAML tool list one config is one tool (``build_tools`` builds one tool
per entry), so there ``type: mcp`` comes in two forms::

    tools:
      - {type: mcp, command: [ragkit, mcp], tool: search}        # one tool of the server, as itself
      - {type: mcp, url: "http://127.0.0.1:8000/mcp", name: docs} # every tool, behind one dispatcher

Without ``tool`` the McpTool is a dispatcher: its arguments are ``tool``
(the name of one of the server's tools, listed in its description) and
``arguments`` (that tool's arguments).

The tools of one server share one connection (:class:`McpConnection`),
opened on first use and kept open: a stdio server is started once and
answers every call; it is closed at exit or with :func:`close_connections`. A result's text becomes the observation, its
structured content the ``data``; an error result is a
:class:`~ragkit.agents.tools.ToolError` (the model sees the server's
message). Hits and citations in the structured content of a ragkit server
(``search``, ``ask``) become the output's ``hits`` and ``citations``, so an
agent's answer cites the remote documents.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import json
import os
import re
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import mcp.types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from ragkit.agents.tools import Tool, ToolArgumentsError, ToolError, ToolOutput, arguments_object
from ragkit.errors import ConfigError, UnavailableError
from ragkit.rag.answer import Citation
from ragkit.schema import Hit

__all__ = ["McpConnection", "McpServer", "McpTool", "close_connections", "connection", "list_server_tools", "mcp_tools"]

T = TypeVar("T")

DISPATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "description": "The name of the server's tool to call."},
        "arguments": {"type": "object", "description": "That tool's arguments, as its description says."},
    },
    "required": ["tool"],
    "additionalProperties": False,
}


@dataclasses.dataclass(frozen=True)
class McpServer:
    """Where an MCP server is: ``command`` (spawned, stdio) or ``url`` (streamable HTTP), and how to reach it.

    ``env`` is added to the spawned process's environment (over the few
    variables the SDK passes on: ``HOME``, ``PATH`` ...); ``headers`` go with
    every HTTP request (an API key). In both, ``${NAME}`` stands for the
    environment variable ``NAME``, read when connecting, so a config can say
    ``Authorization: "Bearer ${DOCS_MCP_KEY}"`` and hold no secret.
    """

    command: tuple[str, ...] | None = None
    url: str | None = None
    env: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    cwd: str | None = None
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if (self.command is None) == (self.url is None):
            raise ConfigError("an MCP server needs either 'command' (a list: program and arguments) or 'url'")
        if self.command is not None and (not self.command or not all(isinstance(p, str) for p in self.command)):
            raise ConfigError(f"'command' must be a non-empty list of strings, got {self.command!r}")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"'url' must be an http(s) URL such as http://127.0.0.1:8000/mcp, got {self.url!r}")

    @classmethod
    def of(
        cls,
        server: Sequence[str] | str,
        env: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> McpServer:
        """A command (a list) or a URL (a string)."""
        if isinstance(server, str):
            return cls(url=server, env=env, headers=headers, cwd=cwd)
        return cls(command=tuple(server), env=env, headers=headers, cwd=cwd)

    def describe(self) -> str:
        """The server in a few words, for messages."""
        return self.url if self.url is not None else " ".join(self.command or ())

    def client(self) -> Client:
        """A fresh SDK client for this server (not yet connected); ``${NAME}`` in env and header values expanded."""
        if self.command is not None:
            env = {key: expand(value, f"env {key!r}") for key, value in (self.env or {}).items()}
            params = StdioServerParameters(command=self.command[0], args=list(self.command[1:]), env=env, cwd=self.cwd)
            return Client(params, cache=None, read_timeout_seconds=self.timeout_s)
        assert self.url is not None
        headers = {key: expand(value, f"header {key!r}") for key, value in (self.headers or {}).items()}
        http = create_mcp_http_client(headers=headers)
        transport = streamable_http_client(self.url, http_client=http)
        return Client(transport, cache=None, read_timeout_seconds=self.timeout_s)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(value: str, where: str) -> str:
    """``value`` with each ``${NAME}`` replaced by the environment variable (so configs need hold no secret)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"MCP server {where}: the environment variable {name} is not set")
        return os.environ[name]

    return _VARIABLE.sub(replace, str(value))


async def _list_tools(client: Client) -> list[types.Tool]:
    return list((await client.list_tools()).tools)


def list_server_tools(server: McpServer) -> list[types.Tool]:
    """The tools ``server`` lists (over its shared connection); :class:`UnavailableError` when it cannot be reached."""
    try:
        return connection(server).run_sync(_list_tools)
    except UnavailableError as exc:
        raise UnavailableError(f"cannot list the tools of MCP server {server.describe()!r}: {exc}") from None
    except Exception as exc:
        raise UnavailableError(f"cannot list the tools of MCP server {server.describe()!r}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__


class McpConnection:
    """One open session with an MCP server, kept by a background thread with its own event loop.

    Opened on first use and shared by every :class:`McpTool` of the same
    server (see :func:`connection`), so a stdio server is started once, not
    per call. When the session breaks (the server exited), the next call
    opens a new one. :meth:`close` ends it (and stops a started server);
    :func:`close_connections` closes them all and runs at exit.
    """

    def __init__(self, server: McpServer) -> None:
        self.server = server
        self.opened = 0
        """How many sessions this connection has opened so far."""
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Client | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()

    def _open(self) -> Client:
        with self._lock:
            if self._client is not None and self._thread is not None and self._thread.is_alive():
                return self._client
            self._ready.clear()
            self._error = None
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_until_complete, args=(self._serve(),), daemon=True)
            thread.name = f"ragkit-mcp-{self.server.describe()[:40]}"
            self._loop, self._thread = loop, thread
            thread.start()
            self._ready.wait(self.server.timeout_s)
            if self._client is None:
                reason = _reason(self._error) if self._error is not None else "it did not answer in time"
                raise UnavailableError(f"cannot connect to MCP server {self.server.describe()!r}: {reason}")
            return self._client

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with self.server.client() as client:
                self._client = client
                self.opened += 1
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # reported to the caller waiting in _open, or to the next call
            self._error = exc
        finally:
            self._client = None
            self._ready.set()

    async def run(self, work: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        """``await work(client)`` on the open session (opened first if needed), from any event loop."""
        client = await asyncio.to_thread(self._open)
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(work(client), self._loop)
        return await asyncio.wrap_future(future)

    def run_sync(self, work: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
        """:meth:`run` from synchronous code."""
        client = self._open()
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(work(client), self._loop).result()

    def close(self) -> None:
        """End the session (a started server exits); the next call opens a new one."""
        with self._lock:
            loop, thread, stop = self._loop, self._thread, self._stop
            self._loop = self._thread = None
        if loop is not None and stop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=10)
        if loop is not None and not loop.is_running():
            loop.close()


_connections: dict[str, McpConnection] = {}
_connections_lock = threading.Lock()


def connection(server: McpServer) -> McpConnection:
    """The shared connection to ``server`` (the same command, URL, environment and headers: the same one)."""
    key = json.dumps(dataclasses.asdict(server), sort_keys=True, default=str)
    with _connections_lock:
        if key not in _connections:
            _connections[key] = McpConnection(server)
        return _connections[key]


@atexit.register
def close_connections() -> None:
    """Close every open MCP connection (started servers exit)."""
    with _connections_lock:
        open_ones = list(_connections.values())
        _connections.clear()
    for item in open_ones:
        item.close()


class McpTool(Tool):
    """One tool of an MCP server (``tool``), or all of them behind one dispatcher (no ``tool``).

    Args:
        command: The server's command line, started once and kept (stdio).
        url: The server's streamable HTTP endpoint (instead of ``command``).
        tool: The server's tool this tool calls; leave it out for a dispatcher.
        env: Environment variables for the spawned server (``RAGKIT_HOME`` ...).
        headers: HTTP headers for every request (``Authorization: Bearer <key>``).
        cwd: The spawned server's working folder.
        input_schema: The tool's JSON schema, when known (else the server is asked).
        name: The name the model calls (default: ``tool``, or ``mcp`` for a dispatcher).
        description: What the model reads (default: the server's description).

    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        url: str | None = None,
        tool: str | None = None,
        env: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 120.0,
        max_retries: int = 2,
    ) -> None:
        if isinstance(command, str):
            raise ConfigError(f"tool 'mcp': 'command' must be a list (program, then arguments), got {command!r}")
        self.server = McpServer(
            command=tuple(command) if command is not None else None,
            url=url,
            env=dict(env) if env else None,
            headers=dict(headers) if headers else None,
            cwd=cwd,
            timeout_s=timeout_s or 120.0,
        )
        self.tool = tool
        schema: Mapping[str, Any] | None = input_schema
        if tool is None:
            schema = DISPATCH_SCHEMA
            if description is None:
                description = self._dispatch_description(list_server_tools(self.server))
        elif schema is None or description is None:
            listed = {t.name: t for t in list_server_tools(self.server)}
            if tool not in listed:
                raise ConfigError(
                    f"tool 'mcp': the MCP server {self.server.describe()!r} has no tool {tool!r} "
                    f"(it has: {', '.join(sorted(listed)) or 'none'})"
                )
            schema = schema if schema is not None else dict(listed[tool].input_schema)
            description = description or listed[tool].description or f"The MCP tool {tool!r}."
        super().__init__(
            name=name or (_tool_name(tool) if tool else "mcp"),
            description=description,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        self._schema = _object_schema(schema)

    def _dispatch_description(self, listed: list[types.Tool]) -> str:
        lines = [f"Call a tool of the MCP server {self.server.describe()!r}: give 'tool' and its 'arguments'. Tools:"]
        for item in listed:
            summary = (item.description or "").strip().split("\n")[0]
            properties = ", ".join(sorted((item.input_schema or {}).get("properties", {})))
            lines.append(f"- {item.name}({properties}): {summary}")
        return "\n".join(lines)

    @property
    def parameters(self) -> dict[str, Any]:
        """The server's JSON schema of the arguments (the dispatcher's: ``tool`` and ``arguments``)."""
        return self._schema

    def validate(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
        """The arguments as a JSON object, with the required ones present; the server checks the rest."""
        arguments = arguments_object(arguments, self.name)
        missing = [key for key in self._schema.get("required", []) if arguments.get(key) is None]
        if missing:
            raise ToolArgumentsError(
                f"invalid arguments: {', '.join(missing)}: field required",
                tool=self.name,
                errors=[{"field": key, "problem": "field required"} for key in missing],
            )
        return dict(arguments)

    async def arun(self, **arguments: Any) -> ToolOutput:
        """Call the server's tool (the dispatcher: the one named by ``tool``)."""
        if self.tool is None:
            target = str(arguments.get("tool", ""))
            inner = arguments.get("arguments") or {}
            if not isinstance(inner, Mapping):
                raise ToolArgumentsError("'arguments' must be a JSON object", tool=self.name)
        else:
            target, inner = self.tool, arguments

        async def call(client: Client) -> Any:
            return await client.call_tool(target, dict(inner))

        try:
            result = await connection(self.server).run(call)
        except MCPError as exc:
            raise ToolError(f"the MCP server refused the call to {target!r}: {exc.error.message}") from None
        except Exception as exc:
            raise ToolError(f"MCP server {self.server.describe()!r} failed: {_reason(exc)}") from exc
        if not isinstance(result, types.CallToolResult):
            raise ToolError(f"the MCP tool {target!r} asked for more input, which agents cannot give")
        return tool_output(result, target)

    def close(self) -> None:
        """Close the connection to the server (shared with the other tools of that server; reopened on use)."""
        connection(self.server).close()


def _tool_name(name: str) -> str:
    """An MCP tool's name as a ragkit tool name (letters, digits, ``_`` and ``-``; 64 at most)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "mcp"


def _object_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    data = dict(schema or {})
    data["type"] = "object"
    data.setdefault("properties", {})
    data.setdefault("required", [])
    return data


def _text_of(result: types.CallToolResult) -> str:
    parts = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{getattr(block, 'type', 'content')} content]")
    return "\n".join(parts)


_CITATION_FIELDS = {f.name for f in dataclasses.fields(Citation)}


def tool_output(result: types.CallToolResult, tool: str) -> ToolOutput:
    """A call's result as a :class:`ToolOutput` (ragkit hits and citations recognised); errors raise."""
    text = _text_of(result)
    if result.is_error:
        raise ToolError(text or f"the MCP tool {tool!r} failed")
    data = result.structured_content
    hits: list[Hit] = []
    citations: list[Citation] = []
    if isinstance(data, Mapping):
        for item in data.get("hits") or []:
            try:
                hits.append(Hit.from_dict(item))
            except Exception:  # not ragkit's hit shape: the data still carries it
                break
        for item in data.get("citations") or []:
            try:
                citations.append(Citation(**{k: v for k, v in item.items() if k in _CITATION_FIELDS}))
            except Exception:
                break
        if hits and not citations:
            citations = [Citation.from_hit(number, hit) for number, hit in enumerate(hits, 1)]
    if not text and data is not None:
        text = json.dumps(data, ensure_ascii=False)
    return ToolOutput(content=text, citations=citations, hits=hits, data=data)


def mcp_tools(
    server: Sequence[str] | str,
    *,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    cwd: str | None = None,
    only: Sequence[str] | None = None,
    prefix: str = "",
    timeout_s: float | None = 120.0,
) -> list[McpTool]:
    """One :class:`McpTool` per tool of ``server`` (a command list, or an ``http(s)://`` URL).

    ``only`` keeps those tools; ``prefix`` goes before each name (two
    servers with a ``search`` tool: ``prefix="docs_"``). ``env`` is added to
    a spawned server's environment; ``headers`` go with every HTTP request.
    The server is asked for its tools once, now.
    """
    where = McpServer.of(server, env=env, headers=headers, cwd=cwd)
    listed = list_server_tools(where)
    if only is not None:
        known = {t.name for t in listed}
        unknown = sorted(set(only) - known)
        if unknown:
            raise ConfigError(f"the MCP server {where.describe()!r} has no tool(s) {', '.join(unknown)}")
        listed = [t for t in listed if t.name in only]
    command = list(where.command) if where.command is not None else None
    return [
        McpTool(
            command=command,
            url=where.url,
            tool=item.name,
            env=env,
            headers=headers,
            cwd=cwd,
            input_schema=dict(item.input_schema),
            name=_tool_name(f"{prefix}{item.name}"),
            description=item.description or f"The MCP tool {item.name!r}.",
            timeout_s=timeout_s,
        )
        for item in listed
    ]
