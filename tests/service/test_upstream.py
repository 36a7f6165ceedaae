"""A generator that fails (500), times out, or breaks off mid-stream: the real ``openai`` generator
pointed at a FAKE OpenAI-compatible server."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest

from tests.service.conftest import ADMIN_KEY, QUESTION, Service, parse_sse


def test_generator_500_is_502(admin: httpx.Client) -> None:
    response = admin.post("/v1/collections/docs/ask", json={"question": QUESTION, "pipeline": "fail"})
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "UpstreamError" and "answered 500" in error["message"]
    streamed = admin.post("/v1/collections/docs/ask", json={"question": QUESTION, "pipeline": "fail", "stream": True})
    assert streamed.status_code == 502, "a generator that cannot start gives a status, not a 200 stream"
    assert admin.get("/healthz").status_code == 200


@pytest.mark.timeout(120)  # bounds a hang; no assertion on seconds
def test_generator_timeout_is_504(admin: httpx.Client) -> None:
    """The 1 s client timeout does not wait for the slow server.

    The slow server answers 500 ("too late") after 3 s: had the service
    waited for it, the answer would be that 502, not a 504 timeout.
    """
    response = admin.post("/v1/collections/docs/ask", json={"question": QUESTION, "pipeline": "slow"})
    assert response.status_code == 504, response.text
    assert response.json()["error"]["type"] == "UpstreamTimeoutError"
    assert "did not answer within 1 s" in response.json()["error"]["message"]
    assert "too late" not in response.text, "the service waited for the slow server's answer"
    assert admin.get("/healthz").json() == {"status": "ok"}


def test_chat_completions_report_upstream_failures(service: Service) -> None:
    client = openai.OpenAI(base_url=f"{service.url}/v1", api_key=ADMIN_KEY, max_retries=0, timeout=60)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="docs:fail", messages=[{"role": "user", "content": QUESTION}])
    assert failed.value.status_code == 502 and failed.value.type == "upstream_error"
    with pytest.raises(openai.APIStatusError) as slow:
        client.chat.completions.create(model="docs:slow", messages=[{"role": "user", "content": QUESTION}], stream=True)
    assert slow.value.status_code == 504
    stream = client.chat.completions.create(
        model="docs:broken", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    with pytest.raises(openai.APIError) as broken:
        for _ in stream:
            pass
    assert "broke off the stream" in str(broken.value.message)


def test_failure_mid_stream_is_an_error_event(admin: httpx.Client) -> None:
    body = {"question": QUESTION, "pipeline": "broken", "stream": True}
    with admin.stream("POST", "/v1/collections/docs/ask", json=body) as response:
        assert response.status_code == 200
        events = [(name, json.loads(data)) for name, data in parse_sse(response.iter_lines())]
    names = [name for name, _ in events]
    assert names[0] == "retrieval" and names[1] == "token" and names[-1] == "error"
    assert events[1][1] == {"text": "Levi"}
    error = events[-1][1]
    assert error["status"] == 502 and error["type"] == "UpstreamError"
    assert "broke off the stream" in error["message"]
    assert "answer" not in names
    assert admin.get("/healthz").status_code == 200


def test_unexpected_errors_are_500_with_the_request_id(admin: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    """A bug (here a FAKE generator raising RuntimeError) is a logged 500, and the service stays up."""
    body = {"question": QUESTION, "pipeline": "buggy"}
    with caplog.at_level(logging.ERROR, logger="ragkit.service"):
        response = admin.post("/v1/collections/docs/ask", json=body, headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error == {
        "type": "InternalError",
        "message": "internal error; quote request id bug-1 when reporting it",
        "request_id": "bug-1",
    }
    assert "fake generator bug" not in response.text, "internals are logged, not sent"
    logged = [r for r in caplog.records if r.exc_info and getattr(r, "fields", {}).get("request_id") == "bug-1"]
    assert logged and "fake generator bug" in caplog.text

    with admin.stream("POST", "/v1/collections/docs/ask", json={**body, "stream": True}) as streamed:
        assert streamed.status_code == 200  # the first token came: the stream had started
        events = [(name, json.loads(data)) for name, data in parse_sse(streamed.iter_lines())]
    assert [name for name, _ in events] == ["retrieval", "token", "error"]
    assert events[-1][1]["status"] == 500 and events[-1][1]["type"] == "InternalError"
    assert admin.get("/healthz").status_code == 200
