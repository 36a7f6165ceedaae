"""ASGI middleware: request ids, the access log, request metrics, last-resort 500s, body-size limits.

Both are plain ASGI middleware (no buffering), so streamed answers pass through
token by token.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragkit.service.auth import KEY_NAME_KEY
from ragkit.service.errors import REQUEST_ID_KEY, ServiceHTTPError, deleted_collection, deleted_message, error_body
from ragkit.service.logs import ACCESS_LOGGER
from ragkit.service.metrics import Metrics

log = logging.getLogger("ragkit.service")
access_log = logging.getLogger(ACCESS_LOGGER)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Send a whole JSON response through raw ASGI ``send``."""
    payload = json.dumps(body).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class RequestContextMiddleware:
    """Gives each request an id (``X-Request-ID`` honoured or made), logs and counts it.

    One access-log line per request: request id, method, route template, path,
    status, duration in ms and the API key's *name* (never the key). An
    exception no handler took becomes a 500 naming the request id, logged with
    its traceback; the service stays up.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its id, log line and metrics."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        state = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s",
                scope.get("method"),
                scope.get("path"),
                extra={"fields": {"request_id": request_id}},
            )
            if not state["started"]:
                path = scope.get("path", "")
                gone = deleted_collection(scope.get("app"), path)
                if gone is not None:  # a search racing DELETE /v1/collections/X: the collection is gone, not broken
                    body = error_body(path, 404, "NotFoundError", deleted_message(gone), request_id)
                    await send_json(send_with_id, 404, body)
                else:
                    body = error_body(
                        path,
                        500,
                        "InternalError",
                        f"internal error; quote request id {request_id} when reporting it",
                        request_id,
                    )
                    await send_json(send_with_id, 500, body)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = _route_template(scope)
            method = str(scope.get("method", ""))
            status = int(state["status"])
            self.metrics.observe_request(route, method, status, seconds)
            access_log.info(
                "%s %s %s",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "fields": {
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "path": scope.get("path", ""),
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "key": scope.get(KEY_NAME_KEY),
                        "client": (scope.get("client") or ("", 0))[0],
                    }
                },
            )


class BodyTooLarge(ServiceHTTPError):
    """The request body passed its limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the {limit:,}-byte limit for this route", "PayloadTooLarge")


class BodyLimitMiddleware:
    """Refuses request bodies over their route's limit with 413.

    A ``Content-Length`` over the limit is refused before the body is read; a
    body without one (chunked) is counted as it streams in, and reading stops
    with 413 the moment it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request within its body limit."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("method", "")), str(scope.get("path", "")))
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            error = BodyTooLarge(limit)
            request_id = str(scope.get(REQUEST_ID_KEY, ""))
            body = error_body(scope.get("path", ""), 413, error.error_type, str(error.detail), request_id)
            await send_json(send, 413, body)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)
