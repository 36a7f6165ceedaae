"""A client that goes away mid-answer stops the generation (the real model, watched by a spy)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.service.conftest import ADMIN_KEY, QUESTION, Service, parse_sse


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def baseline(admin: httpx.Client, service: Service) -> int:
    """Thread count once a complete (short) spy run has created the threads a stream uses."""
    warm = admin.post("/v1/collections/docs/ask", json={"question": QUESTION, "pipeline": "spy", "max_tokens": 2})
    assert warm.status_code == 200
    _wait(lambda: all(r["ended_at"] for r in service.spy.runs), 10, "the warm-up run to end")
    time.sleep(0.3)
    return threading.active_count()


def _check_stopped(service: Service, run: dict[str, Any], baseline: int) -> None:
    """The run was closed early: how soon is counted in tokens (the spy's deltas), not seconds."""
    _wait(lambda: run["ended_at"] is not None, 15, "the generator to stop")
    assert run["closed_early"] and not run["completed"]
    assert run["deltas"] < 100, "the model kept generating after the client left"
    _wait(lambda: threading.active_count() <= baseline, 15, f"threads to return to {baseline}")


def test_disconnect_mid_sse_stream_stops_generation(service: Service, baseline: int) -> None:
    runs = len(service.spy.runs)
    body = {"question": QUESTION, "pipeline": "spy", "stream": True}
    with service.client() as client, client.stream("POST", "/v1/collections/docs/ask", json=body) as response:
        assert response.status_code == 200
        for name, _ in parse_sse(response.iter_lines()):
            if name == "token":
                break  # leave after the first token: the connection is closed
    _check_stopped(service, service.spy.runs[runs], baseline)


def test_disconnect_mid_chat_stream_stops_generation(service: Service, baseline: int) -> None:
    runs = len(service.spy.runs)
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key=ADMIN_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="docs:spy", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    client.close()
    _check_stopped(service, service.spy.runs[runs], baseline)


def test_client_timing_out_on_a_whole_answer_stops_generation(service: Service, baseline: int) -> None:
    runs = len(service.spy.runs)
    release = threading.Event()
    service.spy.hold_after_first = release  # the answer cannot finish before the client's read timeout
    try:
        with service.client(timeout=httpx.Timeout(10, read=1.5)) as client, pytest.raises(httpx.ReadTimeout):
            client.post("/v1/collections/docs/ask", json={"question": QUESTION, "pipeline": "spy"})
    finally:
        service.spy.hold_after_first = None
        release.set()
    _wait(lambda: len(service.spy.runs) > runs, 10, "the run to start")
    _check_stopped(service, service.spy.runs[runs], baseline)
