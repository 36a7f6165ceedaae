"""Run the standard suites' ``async def`` tests with pytest-asyncio, as LangChain's own repositories do.

The suites' async tests carry no marker (LangChain runs them in pytest-asyncio's
auto mode). ragkit's pytest configuration keeps the strict mode, so the
``asyncio`` marker is added here to the coroutine tests of this folder only,
before pytest-asyncio decides which items it runs; nothing in the suites is changed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: object) -> Iterator[None]:
    outcome = yield
    if not inspect.iscoroutinefunction(obj):
        return
    items = outcome.get_result()
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, pytest.Function) and item.get_closest_marker("asyncio") is None:
            item.add_marker(pytest.mark.asyncio)
