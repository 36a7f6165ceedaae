"""The shared fake OpenAI server's counting knobs: every n-th failure, failures sent, requests in flight.

These are what the ragas judge fake (``ragkit_ragas.testing``) is built on, so the core checks them
itself, over real HTTP on loopback.
"""

from __future__ import annotations

import threading

import httpx

from ragkit.testing.fake_openai import FakeOpenAIServer


def _chat(url: str) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=10).status_code


def test_every_third_model_request_fails_and_the_failures_are_counted() -> None:
    with FakeOpenAIServer(fail_every=3) as fake:
        statuses = [_chat(fake.v1) for _ in range(7)]
        assert statuses == [200, 200, 500, 200, 200, 500, 200]
        assert fake.state.model_requests == 7
        assert fake.state.failures == 2
        state = fake.reset()  # the constructor's knobs again, counts from zero
        assert (state.fail_every, state.model_requests, state.failures) == (3, 0, 0)
        assert [_chat(fake.v1) for _ in range(3)] == [200, 200, 500]


def test_requests_in_flight_are_counted_and_waited_for() -> None:
    with FakeOpenAIServer(delay=1.0) as fake:
        threads = [threading.Thread(target=_chat, args=(fake.v1,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert fake.state.max_in_flight == 3
        assert fake.state.in_flight == 0
        fake.state.delay = 1.0
        slow = threading.Thread(target=_chat, args=(fake.v1,))
        slow.start()
        for _ in range(500):  # until the request has reached the server
            if fake.state.in_flight:
                break
            threading.Event().wait(0.01)
        assert fake.state.in_flight == 1
        assert fake.wait_idle(timeout=5)
        assert fake.state.in_flight == 0
        slow.join()
