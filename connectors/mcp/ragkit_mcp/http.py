"""``/mcp`` on the REST service: ragkit's MCP server over streamable HTTP, behind the service's API keys.

``ragkit serve`` mounts it when ``ragkit-mcp`` is installed (the core's
:func:`ragkit.plugins.mount_connector` finds :func:`mount` as the
``service.mcp`` entry point). Every request is authenticated exactly as a
REST request is (``Authorization: Bearer <key>`` or ``X-API-Key: <key>``,
the same :class:`~ragkit.service.auth.Authenticator`): no key, or an unknown
one, is a 401 before any MCP message is read. The tools then act as that
key: a key limited to some collections lists, searches, asks and reads only
those (any other name gets the same "not found" as a collection that does
not exist). Search, ask and reading documents need the ``read`` scope, which
every key holds.

The MCP sessions are stateless (each POST stands alone, answered as JSON),
so a key is checked on every request and nothing is kept between them. On a
loopback host the SDK's DNS-rebinding protection is on (the ``Host`` must be
a loopback name).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ragkit.errors import InputError
from ragkit.service.auth import KEY_NAME_KEY, Principal
from ragkit.service.errors import ServiceHTTPError, http_error_handler
from ragkit.service.settings import is_loopback
from ragkit.service.state import ServiceState
from ragkit_mcp.server import RagkitMcp

PATH = "/mcp"
PRINCIPAL_KEY = "ragkit.mcp.principal"
"""Where the authenticated caller is kept in the request's ASGI scope."""


def _presented_key(scope: Scope) -> str | None:
    headers: dict[str, str] = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


def principal_of(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The caller of an MCP request over HTTP: the principal :class:`McpEndpoint` put in its scope."""
    request = ctx.request
    scope = getattr(request, "scope", None)
    principal = scope.get(PRINCIPAL_KEY) if isinstance(scope, dict) else None
    if not isinstance(principal, Principal):
        raise InputError("this MCP request carries no authenticated caller")
    return principal


class McpEndpoint:
    """The ASGI app at ``/mcp``: authenticates, then hands the request to the MCP session manager."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.server = RagkitMcp(state, principal_of).server()
        self._manager: StreamableHTTPSessionManager | None = None

    def _security(self) -> TransportSecuritySettings | None:
        if not is_loopback(self.state.settings.host):
            return None
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run a fresh session manager for the app's lifetime (a manager runs only once)."""
        manager = StreamableHTTPSessionManager(
            app=self.server, json_response=True, stateless=True, security_settings=self._security()
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate the request, then serve it as MCP."""
        if scope["type"] != "http":
            return
        try:
            principal = self.state.authenticator.identify(_presented_key(scope))
            if self._manager is None:
                raise ServiceHTTPError(503, "the MCP endpoint is not running (the app was not started)", "Unavailable")
        except ServiceHTTPError as exc:
            response = await http_error_handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        scope[KEY_NAME_KEY] = principal.name
        scope[PRINCIPAL_KEY] = principal
        await self._manager.handle_request(scope, receive, send)


def _with_endpoint(
    lifespan: Callable[[Any], AbstractAsyncContextManager[Any]], endpoint: McpEndpoint
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def combined(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as value, endpoint.running():
            yield value

    return combined


def mount(app: FastAPI) -> None:
    """Serve MCP at ``/mcp`` on ``app`` (a :func:`ragkit.service.create_app` app), for the app's lifetime."""
    endpoint = McpEndpoint(app.state.ragkit)
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    app.router.lifespan_context = _with_endpoint(app.router.lifespan_context, endpoint)
