"""Search and ask: the query side of one collection."""

from __future__ import annotations

import functools
import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.sse import format_sse_event

from ragkit.errors import NotFoundError
from ragkit.query import SearchResult
from ragkit.rag import AskEvent
from ragkit.rag.pipeline import AskExtras
from ragkit.service.auth import Principal, require_collection
from ragkit.service.errors import deleted_message, error_responses, request_id_of
from ragkit.service.models import (
    AnswerModel,
    AskRequest,
    HitModel,
    SearchRequest,
    SearchResponse,
    rest_answer,
    rest_citation,
    rest_hits,
)
from ragkit.service.routes.conversations import owner_of
from ragkit.service.state import ServiceState, get_state
from ragkit.service.streaming import AnswerRun, ClientGone, EventStreamResponse, guarded, unless_disconnected

router = APIRouter(prefix="/v1", tags=["query"])

_QUERY_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 502, 503, 504)
_ASK_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 502, 503, 504)


def _event(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The schema of one Server-Sent Event whose data is JSON."""
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": payload},
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


ASK_EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _event(
            "retrieval",
            {
                "type": "object",
                "required": ["hits"],
                "properties": {
                    "hits": {"type": "array", "items": _ref("HitModel")},
                    "trace": {"type": "array", "items": {"type": "object"}},
                },
            },
        ),
        _event("token", {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
        _event("citation", _ref("CitationModel")),
        _event("answer", _ref("AnswerModel")),
        _event(
            "error",
            {
                "type": "object",
                "required": ["type", "message", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                    "status": {"type": "integer"},
                },
            },
        ),
    ]
}
_ASK_200: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer (JSON), or with `stream: true` Server-Sent Events: `retrieval` "
        "(data: {hits}), `token` (data: {text}) ..., `citation` (data: a citation), then `answer` "
        "(data: the whole answer) or, if the generator fails mid-stream, `error` (data: {type, message, status}).",
        "content": {"text/event-stream": {"schema": ASK_EVENT_SCHEMA}},
    }
}
CLIENT_CLOSED = 499
"""Status logged for a request whose client went away before the answer (nginx's convention)."""


@router.post(
    "/collections/{name}/search",
    response_model=SearchResponse,
    responses=_QUERY_ERRORS,
    summary="Search a collection",
)
async def search(
    name: str,
    body: SearchRequest,
    state: ServiceState = Depends(get_state),
    _: Principal = Depends(require_collection("read")),
) -> SearchResponse:
    """The ``top_k`` chunks best matching ``query``, optionally filtered by metadata.

    With ``pipeline``, the configured pipeline's stages run (everything before generation), so a search
    returns exactly the hits that pipeline would answer from, with the trace of each stage.
    """
    searcher = state.pipeline(body.pipeline) if body.pipeline else state.search_pipeline(body.mode or "dense")
    mode = body.mode if body.pipeline else None

    def run() -> SearchResult:
        found = searcher.search(body.query, state.collections.get(name), body.top_k, body.filters, mode)
        if state.collections.deleted(name):  # deleted while it ran: its hits (or none) say nothing true
            raise NotFoundError(deleted_message(name))
        return found

    result = await state.run(run)
    return SearchResponse(
        query=body.query,
        mode=body.mode if body.pipeline else (body.mode or "dense"),
        pipeline=body.pipeline,
        hits=[HitModel.model_validate(h) for h in rest_hits(result.hits, name)],
        queries=[q.to_dict() for q in result.queries],
        trace=[t.to_dict() for t in result.trace],
    )


def _sse(event: str, data: Any) -> bytes:
    return format_sse_event(data_str=json.dumps(data, ensure_ascii=False), event=event)


def encode_ask_event(event: AskEvent, collection: str) -> bytes:
    """One pipeline event of an answer from ``collection`` as a Server-Sent Event (hits and citations with urls)."""
    if event.type == "retrieval":
        return _sse(
            "retrieval",
            {"hits": rest_hits(event.hits or [], collection), "trace": [t.to_dict() for t in event.trace or []]},
        )
    if event.type == "token":
        return _sse("token", {"text": event.text})
    if event.type == "citation":
        assert event.citation is not None
        return _sse("citation", rest_citation(event.citation, collection))
    assert event.answer is not None
    return _sse("answer", rest_answer(event.answer, collection))


async def _conversation(state: ServiceState, principal: Principal, conversation_id: str | None) -> AskExtras:
    """The ask's conversation: none, a new one (``"new"``), or the caller's own (404 for anyone else's)."""
    if conversation_id is None:
        return AskExtras()
    owner = owner_of(principal)
    store = state.conversations
    if conversation_id == "new":
        created = await state.run(store.create, owner)
        return AskExtras(conversation_id=created.id, owner=owner, conversations=store)
    await state.run(store.get, conversation_id, owner)  # 404 before any work
    return AskExtras(conversation_id=conversation_id, owner=owner, conversations=store)


def encode_ask_error(error_type: str, message: str, status: int) -> bytes:
    """A failure mid-stream as a Server-Sent Event."""
    return _sse("error", {"type": error_type, "message": message, "status": status})


@router.post(
    "/collections/{name}/ask",
    response_model=AnswerModel,
    responses={**_ASK_200, **_ASK_ERRORS},
    summary="Ask a question",
)
async def ask(
    name: str,
    body: AskRequest,
    request: Request,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require_collection("read")),
) -> Any:
    """Answer ``question`` from the collection, with citations; ``stream: true`` for Server-Sent Events.

    With ``conversation_id`` (``"new"`` starts one) the question continues a stored conversation of the
    caller's key; the answer carries the conversation's id.
    """
    pipeline = state.pipeline(body.pipeline)
    collection = await state.run(state.collections.get, name)
    options = state.options(pipeline, body.max_tokens, temperature=body.temperature)
    extras = await _conversation(state, principal, body.conversation_id)
    slots = state.ask_slots()
    if not body.stream:

        async def answer() -> dict[str, Any]:
            async with slots:
                result = await pipeline.aask(
                    body.question,
                    collection,
                    body.top_k,
                    body.filters,
                    body.mode,
                    options,
                    conversation_id=extras.conversation_id,
                    owner=extras.owner,
                    conversations=extras.conversations,
                )
            state.metrics.observe_answer(result)
            return rest_answer(result, name)

        try:
            return await unless_disconnected(request, answer())
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
    opening = AnswerRun.open(
        slots, pipeline, body.question, collection, body.top_k, body.filters, body.mode, options, extras=extras
    )
    try:
        run = await unless_disconnected(request, opening)
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    content = guarded(
        run.events(),
        functools.partial(encode_ask_event, collection=name),
        encode_ask_error,
        state.metrics.observe_answer,
        request_id_of(request),
    )
    return EventStreamResponse(content, run)
