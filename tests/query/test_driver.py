"""The sync drivers of the async pipeline code: they finish coroutines that never wait, and refuse ones that do."""

from __future__ import annotations

import asyncio

import pytest

from ragkit.query.driver import SuspendedError, iterate_now, run_now


async def _add(a: int, b: int) -> int:
    async def inner() -> int:
        return a + b

    return await inner()


def test_run_now_finishes_a_coroutine_that_never_waits():
    assert run_now(_add(2, 3)) == 5


def test_run_now_refuses_a_coroutine_that_waits_for_a_loop():
    with pytest.raises(SuspendedError, match="sync mode"):
        run_now(asyncio.sleep(0))  # yields to a loop once


def test_iterate_now_yields_and_runs_finally_blocks_when_closed_early():
    closed: list[bool] = []

    async def numbers():
        try:
            for n in range(10):
                yield n
        finally:
            closed.append(True)

    iterator = iterate_now(numbers())
    assert [next(iterator), next(iterator)] == [0, 1]
    iterator.close()
    assert closed == [True]
    assert list(iterate_now(numbers())) == list(range(10)) and closed == [True, True]
