"""Native tool calling: the model's ``tool_calls`` (OpenAI shape) read into plain calls, never raising."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?=</tool_call>|<tool_call>|\Z)", re.DOTALL)
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

    ``<tool_call>{...}</tool_call>`` blocks (Hermes, Qwen), or a reply that
    starts with ``{"name": <a tool>, "arguments": {...}}`` (fenced or not,
    prose may follow; several such objects in a row are several calls).
    Only calls naming one
    of ``names`` count, so an answer that merely shows JSON stays an answer.
    """
    blocks = _HERMES.findall(text) if "<tool_call>" in text else []
    if not blocks:
        stripped = text.strip()
        fenced = _FENCE.match(stripped)
        blocks = [fenced.group(1) if fenced else stripped] if stripped.startswith(("{", "```")) else []
    found: list[dict[str, Any]] = []
    for block in blocks:
        for value in _json_values(block):
            found += _named_calls(value, names)
    return read_tool_calls(found, step)


def _json_values(block: str) -> list[Any]:
    """The JSON values of ``block``, one after another (a small model may write several calls in a row)."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position, text = 0, block.strip()
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except ValueError:
            break
        values.append(value)
        while position < len(text) and text[position] in " \t\r\n,;":
            position += 1
    return values


def _named_calls(value: Any, names: set[str]) -> list[dict[str, Any]]:
    """The calls in one JSON value (an object or a list of them) that name one of ``names``."""
    found: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict) and item.get("name") in names:
            arguments = item.get("arguments", item.get("parameters", {}))
            found.append({"function": {"name": item["name"], "arguments": arguments}})
    return found
