"""Drive a coroutine or an async generator to its end without an event loop.

The query pipeline is written once, as async code. Its sync API runs the same
code through these drivers: in sync mode every ``await`` inside it awaits a
coroutine that completes at once (the stages' sync methods are called
directly), so a coroutine finishes on its first ``send`` and no event loop,
thread or queue is needed. One loop, not two, and no per-call overhead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class SuspendedError(RuntimeError):
    """A coroutine driven in sync mode tried to wait for something (a bug in a stage's sync path)."""


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of ``coroutine``, which must complete without suspending."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise SuspendedError("a pipeline step waited for an event loop while running in sync mode")


def iterate_now(generator: AsyncGenerator[T, None]) -> Iterator[T]:
    """The items of an async generator that never suspends, as a plain iterator.

    Closing the iterator early (a consumer that stops reading) closes the
    async generator, so its ``finally`` blocks run (a model stream is stopped).
    """
    try:
        while True:
            try:
                item = run_now(generator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        with contextlib.suppress(StopAsyncIteration, RuntimeError):  # already closed
            run_now(generator.aclose())
