"""The generator base: joining streams, tool-call fragments, the async twin and its cancellation."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from ragkit.generation import BaseGenerator, GenerationDelta, GenerationOptions, Message, Usage, join_stream


class CountingGenerator(BaseGenerator):
    """A test double: streams ``n`` numbered words slowly and records whether it was closed early."""

    def __init__(self, n: int = 50, delay: float = 0.005) -> None:
        self.n = n
        self.delay = delay
        self.closed = threading.Event()
        self.thread_names: list[str] = []

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Iterator[GenerationDelta]:
        self.thread_names.append(threading.current_thread().name)
        done = False
        try:
            for i in range(self.n):
                time.sleep(self.delay)
                yield GenerationDelta(text=f"w{i} ")
            done = True
            yield GenerationDelta(finish_reason="length", usage=Usage(7, self.n))
        finally:
            if not done:
                self.closed.set()


def test_generate_joins_the_stream():
    result = CountingGenerator(5, 0).generate([Message("user", "x")])
    assert result.text == "w0 w1 w2 w3 w4 "
    assert result.finish_reason == "length" and result.usage.total_tokens == 12


def test_streamed_tool_call_fragments_become_whole_calls():
    deltas = [
        GenerationDelta(tool_calls=[{"index": 0, "id": "c1", "type": "function", "function": {"name": "search"}}]),
        GenerationDelta(tool_calls=[{"index": 0, "function": {"arguments": '{"q": '}}]),
        GenerationDelta(tool_calls=[{"index": 1, "id": "c2", "type": "function", "function": {"name": "sql"}}]),
        GenerationDelta(tool_calls=[{"index": 0, "function": {"arguments": '"tower"}'}}]),
        GenerationDelta(finish_reason="tool_calls"),
    ]
    result = join_stream(iter(deltas))
    assert result.finish_reason == "tool_calls"
    assert [c["function"]["name"] for c in result.tool_calls] == ["search", "sql"]
    assert result.tool_calls[0]["function"]["arguments"] == '{"q": "tower"}'


def test_async_twin_runs_off_the_event_loop_and_matches():
    generator = CountingGenerator(10, 0)

    async def run():
        return await generator.agenerate([Message("user", "x")])

    result = asyncio.run(run())
    assert result.text == generator.generate([Message("user", "x")]).text
    assert generator.thread_names[0] != "MainThread"


def test_cancelling_the_consumer_closes_the_blocking_stream():
    generator = CountingGenerator(10_000, 0.001)
    baseline = threading.active_count()

    async def run():
        async def consume():
            async for _ in generator.astream([Message("user", "x")]):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(generator.closed.wait, 5)

    asyncio.run(run())
    assert generator.closed.is_set()
    assert threading.active_count() <= baseline + 1


def test_errors_in_the_stream_reach_the_async_consumer():
    class Broken(BaseGenerator):
        def stream(self, messages, options=None):
            yield GenerationDelta(text="a")
            raise RuntimeError("model fell over")

    async def run():
        return [d async for d in Broken().astream([Message("user", "x")])]

    with pytest.raises(RuntimeError, match="fell over"):
        asyncio.run(run())


def test_a_stream_blocked_inside_next_is_cancelled_when_the_consumer_leaves():
    class BlockingStream:
        """Blocks in ``next`` (like a model waiting for its lock) until ``cancel`` is called."""

        def __init__(self) -> None:
            self.cancelled = threading.Event()
            self.yielded = False

        def __iter__(self):
            return self

        def __next__(self):
            if not self.yielded:
                self.yielded = True
                return GenerationDelta(text="first")
            if self.cancelled.wait(10):
                raise StopIteration
            raise AssertionError("never cancelled")

        def cancel(self) -> None:
            self.cancelled.set()

        def close(self) -> None:
            pass

    stream = BlockingStream()

    class Blocking(BaseGenerator):
        def stream(self, messages, options=None):
            return stream

    async def run():
        agen = Blocking().astream([Message("user", "x")])
        assert (await agen.__anext__()).text == "first"
        await agen.aclose()

    asyncio.run(run())
    assert stream.cancelled.is_set()
