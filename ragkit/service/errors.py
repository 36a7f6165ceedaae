"""Error bodies of the service and the handlers that produce them.

Every error is JSON. The ragkit routes answer
``{"error": {"type": "NotFoundError", "message": "...", "request_id": "..."}}``;
the OpenAI-compatible routes (``/v1/chat/completions``, ``/v1/models``) answer in
OpenAI's shape, ``{"error": {"message": "...", "type": "...", "code": "..."}}``, so the
``openai`` client parses them. A :class:`~ragkit.errors.RagkitError` maps to its
``http_status``; request validation errors are 422; anything unexpected is a 500
that names the request id (and is logged with its traceback).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ragkit.errors import RagkitError, StorageError, storage_error, storage_error_kind

log = logging.getLogger("ragkit.service")

OPENAI_PATHS = ("/v1/chat/completions", "/v1/models", "/v1/embeddings", "/v1/completions")
"""Routes that answer errors in OpenAI's shape."""

REQUEST_ID_KEY = "ragkit.request_id"
"""Scope key under which the request id travels."""


class ErrorDetail(BaseModel):
    """What went wrong."""

    type: str
    """The error class, e.g. ``NotFoundError``, ``InputError``, ``Unauthorized``."""
    message: str
    request_id: str


class ErrorResponse(BaseModel):
    """The body of every error answer of the ragkit routes."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    """An error in OpenAI's shape."""

    message: str
    type: str
    code: str | None = None
    param: str | None = None
    request_id: str | None = None


class OpenAIErrorResponse(BaseModel):
    """The body of every error answer of the OpenAI-compatible routes."""

    error: OpenAIErrorDetail


class ServiceHTTPError(HTTPException):
    """An HTTP-level refusal (401, 403, 413, 415) with an error type name."""

    def __init__(
        self,
        status_code: int,
        message: str,
        error_type: str,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.error_type = error_type
        self.code = code


class ModelNotFound(ServiceHTTPError):
    """An OpenAI model id that names no collection/pipeline."""

    def __init__(self, message: str) -> None:
        super().__init__(404, message, "NotFoundError", code="model_not_found")


_ERROR_DESCRIPTIONS = {
    400: "Invalid input (bad filter, empty question, bad file name ...)",
    401: "Missing or unknown API key",
    403: "The key lacks the scope or collection, or the path is outside the ingest roots",
    404: "Unknown collection, document, job, pipeline or model",
    409: "Conflicts with what is stored (e.g. the collection exists)",
    413: "Request body or uploaded file too large",
    415: "Unsupported content type",
    422: "Request validation failed",
    500: "Unexpected server error (logged with the request id)",
    502: "The generator (or another upstream) answered with an error",
    503: "An upstream or optional component is unavailable",
    504: "The generator (or another upstream) did not answer in time",
    507: "The store's disk is full",
}

_HTTP_TYPES = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_responses(*codes: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``codes`` (and 500, which any route may answer), with the error model."""
    model = OpenAIErrorResponse if openai else ErrorResponse
    return {code: {"model": model, "description": _ERROR_DESCRIPTIONS.get(code, "Error")} for code in (*codes, 500)}


def request_id_of(request: Request) -> str:
    """The id of the request being served."""
    return str(request.scope.get(REQUEST_ID_KEY, ""))


def is_openai_path(path: str) -> bool:
    """Whether ``path`` belongs to the OpenAI-compatible routes."""
    return path in OPENAI_PATHS or path.startswith("/v1/models/")


def openai_error_type(status: int) -> str:
    """OpenAI's ``type`` for an HTTP status."""
    if status in _OPENAI_TYPES:
        return _OPENAI_TYPES[status]
    return "upstream_error" if status in (502, 504) else "api_error"


def error_body(
    path: str, status: int, error_type: str, message: str, request_id: str, code: str | None = None
) -> dict[str, Any]:
    """The JSON error body for ``path``, in the ragkit or the OpenAI shape."""
    if is_openai_path(path):
        detail = OpenAIErrorDetail(
            message=message, type=openai_error_type(status), code=code or error_type, request_id=request_id
        )
        return {"error": detail.model_dump()}
    return {"error": ErrorDetail(type=error_type, message=message, request_id=request_id).model_dump()}


def error_json(
    request: Request,
    status: int,
    error_type: str,
    message: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> JSONResponse:
    """A JSON error response for ``request``."""
    rid = request_id_of(request)
    body = error_body(request.url.path, status, error_type, message, rid, code)
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-Request-ID": rid})


async def ragkit_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """A :class:`RagkitError` → its ``http_status``."""
    assert isinstance(exc, RagkitError)
    if type(exc) is StorageError and storage_error_kind(exc) is not None:
        exc = storage_error(exc, str(exc))  # a full or read-only disk under a plain StorageError: 507 / 503
    status = int(exc.http_status)
    if status >= 500:
        gone = deleted_collection(request.app, request.url.path)
        if gone is not None:
            return error_json(request, 404, "NotFoundError", deleted_message(gone))
        log.warning("request %s failed: %s: %s", request_id_of(request), type(exc).__name__, exc)
    return error_json(request, status, type(exc).__name__, str(exc))


def deleted_collection(app: Any, path: str) -> str | None:
    """The collection ``path`` names if it was deleted (e.g. while this request ran), else ``None``."""
    from ragkit.service.stores import collection_deleted_under

    state = getattr(getattr(app, "state", None), "ragkit", None)
    if state is None:
        return None
    try:
        return collection_deleted_under(path, state.collections)
    except Exception:  # deciding how to answer an error must not raise another
        return None


def deleted_message(name: str) -> str:
    """What a request on a collection deleted under it is told."""
    return f"collection {name!r} does not exist (it was deleted while this request ran)"


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette/FastAPI HTTP exceptions (404 route, 405, auth and size refusals)."""
    assert isinstance(exc, HTTPException)
    error_type = getattr(exc, "error_type", None) or _HTTP_TYPES.get(exc.status_code, "HTTPError")
    headers = dict(exc.headers or {})
    return error_json(request, exc.status_code, error_type, str(exc.detail), headers, getattr(exc, "code", None))


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Request validation errors → 422, one ``field: message`` per problem."""
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ())) or "(request)"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return error_json(request, 422, "ValidationError", "; ".join(parts) or "invalid request")
