"""A LangChain chat model as a ragkit generator (component ``generator.langchain``).

::

    generator: {type: langchain, model: langchain_openai.ChatOpenAI,
                kwargs: {model: gpt-4o-mini, base_url: "http://localhost:8000/v1"}}

Any ``BaseChatModel`` class, named by import path and built with ``kwargs``
(:meth:`LangChainChatGenerator.wrap` takes a ready object instead). Answers
stream through the model's ``stream()`` / ``astream()``; ragkit's options
(``max_tokens``, ``temperature``, ``top_p``, ``seed``) are set on a copy of
the model where it has those fields, ``stop`` is passed to the call, and
``tools`` are bound with ``bind_tools`` (the model's tool calls come back in
OpenAI's shape, so ragkit's agents can use them). Token counts are the
model's ``usage_metadata`` when it reports them, else estimated (four
characters a token, the same estimate as ragkit's base generator). A failing
call becomes a ragkit error by the core's one upstream mapping.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from ragkit.errors import ConfigError
from ragkit.generation.base import BaseGenerator, FinishReason, GenerationDelta, GenerationOptions, Message, Usage
from ragkit.upstream import Upstream
from ragkit_langchain._imports import class_path, instantiate, rebuild_kwargs

_SAMPLING = ("max_tokens", "temperature", "top_p", "seed")
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
}


def to_langchain(messages: Sequence[Message]) -> list[BaseMessage]:
    """Ragkit chat messages as LangChain messages (tool calls and tool results included)."""
    out: list[BaseMessage] = []
    for m in messages:
        if m.role == "system":
            out.append(SystemMessage(m.content))
        elif m.role == "user":
            out.append(HumanMessage(m.content, name=m.name) if m.name else HumanMessage(m.content))
        elif m.role == "assistant":
            calls = [_lc_tool_call(c) for c in m.tool_calls or []]
            out.append(AIMessage(m.content, tool_calls=calls))
        else:
            out.append(ToolMessage(m.content, tool_call_id=m.tool_call_id or ""))
    return out


def _lc_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function", {})
    arguments = function.get("arguments") or "{}"
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
    except ValueError:
        args = {}
    return {"name": function.get("name", ""), "args": args, "id": call.get("id"), "type": "tool_call"}


def _text_of(chunk: AIMessageChunk) -> str:
    content = chunk.content
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)


def _fragments(chunk: AIMessageChunk) -> list[dict[str, Any]] | None:
    """The chunk's tool-call pieces in OpenAI's streamed shape (``index``, ``id``, ``function``)."""
    pieces = []
    for n, part in enumerate(chunk.tool_call_chunks or []):
        fragment: dict[str, Any] = {"index": part.get("index") if part.get("index") is not None else n}
        if part.get("id"):
            fragment["id"] = part["id"]
            fragment["type"] = "function"
        function: dict[str, Any] = {"arguments": part.get("args") or ""}
        if part.get("name"):
            function["name"] = part["name"]
        fragment["function"] = function
        pieces.append(fragment)
    return pieces or None


class LangChainChatGenerator(BaseGenerator):
    """Any LangChain chat model as a ragkit generator (see the module docstring).

    Args:
        model: Import path of the chat model class (``langchain_openai.ChatOpenAI``).
        kwargs: Its constructor's keyword arguments.
        context_window: How many tokens prompt plus answer may hold.

    """

    role = "generator"
    component_type = "langchain"
    supports_tools = True

    def __init__(self, model: str, kwargs: Mapping[str, Any] | None = None, context_window: int = 8192) -> None:
        if isinstance(context_window, bool) or not isinstance(context_window, int) or context_window < 1:
            raise ConfigError(
                f"generator 'langchain': context_window must be a positive integer, got {context_window!r}"
            )
        self.path = model
        self._context_window = context_window
        self.chat: BaseChatModel = instantiate(model, kwargs, "generator")
        if not isinstance(self.chat, BaseChatModel):
            raise ConfigError(f"generator 'langchain': {model} is not a LangChain chat model (BaseChatModel)")
        self.upstream = Upstream(f"LangChain chat model {model}", timeout=0.0)

    @classmethod
    def wrap(cls, chat: BaseChatModel, context_window: int = 8192) -> LangChainChatGenerator:
        """A generator over the very object ``chat`` (its config rebuilds it from its class and fields)."""
        if not isinstance(chat, BaseChatModel):
            raise ConfigError(f"expected a LangChain chat model, got {type(chat).__name__}")
        made = cls.__new__(cls)
        made._init_params = {
            "model": class_path(chat),
            "kwargs": rebuild_kwargs(chat),
            "context_window": context_window,
        }
        made.path = class_path(chat)
        made._context_window = context_window
        made.chat = chat
        made.upstream = Upstream(f"LangChain chat model {made.path}", timeout=0.0)
        return made

    @property
    def model_name(self) -> str:
        """The model's own name where it has one (``model_name`` / ``model``), else its class."""
        for field in ("model_name", "model"):
            value = getattr(self.chat, field, None)
            if isinstance(value, str) and value:
                return value
        return type(self.chat).__name__

    @property
    def context_window(self) -> int:
        """As configured."""
        return self._context_window

    def _prepared(self, options: GenerationOptions | None) -> tuple[Any, dict[str, Any]]:
        chosen = self.options(options)
        fields = getattr(type(self.chat), "model_fields", {})
        update = {name: getattr(chosen, name) for name in _SAMPLING if getattr(chosen, name) is not None}
        update = {name: value for name, value in update.items() if name in fields}
        runnable: Any = self.chat.model_copy(update=update) if update else self.chat
        if chosen.tools:
            bind: dict[str, Any] = {}
            if chosen.tool_choice is not None:
                bind["tool_choice"] = chosen.tool_choice
            runnable = runnable.bind_tools(chosen.tools, **bind)
        call = {"stop": list(chosen.stop)} if chosen.stop else {}
        return runnable, call

    def _finish(self, messages: Sequence[Message], text: list[str], last: dict[str, Any]) -> GenerationDelta:
        usage = last.get("usage")
        if usage is None:
            usage = Usage(self.count_message_tokens(messages), self.count_tokens("".join(text)) if text else 0)
        reason = _FINISH.get(str(last.get("finish_reason")), "tool_calls" if last.get("tools") else "stop")
        return GenerationDelta("", reason, usage)

    @staticmethod
    def _note(chunk: AIMessageChunk, last: dict[str, Any]) -> None:
        meta = chunk.usage_metadata
        if meta and (meta.get("input_tokens") or meta.get("output_tokens")):
            last["usage"] = Usage(int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0)))
        finish = (chunk.response_metadata or {}).get("finish_reason") or (chunk.response_metadata or {}).get(
            "stop_reason"
        )
        if finish:
            last["finish_reason"] = finish
        if chunk.tool_call_chunks:
            last["tools"] = True

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        """The answer as the model streams it; the last delta has the finish reason and token counts."""
        runnable, call = self._prepared(options)
        text: list[str] = []
        last: dict[str, Any] = {}
        pieces = runnable.stream(to_langchain(messages), **call)
        try:
            while True:
                try:
                    chunk = next(pieces)
                except StopIteration:
                    break
                except Exception as exc:
                    raise self._error(exc, bool(text)) from None
                self._note(chunk, last)
                piece = _text_of(chunk)
                fragments = _fragments(chunk)
                if piece or fragments:
                    text.append(piece)
                    yield GenerationDelta(piece, tool_calls=fragments)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        yield self._finish(messages, text, last)

    async def astream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> AsyncIterator[GenerationDelta]:
        """Async twin of :meth:`stream`, through the model's ``astream()``."""
        runnable, call = self._prepared(options)
        text: list[str] = []
        last: dict[str, Any] = {}
        pieces = runnable.astream(to_langchain(messages), **call)
        try:
            while True:
                try:
                    chunk = await pieces.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._error(exc, bool(text)) from None
                self._note(chunk, last)
                piece = _text_of(chunk)
                fragments = _fragments(chunk)
                if piece or fragments:
                    text.append(piece)
                    yield GenerationDelta(piece, tool_calls=fragments)
        finally:
            await pieces.aclose()
        yield self._finish(messages, text, last)

    def _error(self, exc: Exception, streaming: bool) -> Exception:
        status = getattr(exc, "status_code", None)
        return self.upstream.error(
            exc, streaming=streaming, retried=False, status=status if isinstance(status, int) else None
        )
