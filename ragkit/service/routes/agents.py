"""Agents over REST: ``POST /v1/agents/{name}/runs`` runs the agent recipe ``name`` (``pipelines/<name>.yaml``).

JSON in, the whole result out (answer, status, citations, the trace), or
with ``stream: true`` Server-Sent Events (``step``, ``thought``,
``tool_call``, ``observation``, ``token``, ``answer``,
``approval_required``, then ``done`` with the whole result; a failure
mid-run becomes an ``error`` event). A run that stops for approval answers
``status: "needs_approval"`` with its ``pending`` calls and a signed
``state``; the same route with ``state`` and ``decisions`` resumes it, in
any worker or replica that shares the store folder (its ``agent-secret`` file, or
``RAGKIT_AGENT_SECRET`` when set), once: a state resumed already answers 409. The agent's tools read the
service's store folder; a key limited to some collections may only run
agents whose tools read those.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, StreamingResponse

from ragkit.agents.agent import Agent
from ragkit.agents.events import sse
from ragkit.agents.ledger import SqliteLedger
from ragkit.agents.recipe import service_agent_config
from ragkit.agents.state import SECRET_ENV, folder_secret
from ragkit.errors import InputError, RagkitError
from ragkit.generation.base import Message, iterate_in_thread
from ragkit.service.auth import Principal, require
from ragkit.service.errors import ServiceHTTPError, error_responses, request_id_of
from ragkit.service.state import ServiceState, get_state
from ragkit.service.streaming import SSE_HEADERS, ClientGone, unless_disconnected

router = APIRouter(prefix="/v1", tags=["agents"])
log = logging.getLogger("ragkit.service")

CLIENT_CLOSED = 499
_cache: weakref.WeakKeyDictionary[ServiceState, dict[str, Agent]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class AgentRunRequest(BaseModel):
    """A run: a ``question`` (with optional chat ``history``), or a paused run's ``state`` and ``decisions``."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(default=None, max_length=8000)
    """The question (not needed to resume)."""
    history: list[dict[str, Any]] | None = None
    """Earlier chat turns, ``{"role", "content"}``, oldest first."""
    stream: bool = False
    """Server-Sent Events instead of one JSON answer."""
    state: str | None = None
    """A paused run's ``state``, to resume it with ``decisions``."""
    decisions: dict[str, Any] | None = None
    """Per pending call id: ``"approve"``, ``"deny"`` or ``{"decision": "deny", "reason": "..."}``."""
    max_steps: int | None = Field(default=None, ge=1)
    """Lower the agent's step cap for this run (never raises it)."""


def agent_for(state: ServiceState, name: str) -> Agent:
    """The agent of recipe ``name``, built once per service (its tools read the service's store folder)."""
    with _lock:
        agents = _cache.setdefault(state, {})
        found = agents.get(name)
    if found is not None:
        return found
    config = service_agent_config(name, state.settings.store_dir)
    if not config.get("secret") and not os.environ.get(SECRET_ENV):
        # workers and replicas sharing the store folder sign and check states with the same key
        config["secret"] = folder_secret(state.settings.store_dir)
    built = Agent.from_config(config)
    built.ledger = SqliteLedger(Path(state.settings.store_dir) / "agent-resumes.sqlite")
    with _lock:
        return _cache.setdefault(state, {}).setdefault(name, built)


_COLLECTION_FREE_TOOLS = frozenset({"calculator"})
"""Built-in tool types that read no collection, database or outside server."""


