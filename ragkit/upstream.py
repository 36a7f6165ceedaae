"""One mapping from an upstream server's failure to a ragkit error.

Every connector that calls a model server over HTTP (the OpenAI-compatible
chat generator and embedder, TGI's native API) turns what went wrong into
the same ragkit error, so the service answers the same status whichever
server failed:

===================================================  =========================================  ======
what happened                                        ragkit error                               status
===================================================  =========================================  ======
no answer within ``timeout``, a stalled stream, 408  :class:`~ragkit.errors.UpstreamTimeoutError`  504
5xx (or TGI's 424) after the retries                 :class:`~ragkit.errors.UpstreamError`         502
a stream broken off, an error event in a stream,     :class:`~ragkit.errors.UpstreamError`         502
an answer that cannot be read
connection refused / host unreachable                :class:`~ragkit.errors.UnavailableError`      503
429 (or 409) after the retries; the message gives    :class:`~ragkit.errors.UnavailableError`      503
the server's ``Retry-After``
401 / 403: the key was refused (names the server     :class:`~ragkit.errors.ConfigError`           400
and the variable or option holding the key)
404: unknown model or wrong ``base_url``             :class:`~ragkit.errors.ConfigError`           400
any other 4xx (prompt too long, bad parameter ...)   :class:`~ragkit.errors.InputError`            400
===================================================  =========================================  ======

A connector describes its server once as an :class:`Upstream` and hands
each failure to it: an HTTP status with the server's message to
:meth:`Upstream.status_error`, any other exception to :meth:`Upstream.error`
(timeouts and transport errors are recognised by the class names of the
HTTP library's exceptions, so this module imports no HTTP library).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ragkit.errors import ConfigError, InputError, RagkitError, UnavailableError, UpstreamError, UpstreamTimeoutError

_TIMEOUTS = frozenset({"ReadTimeout", "WriteTimeout", "ConnectTimeout", "PoolTimeout", "TimeoutException"})
_TRANSPORT = frozenset({"TransportError", "NetworkError", "ProtocolError", "StreamError"})
_MAX_CAUSES = 5


@dataclass(frozen=True, slots=True)
class Upstream:
    """A model server as a connector's error messages name it.

    Args:
        name: What and where, e.g. ``"generation server http://host:8000/v1"``.
        timeout: The connector's per-request timeout in seconds.
        retries: How many times a failed request was retried (``0``: none).
        key_hint: What to do about a refused key, naming the variable or
            option that holds it, e.g. ``"check the OPENAI_API_KEY environment variable"``.
        not_found: What follows ``answered 404`` in the message, e.g.
            ``" for model 'x': check the 'model' and 'base_url' options"``.

    """

    name: str
    timeout: float
    retries: int = 0
    key_hint: str = "check the API key"
    not_found: str = ": check the 'base_url' option"

    def _retried(self, retried: bool) -> str:
        return f" (after {self.retries} retries)" if retried and self.retries else ""

    def timeout_error(self, *, streaming: bool = False, retried: bool = True) -> UpstreamTimeoutError:
        """No answer within the timeout (``streaming``: no next piece within it)."""
        what = "stopped sending within" if streaming else "did not answer within"
        return UpstreamTimeoutError(f"{self.name} {what} {self.timeout:g} s{self._retried(retried and not streaming)}")

    def unreachable(self, cause: BaseException | str, *, retried: bool = True) -> UnavailableError:
        """The connection was refused or the host could not be reached."""
        return UnavailableError(f"cannot reach {self.name}{self._retried(retried)}: {cause}")

    def status_error(
        self, status: int, message: str, *, retry_after: float | None = None, retried: bool = True
    ) -> RagkitError:
        """The error for an HTTP error ``status`` the server still answered after the retries."""
        after = self._retried(retried)
        if status in (401, 403):
            return ConfigError(f"{self.name} refused the API key ({status}): {self.key_hint}: {message}")
        if status == 404:
            return ConfigError(f"{self.name} answered 404{self.not_found}: {message}")
        if status == 408:
            return UpstreamTimeoutError(f"{self.name} answered 408{after}: {message}")
        if status in (409, 429):
            wait = f"; it asks to retry after {retry_after:g} s" if retry_after is not None else ""
            return UnavailableError(f"{self.name} is rate limiting or overloaded ({status}){after}: {message}{wait}")
        if status >= 500 or status == 424:  # 424: TGI's "generation failed"
            return UpstreamError(f"{self.name} answered {status}{after}: {message}")
        return InputError(f"{self.name} rejected the request ({status}): {message}")

    def stream_error(self, message: str) -> UpstreamError:
        """The server sent an error event inside a stream."""
        return UpstreamError(f"{self.name} sent an error in the stream: {message}")

    def broken_stream(self, exc: BaseException) -> UpstreamError:
        """The connection broke in the middle of a stream."""
        return UpstreamError(f"{self.name} broke off the stream: {type(exc).__name__}: {exc}")

    def unreadable(self, exc: BaseException | str, *, streaming: bool = False) -> UpstreamError:
        """The server answered something that is not what the protocol promises."""
        what = "a stream" if streaming else "an answer"
        detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        return UpstreamError(f"{self.name} sent {what} that could not be read: {detail}")

    def error(
        self,
        exc: BaseException,
        *,
        streaming: bool = False,
        retried: bool = True,
        status: int | None = None,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> RagkitError:
        """The ragkit error for any exception of a request to this server.

        A ragkit error passes unchanged; with ``status`` it is
        :meth:`status_error`; a timeout anywhere in the chain of causes is
        :meth:`timeout_error`; a transport error is :meth:`broken_stream`
        while streaming, else :meth:`unreachable`; anything else is
        :meth:`unreadable`. ``retried=False`` for a failure the connector
        does not retry (so the message does not claim retries).
        """
        if isinstance(exc, RagkitError):
            return exc
        if status is not None:
            return self.status_error(status, message or str(exc), retry_after=retry_after, retried=retried)
        if is_timeout(exc):
            return self.timeout_error(streaming=streaming, retried=retried)
        if is_transport_error(exc):
            if streaming:
                return self.broken_stream(exc)
            return self.unreachable(_root_cause(exc), retried=retried)
        return self.unreadable(exc, streaming=streaming)


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < _MAX_CAUSES:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _root_cause(exc: BaseException) -> BaseException:
    return exc.__cause__ or exc


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it is a timeout (Python's, or httpx's / httpx2's by class name)."""
    return any(
        isinstance(e, TimeoutError) or any(cls.__name__ in _TIMEOUTS for cls in type(e).__mro__) for e in _chain(exc)
    )


def is_transport_error(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it is a network or protocol error (an ``OSError``, or httpx's by name)."""
    return any(
        isinstance(e, OSError) or any(cls.__name__ in _TRANSPORT for cls in type(e).__mro__) for e in _chain(exc)
    )


def retry_after(headers: Mapping[str, str] | Any) -> float | None:
    """The seconds of a ``Retry-After`` header (``None`` when absent, a date, or negative)."""
    if headers is None:
        return None
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def server_message(body: Any, fallback: str) -> str:
    """The server's own error message from a JSON error body (OpenAI, vLLM, TEI and TGI shapes), else ``fallback``.

    OpenAI and vLLM send ``{"error": {"message": ...}}``, TGI and TEI
    ``{"error": "...", "error_type": ...}``, FastAPI servers ``{"detail": ...}``.
    """
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            text = error.get("message") or error.get("detail")
            if text:
                return str(text)
        elif isinstance(error, str) and error:
            return error
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback
