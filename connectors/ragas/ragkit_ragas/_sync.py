"""Running coroutines from sync code, inside or outside a running event loop.

Blocking calls (``score_many``, ``generate_testset``, the ragas LLM's
``generate``) run their coroutine on one long-lived event loop in a daemon
thread, shared by the whole process. Async HTTP clients are bound to the
loop they were made on (the ``openai`` generator keeps one per loop): a
fresh ``asyncio.run`` per call would leave each call's clients to be closed
after their loop is gone ("Event loop is closed" noise) and would reconnect
every time. Calling from inside a running loop works too: the caller's
thread just waits for the shared loop, which is never the caller's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _shared_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed() or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="ragkit-ragas-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code and return its result (or raise its error).

    It runs on the shared loop thread; if the caller *is* that thread (a
    blocking call made from inside a coroutine running there), a private
    loop on a new thread is used instead, so nothing deadlocks.
    """
    coroutine = _as_coroutine(awaitable)
    if threading.current_thread() is _thread:
        return _run_in_new_thread(coroutine)
    future = asyncio.run_coroutine_threadsafe(coroutine, _shared_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # the caller gave up (KeyboardInterrupt ...): stop the work too
        raise


def _run_in_new_thread(coroutine: Coroutine[Any, Any, T]) -> T:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="ragkit-ragas-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
