"""Running answers for the routes: whole (stopped if the client leaves) or as a stream of events.

A streamed answer is opened before the response starts: the pipeline's first
events (retrieval and the first token) are awaited first, so a question the
pipeline refuses, an unknown collection or a generator that cannot start still
gets a proper status code (400, 404, 502, 504 ...). After that, each event is
sent as soon as it is produced, and a failure becomes an error event. When the
client disconnects, the response is cancelled, the pipeline's async iterator is
closed and the generator stops; the answer slot is released in every case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ragkit.collection import Collection
from ragkit.errors import RagkitError
from ragkit.filters import FilterLike
from ragkit.generation.base import GenerationOptions, Message
from ragkit.rag import AskEvent, RagPipeline
from ragkit.rag.answer import Answer
from ragkit.rag.pipeline import AskExtras

log = logging.getLogger("ragkit.service")

T = TypeVar("T")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and raising :class:`ClientGone`) if the client disconnects."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await watcher
    if task.cancelled() or not task.done():
        with contextlib.suppress(BaseException):
            await task
        raise ClientGone()
    return task.result()


class AnswerRun:
    """One answer in progress: holds an answer slot and the pipeline's event iterator."""

    def __init__(self, slots: asyncio.Semaphore, events: AsyncIterator[AskEvent]) -> None:
        self._slots = slots
        self._events = events
        self._released = False
        self.first: list[AskEvent] = []

    @classmethod
    async def open(
        cls,
        slots: asyncio.Semaphore,
        pipeline: RagPipeline,
        question: str,
        collection: Collection,
        top_k: int | None,
        filters: FilterLike,
        mode: str | None,
        options: GenerationOptions,
        history: list[Message] | None = None,
        extras: AskExtras | None = None,
    ) -> AnswerRun:
        """Take a slot, start the pipeline and wait for its first token (or its answer)."""
        await slots.acquire()
        run = cls(slots, pipeline.astream(question, collection, top_k, filters, mode, options, history, extras=extras))
        try:
            async for event in run._events:
                run.first.append(event)
                if event.type != "retrieval":
                    break
        except BaseException:
            await run.close()
            raise
        return run

    async def events(self) -> AsyncIterator[AskEvent]:
        """Every event: the prefetched ones, then the rest as they come."""
        for event in self.first:
            yield event
        if self.first and self.first[-1].type == "answer":
            return
        async for event in self._events:
            yield event

    async def close(self) -> None:
        """Stop the pipeline (closing its iterator stops the generator) and free the slot. Idempotent."""
        try:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):
                    await aclose()
        finally:
            if not self._released:
                self._released = True
                self._slots.release()


class Closable(Protocol):
    """A run a streamed response closes when it ends: an :class:`AnswerRun`, or a raw model's stream."""

    async def close(self) -> None:
        """Stop the work and free what it holds. Idempotent."""
        ...


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response that closes its run (:class:`AnswerRun`) however the stream ends."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], run: Closable, headers: dict[str, str] | None = None) -> None:
        super().__init__(content, headers={**SSE_HEADERS, **(headers or {})}, media_type=self.media_type)
        self._run = run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream, then close the run (on success, error or disconnect)."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            await asyncio.shield(self._run.close())


def error_status(exc: BaseException) -> int:
    """The HTTP status an exception stands for."""
    return int(exc.http_status) if isinstance(exc, RagkitError) else 500


async def guarded(
    events: AsyncIterator[AskEvent],
    encode: Callable[[AskEvent], bytes],
    encode_error: Callable[[str, str, int], bytes],
    on_answer: Callable[[Answer], Any],
    request_id: str,
) -> AsyncIterator[bytes]:
    """Encode events; a failure mid-stream becomes one final error event."""
    try:
        async for event in events:
            if event.answer is not None:
                on_answer(event.answer)
            data = encode(event)
            if data:  # an event the wire format has no place for encodes to nothing
                yield data
    except RagkitError as exc:
        log.warning("stream %s failed: %s: %s", request_id, type(exc).__name__, exc)
        yield encode_error(type(exc).__name__, str(exc), error_status(exc))
    except Exception as exc:
        log.exception("stream %s failed", request_id)
        message = f"internal error ({type(exc).__name__}); quote request id {request_id} when reporting it"
        yield encode_error("InternalError", message, 500)
