"""Native tool calling: the model's ``tool_calls`` (OpenAI shape) read into plain calls, never raising."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ragkit.generation.tool_calls import json_values, named_call, parse_tool_calls

_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```", re.DOTALL)
"""A fenced block at the start of a reply (prose may follow it)."""


@dataclass(slots=True)
class NativeCall:
    """One tool call as the model sent it: its id, tool name and arguments (decoded when they were JSON)."""

    id: str
    name: str
    raw_arguments: str
    arguments: dict[str, Any] | None
    error: str | None = None
    """Why the arguments could not be read (not JSON, not an object); sent back to the model."""


def read_tool_calls(tool_calls: list[dict[str, Any]] | None, step: int) -> list[NativeCall]:
    """The calls of one assistant reply, ids filled in (``call_<step>_<i>``) where the server sent none."""
    calls: list[NativeCall] = []
    for index, call in enumerate(tool_calls or []):
        function = call.get("function") if isinstance(call, dict) else None
        function = function if isinstance(function, dict) else {}
        name = str(function.get("name") or "").strip()
        raw = function.get("arguments")
        call_id = str(call.get("id") or f"call_{step}_{index}") if isinstance(call, dict) else f"call_{step}_{index}"
        if isinstance(raw, dict):
            calls.append(NativeCall(call_id, name, json.dumps(raw), dict(raw)))
            continue
        text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
        arguments: dict[str, Any] | None = None
        error: str | None = None
        try:
            value = json.loads(text) if text.strip() else {}
        except ValueError as exc:
            error = f"the arguments are not valid JSON ({exc}); send a JSON object"
        else:
            if isinstance(value, dict):
                arguments = value
            else:
                error = f"the arguments must be a JSON object, got {type(value).__name__}"
        calls.append(NativeCall(call_id, name, text, arguments, error))
    return calls


def assistant_tool_calls(calls: list[NativeCall]) -> list[dict[str, Any]]:
    """The calls in the OpenAI wire shape for the assistant message sent back with the results."""
    return [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.raw_arguments or "{}"}}
        for call in calls
    ]


def calls_in_text(text: str, step: int, names: set[str]) -> list[NativeCall]:
    """Tool calls a server left in the text, unparsed (started without its tool-call parser).

    ``<tool_call>{...}</tool_call>`` blocks (Hermes, Qwen): every block with a
    tool name is a call (an unknown name or arguments that are not JSON are
    refused by the agent with a message the model can act on). Otherwise a
    reply that starts with ``{"name": <a tool>, "arguments": {...}}`` (or
    OpenAI's ``{"function": {...}}``), fenced or not, prose may follow;
    several such objects in a row are several calls. Only objects naming one
    of ``names`` count there, so an answer that merely shows JSON stays an
    answer.
    """
    if "<tool_call>" in text:
        found, _ = parse_tool_calls(text)
        return read_tool_calls(found, step)
    stripped = text.strip()
    if not stripped.startswith(("{", "```")):
        return []
    fenced = _FENCE.match(stripped)
    calls: list[dict[str, Any]] = []
    for value in json_values(fenced.group(1) if fenced else stripped):
        for item in value if isinstance(value, list) else [value]:
            named = named_call(item) if isinstance(item, dict) else None
            if named is not None and named[0] in names:
                calls.append({"function": {"name": named[0], "arguments": named[1]}})
    return read_tool_calls(calls, step)
