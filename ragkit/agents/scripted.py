"""A SCRIPTED generator: replies read from a list, no model behind it (tests, docs, the overhead benchmark).

:class:`ScriptedGenerator` answers each call with the next reply of its
script: a string (text), or ``{"tool_calls": [{"name": ..., "arguments":
{...}}, ...], "text": "..."}`` for native tool calls. It records every call's
messages and options in ``calls``. It declares ``supports_tools`` only when
told to (``native=True``), so an agent in ``auto`` mode uses ReAct with it by
default, as with the local model. It is a test double, not a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ragkit.errors import InputError
from ragkit.generation.base import BaseGenerator, FinishReason, GenerationDelta, GenerationOptions, Message, Usage


class ScriptedGenerator(BaseGenerator):
    """Answers from a script of replies (a test double). When the script runs out, it repeats ``then``.

    Args:
        replies: The replies, in order: text, or a mapping with ``tool_calls``
            (and optionally ``text``).
        then: The reply once the script is used up; ``None``: an
            :class:`~ragkit.errors.InputError` (a test that needs more replies
            than it scripted should fail loudly).
        native: Declare ``supports_tools`` (tool-call replies need it).
        name: The model name reported.

    """

    def __init__(
        self,
        replies: Sequence[str | Mapping[str, Any]] = (),
        then: str | Mapping[str, Any] | None = None,
        native: bool = False,
        name: str = "scripted",
    ) -> None:
        self.replies = list(replies)
        self.then = then
        self.supports_tools = native
        self.name = name
        self.calls: list[tuple[list[Message], GenerationOptions | None]] = []

    @property
    def model_name(self) -> str:
        """The ``name`` given."""
        return self.name

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        """The next reply of the script, cut at a stop sequence, as one text piece (or tool calls) and the end."""
        self.calls.append((list(messages), options))
        if self.replies:
            reply = self.replies.pop(0)
        elif self.then is not None:
            reply = self.then
        else:
            raise InputError(f"scripted generator: the script of replies is used up (call {len(self.calls)})")
        prompt = sum(len(m.content) // 4 + 1 for m in messages)
        if isinstance(reply, Mapping):
            if options is not None and options.tools is None and reply.get("tool_calls"):
                raise InputError("scripted generator: a tool-call reply was scripted but no tools were offered")
            calls = [
                {
                    "index": i,
                    "id": str(call.get("id") or f"call_{len(self.calls)}_{i}"),
                    "type": "function",
                    "function": {"name": call["name"], "arguments": _arguments(call.get("arguments"))},
                }
                for i, call in enumerate(reply.get("tool_calls") or [])
            ]
            text = str(reply.get("text") or "")
            if text:
                yield GenerationDelta(text=text)
            if calls:
                yield GenerationDelta(tool_calls=calls)
            finish: FinishReason = "tool_calls" if calls else "stop"
            yield GenerationDelta(finish_reason=finish, usage=Usage(prompt, len(text) // 4 + 1 + 8 * len(calls)))
            return
        text = str(reply)
        for stop in options.stop if options is not None and options.stop else []:
            at = text.find(stop)
            if at >= 0:
                text = text[:at]
        yield GenerationDelta(text=text)
        yield GenerationDelta(finish_reason="stop", usage=Usage(prompt, len(text) // 4 + 1))


def _arguments(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {})