def check_agent_tools(agent: Agent, principal: Principal) -> None:
    """Refuse a run whose tools reach past what ``principal`` may read.

    A tool bound to a collection needs that collection (the same 404 as a
    missing one). For a key limited to some collections, every other tool
    must be collection-free (the calculator) or a ``list_collections``
    confined to collections the key may read: SQL, MCP and Python function
    tools reach data the collection limits cannot describe, so a limited
    key gets 403 for an agent that has them.
    """
    for tool in agent.tools:
        collection = getattr(tool, "collection_name", None)
        if isinstance(collection, str):
            principal.check_collection(collection)
            continue
        if not principal.limited or tool.component_type in _COLLECTION_FREE_TOOLS:
            continue
        if tool.component_type == "list_collections" and principal.may_access_all(getattr(tool, "only", None)):
            continue
        raise ServiceHTTPError(
            403,
            f"API key {principal.name!r} is limited to collections, and agent tool {tool.name!r} "
            f"({tool.component_type or type(tool).__name__}) reaches beyond them; use a key without a "
            "collection limit, or an agent whose tools are bound to the key's collections",
            "Forbidden",
        )


_RUN_200: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The result as JSON (answer, status, cap, citations, sources, steps, usage, timings, pending, "
        "state), or with `stream: true` Server-Sent Events: `step`, `thought`, `tool_call`, `observation`, "
        "`token`, `answer`, `approval_required`, then `done` (data: the whole result) or `error` "
        "(data: {type, message, status}).",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.post(
    "/agents/{name}/runs",
    responses={**_RUN_200, **error_responses(400, 401, 403, 404, 413, 422, 502, 503, 504)},
    summary="Run an agent",
)
async def run_agent(
    name: str,
    body: AgentRunRequest,
    request: Request,
    state: ServiceState = Depends(get_state),
    principal: Principal = Depends(require("read")),
) -> Any:
    """Run the agent recipe ``name`` on ``question``, or resume a paused run from ``state`` with ``decisions``."""
    agent = await state.run(agent_for, state, name)
    check_agent_tools(agent, principal)
    if body.max_steps is not None and body.max_steps < agent.max_steps:
        agent = copy.copy(agent)
        agent.max_steps = body.max_steps
    resume = body.state is not None
    if resume and body.decisions is None:
        raise InputError("agent run: 'state' needs 'decisions' (one per pending call id)")
    if not resume and not (body.question or "").strip():
        raise InputError("agent run: 'question' is required (or 'state' and 'decisions' to resume)")
    turns = body.history or []
    if any(not isinstance(m.get("role"), str) or m["role"] not in ("user", "assistant") for m in turns):
        raise InputError("agent run: each 'history' turn needs a 'role' of 'user' or 'assistant' and a 'content'")
    try:
        history = [Message.from_dict(m) for m in turns]
    except (KeyError, TypeError) as exc:
        raise InputError(f"agent run: each 'history' turn needs 'role' and 'content' ({exc})") from None
    slots = state.ask_slots()
    if not body.stream:

        async def work() -> dict[str, Any]:
            async with slots:
                if resume:
                    result = await agent.aresume(body.state or "", body.decisions or {})
                else:
                    result = await agent.arun(body.question or "", history)
            return result.to_dict()

        try:
            return JSONResponse(await unless_disconnected(request, work()))
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
    # checked before the response starts, so a bad state or question is a 400, not an error event
    events = (
        agent.resume_stream(body.state or "", body.decisions or {})
        if resume
        else agent.stream(body.question or "", history)
    )
    await slots.acquire()
    return StreamingResponse(
        _sse(events, slots, request_id_of(request)), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _sse(events: Any, slots: Any, request_id: str) -> AsyncIterator[bytes]:
    try:
        async for event in iterate_in_thread(lambda: events):
            yield sse(event).encode()
    except RagkitError as exc:
        log.warning("agent stream %s failed: %s: %s", request_id, type(exc).__name__, exc)
        yield _error(type(exc).__name__, str(exc), int(exc.http_status))
    except Exception as exc:
        log.exception("agent stream %s failed", request_id)
        message = f"internal error ({type(exc).__name__}); quote request id {request_id} when reporting it"
        yield _error("InternalError", message, 500)
    finally:
        slots.release()


def _error(kind: str, message: str, status: int) -> bytes:
    data = json.dumps({"type": kind, "message": message, "status": status}, ensure_ascii=False)
    return f"event: error\ndata: {data}\n\n".encode()
