"""The one client set-up of the OpenAI-compatible connectors (chat generator and embedder).

:class:`OpenAIClients` checks the connection options, finds the key, makes
the official ``openai`` clients on first use (one sync client per
component, one async client per event loop, since an async connection pool
must not outlive its loop) and turns the client's exceptions into ragkit
errors through the core's one upstream mapping (:mod:`ragkit.upstream`).
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Any

from ragkit.errors import ConfigError, MissingDependencyError, RagkitError
from ragkit.upstream import Upstream, is_timeout, retry_after, server_message

OPENAI_BASE_URL = "https://api.openai.com/v1"
NO_KEY = "unused"
"""Sent as the key to servers without authentication (TEI, vLLM ignore it; the client needs one)."""


def openai_module() -> Any:
    """The ``openai`` package, imported on first use."""
    try:
        import openai
    except ImportError:
        raise MissingDependencyError("the OpenAI-compatible connectors", "openai") from None
    return openai


class OpenAIClients:
    """The ``openai`` clients of one component, and how its failures read.

    Args:
        role: ``"generator"`` or ``"embedder"``, for option error messages.
        server: ``"generation server"`` or ``"embedding server"``, for failure messages.
        base_url, api_key, api_key_env, timeout, max_retries: The component's options of the same names.
        http_client, async_http_client: Injected ``httpx`` clients (e.g. with a custom transport).
        not_found: What a 404 message says after ``answered 404`` (see :class:`~ragkit.upstream.Upstream`).

    """

    def __init__(
        self,
        *,
        role: str,
        server: str,
        base_url: str | None,
        api_key: str | None,
        api_key_env: str,
        timeout: float,
        max_retries: int,
        http_client: Any = None,
        async_http_client: Any = None,
        not_found: str = ": check the 'model' and 'base_url' options",
    ) -> None:
        example = "http://host:8000/v1" if role == "generator" else "http://host:8080/v1"
        if base_url is not None and (not isinstance(base_url, str) or "://" not in base_url):
            raise ConfigError(f"{role} option 'base_url': expected a URL like {example}, got {base_url!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise ConfigError(f"{role} option 'api_key': expected a string, got {type(api_key).__name__}")
        if not isinstance(api_key_env, str):
            raise ConfigError(f"{role} option 'api_key_env': expected a variable name, got {api_key_env!r}")
        self.base_url = base_url.rstrip("/") if base_url else None
        self.api_key = api_key
        self.api_key_env = api_key_env
        if self.base_url is None and not os.environ.get("OPENAI_BASE_URL") and not self.resolve_key():
            raise ConfigError(
                f"{role} 'openai': no API key for {OPENAI_BASE_URL}: set the {api_key_env} environment variable "
                "(or the 'api_key' option), or give 'base_url' for a server that needs none"
            )
        self.server = server
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.not_found = not_found
        self.http_client = http_client
        self.async_http_client = async_http_client
        self._lock = threading.Lock()
        self._client: Any = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    @property
    def where(self) -> str:
        """The server's API root, for messages."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL

    @property
    def upstream(self) -> Upstream:
        """The server as failure messages name it."""
        source = "the 'api_key' option" if self.api_key else f"the {self.api_key_env} environment variable"
        return Upstream(
            name=f"{self.server} {self.where}",
            timeout=self.timeout,
            retries=self.max_retries,
            key_hint=f"check {source}",
            not_found=self.not_found,
        )

    def resolve_key(self) -> str | None:
        """The ``api_key`` option, else the ``api_key_env`` variable's value (``None`` if neither)."""
        if self.api_key:
            return self.api_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def _options(self) -> dict[str, Any]:
        return {
            "api_key": self.resolve_key() or NO_KEY,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
        }

    @property
    def current(self) -> Any:
        """The sync client if one has been made (``None`` before first use and after :meth:`close`)."""
        return self._client

    def sync(self) -> Any:
        """The sync ``openai.OpenAI`` client, made on first use; safe to share between threads."""
        with self._lock:
            if self._client is None:
                self._client = openai_module().OpenAI(**self._options(), http_client=self.http_client)
            return self._client

    def for_loop(self) -> Any:
        """The ``openai.AsyncOpenAI`` client of the running event loop, made on first use there."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                client = openai_module().AsyncOpenAI(**self._options(), http_client=self.async_http_client)
                self._async_clients[loop] = client
            return client

    def close(self) -> None:
        """Close the sync client's connections (async clients close with their loops; injected ones stay open)."""
        with self._lock:
            if self._client is not None and self.http_client is None:
                self._client.close()
            self._client = None

    def error(self, exc: BaseException, *, streaming: bool = False) -> RagkitError:
        """The ragkit error for an exception of the ``openai`` client (or its HTTP library).

        An error status the client still got after its retries goes through
        :meth:`ragkit.upstream.Upstream.status_error` with the server's own
        message; an error event inside a stream is an upstream error; the
        rest (timeouts, refused connections, broken streams, unreadable
        answers) through :meth:`ragkit.upstream.Upstream.error`.
        """
        if isinstance(exc, RagkitError):
            return exc
        openai = openai_module()
        upstream = self.upstream
        if isinstance(exc, openai.APIStatusError):
            response = getattr(exc, "response", None)
            return upstream.status_error(
                exc.status_code,
                server_message(getattr(exc, "body", None), str(getattr(exc, "message", exc))),
                retry_after=retry_after(getattr(response, "headers", None)),
                retried=not streaming,
            )
        if isinstance(exc, openai.APITimeoutError) or is_timeout(exc):
            return upstream.timeout_error(streaming=streaming)
        if streaming:
            if isinstance(exc, openai.APIError):  # an error event inside the stream
                return upstream.stream_error(str(getattr(exc, "message", exc)))
            return upstream.error(exc, streaming=True)
        if isinstance(exc, openai.APIConnectionError):
            return upstream.unreachable(exc.__cause__ or exc)
        if isinstance(exc, openai.APIError):  # an answer the client could not make sense of
            return upstream.unreadable(str(getattr(exc, "message", exc)))
        return upstream.error(exc)


class OpenAIConnected:
    """What the OpenAI-compatible components share: their connection options, clients, ``where`` and ``close``.

    A component mixes this in before its ragkit base class and calls
    :meth:`_connect` from its constructor once its own options are checked.
    """

    _clients: OpenAIClients
    model: str
    base_url: str | None
    api_key_env: str
    timeout: float
    max_retries: int

    def _connect(
        self,
        role: str,
        model: str,
        base_url: str | None,
        api_key: str | None,
        api_key_env: str,
        timeout: float,
        max_retries: int,
        http_client: Any,
        async_http_client: Any,
    ) -> None:
        self.model = model
        self._clients = OpenAIClients(
            role=role,
            server="generation server" if role == "generator" else "embedding server",
            base_url=base_url,
            api_key=api_key,
            api_key_env=api_key_env,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            async_http_client=async_http_client,
            not_found=f" for model {model!r}: check the 'model' and 'base_url' options",
        )
        self.base_url = self._clients.base_url
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = max_retries

    def to_config(self) -> dict[str, Any]:
        """The constructor's arguments, without the injected HTTP clients (and never an environment key)."""
        config: dict[str, Any] = super().to_config()  # type: ignore[misc]  # the ragkit Component's
        config.pop("http_client", None)
        config.pop("async_http_client", None)
        return config

    @property
    def where(self) -> str:
        """The server's API root, for messages."""
        return self._clients.where

    def close(self) -> None:
        """Close the sync client's connections (async clients close with their loops)."""
        self._clients.close()
