"""Tool calls a model wrote as text, read into OpenAI-shaped ``tool_calls``.

A local model's chat template (Qwen2.5 and other Hermes-style ones) lists
the tools in the system turn and asks for each call as::

    <tool_call>
    {"name": "calculator", "arguments": {"expression": "2 + 2"}}
    </tool_call>

and a server started without its tool-call parser (vLLM, TGI, llama.cpp)
returns that text as it is. :class:`ToolCallScanner` streams the text before
the first ``<tool_call>`` and holds back the rest; :func:`parse_tool_calls`
turns the held text into ``tool_calls`` (what vLLM's and TGI's Hermes
parsers return); :func:`calls_in_json` finds calls a small model wrote as
plain (often fenced) JSON instead; :func:`json_values` and
:func:`named_call` are the pieces both use, for callers with their own
rules (the agent's native protocol). Used by ``ragkit-transformers``'
generator and :mod:`ragkit.agents.native`.

A block whose JSON cannot be read still becomes a call when its tool name can
be found, with the raw text as its arguments, so the agent sends the error
back to the model instead of taking the broken call for an answer. Nothing
here raises on model output.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|(?=" + re.escape(OPEN) + r")|\Z)", re.DOTALL)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"\\]+)"')
_MAX_JSON_TRIES = 64


class ToolCallScanner:
    """Splits streamed text: what comes before the first ``<tool_call>`` goes out, the rest is held.

    A piece that ends with the start of ``<tool_call>`` (``"<tool"``) is held
    back until the next piece tells whether it is one.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._held: list[str] = []
        self.calling = False
        """Whether a ``<tool_call>`` has begun (everything from there on is held)."""

    def feed(self, piece: str) -> str:
        """The text of ``piece`` that can go out now."""
        if self.calling:
            self._held.append(piece)
            return ""
        text = self._pending + piece
        start = text.find(OPEN)
        if start >= 0:
            self.calling = True
            self._pending = ""
            self._held.append(text[start:])
            return text[:start]
        keep = _partial_open(text)
        self._pending = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Text held back at the end that turned out not to start a call."""
        tail, self._pending = self._pending, ""
        return tail

    @property
    def held(self) -> str:
        """Everything from the first ``<tool_call>`` on."""
        return "".join(self._held)


def _partial_open(text: str) -> int:
    """Length of the longest end of ``text`` that begins ``<tool_call>`` (0 if none)."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


def parse_tool_calls(text: str) -> tuple[list[dict[str, Any]], str]:
    """The calls in ``text`` as OpenAI ``tool_calls`` (with ``index`` and a fresh ``id``), and the text left.

    The text left is whatever is not a readable call: prose between blocks,
    or a block in which not even a tool name can be found.
    """
    calls: list[dict[str, Any]] = []
    left: list[str] = []
    position = 0
    for match in _BLOCK.finditer(text):
        left.append(text[position : match.start()])
        position = match.end()
        found = _calls_in_block(match.group(1))
        if not found:
            left.append(match.group(0))
        for name, arguments in found:
            calls.append(_call(len(calls), name, arguments))
    left.append(text[position:])
    return calls, "".join(left).strip()


def calls_in_json(text: str, names: set[str]) -> list[dict[str, Any]]:
    """Calls a model wrote as bare JSON instead of a ``<tool_call>`` block (small models often fence it).

    Only objects ``{"name": <one of names>, "arguments": {...}}`` count, so
    an answer that merely shows JSON stays an answer.
    """
    decoder = json.JSONDecoder()
    calls: list[dict[str, Any]] = []
    position = 0
    for _ in range(_MAX_JSON_TRIES):
        start = text.find("{", position)
        if start < 0:
            break
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        position = end
        named = named_call(value) if isinstance(value, dict) else None
        if named is not None and named[0] in names and named[2]:
            calls.append(_call(len(calls), named[0], named[1]))
    return calls


def named_call(item: dict[str, Any]) -> tuple[str, str, bool] | None:
    """``(name, arguments as JSON text, whether arguments were given)`` of one call object, else ``None``.

    Accepts ``{"name": ..., "arguments": ...}`` (Hermes), ``"parameters"``
    for the arguments, and ``{"function": <name>, ...}`` or
    ``{"function": {"name": ..., "arguments": ...}}`` (OpenAI's shape), which
    the Qwen2.5-Coder models also write.
    """
    function = item.get("function")
    if isinstance(function, dict):
        item = function
    name = item.get("name") if not isinstance(function, str) else function
    if not isinstance(name, str) or not name.strip():
        return None
    given = "arguments" in item or "parameters" in item
    arguments = item.get("arguments", item.get("parameters", {}))
    encoded = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return name.strip(), encoded, given


def _call(index: int, name: str, arguments: str) -> dict[str, Any]:
    return {
        "index": index,
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _calls_in_block(block: str) -> list[tuple[str, str]]:
    """``(name, arguments as JSON text)`` of each call in one block's text."""
    body = block.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except ValueError:
        name = _NAME.search(body)
        # unreadable JSON: the call still goes to the agent, whose error tells the model what to fix
        return [(name.group(1).strip(), _raw_arguments(body))] if name else []
    found = []
    for item in value if isinstance(value, list) else [value]:
        named = named_call(item) if isinstance(item, dict) else None
        if named is not None:
            found.append((named[0], named[1]))
    return found


def _raw_arguments(body: str) -> str:
    """What follows ``"arguments":`` in a block that is not valid JSON (the whole block if nothing does)."""
    marker = re.search(r'"(?:arguments|parameters)"\s*:\s*', body)
    if marker is None:
        return body
    raw = body[marker.end() :].rstrip()
    return raw[:-1].rstrip() if raw.endswith("}") and raw.count("{") < raw.count("}") else raw


def json_values(text: str) -> list[Any]:
    """The JSON values at the start of ``text``, one after another (a small model may write several calls in a row).

    Whitespace, commas and semicolons between them are skipped; reading
    stops at the first thing that is not JSON.
    """
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position, body = 0, text.strip()
    while position < len(body):
        try:
            value, position = decoder.raw_decode(body, position)
        except ValueError:
            break
        values.append(value)
        while position < len(body) and body[position] in " \t\r\n,;":
            position += 1
    return values


def template_arguments(arguments: Any) -> Any:
    """A call's arguments as a chat template wants them: a JSON object's text decoded (templates ``tojson`` it)."""
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except ValueError:
            return arguments
        return decoded if isinstance(decoded, dict) else arguments
    return arguments


__all__ = [
    "ToolCallScanner",
    "calls_in_json",
    "json_values",
    "named_call",
    "parse_tool_calls",
    "template_arguments",
]
