"""What :meth:`Agent.stream <ragkit.agents.agent.Agent.stream>` yields: :class:`AgentEvent`, and its SSE form.

Event types, in the order a run produces them: ``step`` (a model call
begins: ``{"number"}``), ``token`` (answer text as it is generated:
``{"text", "step"}``), ``thought`` (``{"text", "step"}``), ``tool_call``
(``{"id", "tool", "arguments", "step"}``), ``observation`` (``{"id",
"tool", "content", "status", "error", "step"}``: what the model reads),
``approval_required`` (``{"pending", "state"}``), ``answer`` (``{"text",
"citations", "status", "cap"}``) and last ``done`` (the whole result,
:meth:`AgentResult.to_dict <ragkit.agents.trace.AgentResult.to_dict>`).
:func:`sse` writes one as a Server-Sent Event in the same shape as the
service's ask stream: ``event: <type>`` and one JSON ``data:`` line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ragkit.agents.trace import AgentResult

EventType = Literal["step", "thought", "tool_call", "observation", "token", "answer", "approval_required", "done"]
EVENT_TYPES: tuple[str, ...] = (
    "step",
    "thought",
    "tool_call",
    "observation",
    "token",
    "answer",
    "approval_required",
    "done",
)


@dataclass(slots=True)
class AgentEvent:
    """One event of a streamed run: its ``type`` and JSON ``data``; ``done`` also carries the ``result``."""

    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    result: AgentResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"type", "data"}``."""
        return {"type": self.type, "data": self.data}


def sse(event: AgentEvent) -> str:
    """``event`` as one Server-Sent Event: ``event: <type>``, ``data: <json>``, a blank line."""
    return f"event: {event.type}\ndata: {json.dumps(event.data, ensure_ascii=False, default=str)}\n\n"


def sse_lines(events: Iterable[AgentEvent]) -> Iterator[str]:
    """Each event of ``events`` as a Server-Sent Event (see :func:`sse`)."""
    for event in events:
        yield sse(event)
