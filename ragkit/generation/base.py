"""The generator role: chat messages in, text (streamed or whole) out.

Every generator speaks chat messages (:class:`Message`) and returns a
:class:`Generation`, or streams :class:`GenerationDelta` pieces whose text
concatenates to the same answer. :class:`BaseGenerator` gives the async
twins and the whole-answer call for free to a subclass that implements
:meth:`BaseGenerator.stream` and the token counter.

Streams are cancellable: closing the iterator (``it.close()``, leaving a
``for`` loop early and dropping it, or cancelling the task that runs
:meth:`BaseGenerator.astream`) asks the generator to stop, so a client that
disconnects does not leave a model generating for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ragkit.component import Component

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


@dataclass(slots=True)
class Message:
    """One chat message, in the OpenAI chat-completions shape."""

    role: Role
    content: str
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    """Tool calls an assistant message made (OpenAI's ``tool_calls`` objects, passed through)."""
    tool_call_id: str | None = None
    """For ``role="tool"``: the call this message answers."""

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI wire form (``None`` fields left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        content = data.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return cls(
            role=data["role"],
            content=content or "",
            name=data.get("name"),
            tool_calls=data.get("tool_calls"),
            tool_call_id=data.get("tool_call_id"),
        )


@dataclass(slots=True)
class Usage:
    """Token counts of one generation, measured by the generator's own tokenizer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        """The OpenAI ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class GenerationOptions:
    """Sampling options of one call; ``None`` leaves the generator's own default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    """OpenAI-style tool definitions, passed through to generators that support tools."""
    tool_choice: Any = None

    def merged(self, defaults: GenerationOptions) -> GenerationOptions:
        """These options, with ``None`` fields taken from ``defaults``."""
        values = {name: getattr(self, name) for name in self.__slots__}
        for name, value in values.items():
            if value is None:
                values[name] = getattr(defaults, name)
        return GenerationOptions(**values)


@dataclass(slots=True)
class GenerationDelta:
    """One piece of a streamed generation.

    ``text`` is new text (may be empty). The last delta carries
    ``finish_reason`` and, when the generator knows it, ``usage``.
    ``tool_calls`` carries tool-call fragments as the server sent them.
    """

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Generation:
    """A whole generation: the text, why it stopped, and the tokens it took."""

    text: str
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    tool_calls: list[dict[str, Any]] | None = None


@runtime_checkable
class Generator(Protocol):
    """Writes the answer: chat messages in, text out, whole or streamed."""

    @property
    def model_name(self) -> str:
        """The model's name as reported to users (and in ``/v1/models``)."""
        ...

    @property
    def context_window(self) -> int:
        """How many tokens prompt plus answer may hold."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``, by the generator's own tokenizer (or a stated estimate)."""
        ...

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens the prompt built from ``messages`` takes, chat template included."""
        ...

    def generate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Generation:
        """The whole answer."""
        ...

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        """The answer as it is produced; closing the iterator stops generation."""
        ...

    async def agenerate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Generation:
        """Async twin of :meth:`generate`."""
        ...

    def astream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> AsyncIterator[GenerationDelta]:
        """Async twin of :meth:`stream`; cancelling the consumer stops generation."""
        ...


_DONE = object()


class BaseGenerator(Component):
    """Base of generators: subclasses implement :meth:`stream` and :meth:`count_tokens`.

    ``generate`` joins the stream; ``agenerate`` / ``astream`` run the
    blocking stream in a worker thread so the event loop never waits on a
    model. Subclasses with a native async client override them.
    """

    default_options: GenerationOptions = GenerationOptions(max_tokens=256, temperature=0.0)
    supports_tools: bool = False
    """Whether the model takes ``GenerationOptions.tools`` and answers with tool calls (agents use ReAct if not)."""
    suggested_user_prompt: str | None = None
    """A RAG user message this model answers better with; a pipeline whose config leaves ``prompt.user`` unset uses it
    instead of the default (``{context}`` and ``{question}`` are filled in). ``None``: the default suits it."""

    @property
    def model_name(self) -> str:
        """The model's name as reported to users."""
        return self.component_type or type(self).__name__

    @property
    def context_window(self) -> int:
        """How many tokens prompt plus answer may hold (subclasses know better)."""
        return 2048

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text``; this base estimates four characters per token."""
        return len(text) // 4 + 1

    def count_message_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the messages plus a few per message for the chat template's markers."""
        return sum(self.count_tokens(m.content) + 4 for m in messages) + 2

    def options(self, options: GenerationOptions | None) -> GenerationOptions:
        """``options`` completed with this generator's defaults."""
        return (options or GenerationOptions()).merged(self.default_options)

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        """The answer as it is produced (subclasses implement this)."""
        raise NotImplementedError

    def generate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Generation:
        """The whole answer, joined from :meth:`stream`."""
        return join_stream(self.stream(messages, options), self.model_name)

    async def agenerate(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Generation:
        """Async twin of :meth:`generate`."""
        pieces = [delta async for delta in self.astream(messages, options)]
        return join_stream(iter(pieces), self.model_name)

    async def astream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> AsyncIterator[GenerationDelta]:
        """Run :meth:`stream` in a worker thread and hand its pieces to the event loop.

        When the consumer stops early (cancelled, or ``aclose()``), the
        worker closes the blocking iterator, which stops the model.
        """
        async for delta in iterate_in_thread(lambda: self.stream(messages, options)):
            yield delta


def join_stream(deltas: Iterator[GenerationDelta], model: str = "") -> Generation:
    """A :class:`Generation` from a stream of deltas."""
    parts: list[str] = []
    finish: FinishReason = "stop"
    usage = Usage()
    tool_calls: list[dict[str, Any]] = []
    for delta in deltas:
        parts.append(delta.text)
        if delta.finish_reason is not None:
            finish = delta.finish_reason
        if delta.usage is not None:
            usage = delta.usage
        if delta.tool_calls:
            merge_tool_call_fragments(tool_calls, delta.tool_calls)
    return Generation("".join(parts), finish, usage, model, tool_calls or None)


def merge_tool_call_fragments(calls: list[dict[str, Any]], fragments: list[dict[str, Any]]) -> None:
    """Fold streamed tool-call fragments into whole calls, OpenAI style.

    A stream sends each call in pieces that share an ``index``: the first
    carries ``id``, ``type`` and ``function.name``, later ones append to
    ``function.arguments``. Fragments without an index are whole calls.
    """
    for fragment in fragments:
        index = fragment.get("index")
        target = next((c for c in calls if index is not None and c.get("index") == index), None)
        if target is None:
            calls.append({**fragment, "function": dict(fragment.get("function") or {})})
            continue
        for key in ("id", "type"):
            if fragment.get(key):
                target[key] = fragment[key]
        function = fragment.get("function") or {}
        if function.get("name"):
            target["function"]["name"] = function["name"]
        if function.get("arguments"):
            target["function"]["arguments"] = target["function"].get("arguments", "") + function["arguments"]


async def iterate_in_thread(make_iterator: Any, queue_size: int = 64) -> AsyncIterator[Any]:
    """Consume a blocking iterator in its own thread, yielding its items asynchronously.

    ``make_iterator`` is called in that thread. If the consumer goes away,
    the iterator's ``cancel()`` (when it has one) is called at once, so a
    model waiting for its lock or mid-token can stop, and the worker stops
    pulling and closes the iterator (its ``close()`` runs in the worker
    thread, where the iterator lives). A dedicated thread per stream keeps
    long generations from filling the event loop's default executor.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
    stop = threading.Event()
    finished = loop.create_future()
    holder: list[Any] = []

    def put(item: Any) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            try:
                future.result(timeout=0.1)
                return
            except TimeoutError:
                continue
        future.cancel()

    def work() -> None:
        try:
            iterator = make_iterator()
            holder.append(iterator)
            for item in iterator:
                if stop.is_set():
                    break
                put(item)
        except BaseException as exc:  # handed to the consumer, re-raised there
            if not stop.is_set():
                put(_Failure(exc))
        finally:
            if holder:
                with contextlib.suppress(Exception):
                    holder[0].close()
            if not stop.is_set():
                put(_DONE)
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                loop.call_soon_threadsafe(_resolve, finished)

    # in the caller's context, as asyncio.to_thread: a trace span current here stays the parent there
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="ragkit-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        cancel = getattr(holder[0], "cancel", None) if holder else None
        if callable(cancel):
            with contextlib.suppress(Exception):
                cancel()
        while not queue.empty():  # so a worker blocked on a full queue can finish
            queue.get_nowait()
        with contextlib.suppress(BaseException):
            await asyncio.shield(finished)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(slots=True)
class _Failure:
    exc: BaseException


def generate_within(
    generator: Generator, messages: Sequence[Message], options: GenerationOptions, timeout: float | None
) -> Generation:
    """The whole generation, or an :class:`~ragkit.errors.UpstreamTimeoutError` after ``timeout`` seconds.

    ``timeout=None`` waits as long as the generator takes. Otherwise the
    model streams in a thread of its own; on timeout the stream's
    ``cancel()`` (the local generator has one) asks it to stop within a
    token, so a late answer does not hold the model for the next call. Load a
    local model before calling this, or its load time counts against the
    deadline.
    """
    if timeout is None:
        return generator.generate(messages, options)
    import logging
    import threading

    from ragkit.errors import UpstreamTimeoutError

    done = threading.Event()
    holder: list[Any] = []
    box: dict[str, Any] = {}
    name = str(getattr(generator, "model_name", "") or "the generator")

    def work() -> None:
        try:
            stream = generator.stream(messages, options)
            holder.append(stream)
            box["generation"] = join_stream(iter(stream), name)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc
        finally:
            done.set()

    context = contextvars.copy_context()  # the caller's trace span stays the parent in the worker
    threading.Thread(target=context.run, args=(work,), name="ragkit-generate-within", daemon=True).start()
    if not done.wait(timeout):
        cancel = getattr(holder[0], "cancel", None) if holder else None
        if callable(cancel):
            try:
                cancel()
            except Exception as exc:  # a failed cancel must not hide the timeout
                logging.getLogger(__name__).debug("cancelling a timed-out generation failed: %s", exc)
        raise UpstreamTimeoutError(f"{name} did not answer within {timeout:g} s (option 'timeout')")
    if "error" in box:
        raise box["error"]
    generation: Generation = box["generation"]
    return generation
