"""Stored conversations: each API key sees, continues and deletes only its own.

An ``ask`` with ``conversation_id`` continues a conversation (``"new"`` starts
one): its history condenses a follow-up question (with a ``condense`` stage)
and goes into the prompt, and the turn is kept. A conversation that does not
exist and one that belongs to another key are the same 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from ragkit.service.auth import OPEN, Principal, require
from ragkit.service.errors import error_responses
from ragkit.service.models import ConversationList, ConversationModel
from ragkit.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1", tags=["conversations"])


def owner_of(principal: Principal) -> str | None:
    """The owner conversations are stored under: the key's name, or ``None`` (the local user) without keys."""
    return None if principal is OPEN else principal.name


@router.post(
    "/conversations", response_model=ConversationModel, status_code=201, responses=error_responses(400, 401, 403)
)
async def create_conversation(
    state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> ConversationModel:
    """Start an empty conversation; pass its ``id`` as ``conversation_id`` to ``ask``."""
    created = await state.run(state.conversations.create, owner_of(principal))
    return ConversationModel.model_validate(created.to_dict())


@router.get("/conversations", response_model=ConversationList, responses=error_responses(401, 403))
async def list_conversations(
    state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> ConversationList:
    """The caller's conversations, most recent first (without their turns)."""
    found = await state.run(state.conversations.list, owner_of(principal))
    return ConversationList(conversations=[ConversationModel.model_validate(c.to_dict(turns=False)) for c in found])


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationModel,
    responses=error_responses(400, 401, 403, 404),
)
async def get_conversation(
    conversation_id: str, state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> ConversationModel:
    """One conversation with its turns (404 when it is missing or another key's)."""
    found = await state.run(state.conversations.get, conversation_id, owner_of(principal))
    return ConversationModel.model_validate(found.to_dict())


@router.delete("/conversations/{conversation_id}", status_code=204, responses=error_responses(400, 401, 403, 404))
async def delete_conversation(
    conversation_id: str, state: ServiceState = Depends(get_state), principal: Principal = Depends(require("read"))
) -> Response:
    """Delete one of the caller's conversations."""
    await state.run(state.conversations.delete, conversation_id, owner_of(principal))
    return Response(status_code=204)
