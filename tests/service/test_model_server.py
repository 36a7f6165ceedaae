"""``ragkit serve-model``'s app: the REAL local SmolLM2 behind OpenAI's chat-completions API, served by uvicorn on
loopback, used by the REAL ``openai`` client and by ragkit's own OpenAI connector (``generator: {type: openai}``).

Answers are greedy and short (a few tokens), so each takes about a second. Tool calls go through a generator that
calls tools natively: ragkit's OpenAI connector in front of the FAKE OpenAI-compatible server, and the local
Qwen2.5-Coder-0.5B, whose chat template takes tools (SmolLM2's does not: tools are refused).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from ragkit.generation import GenerationOptions, Message
from ragkit.model_server_cli import generator_config
from ragkit.rag import shared_generator
from ragkit.registry import build
from ragkit.service import ApiKey
from ragkit.service.model_server import create_model_app
from ragkit.testing.fake_openai import FakeOpenAIServer
from tests.service.conftest import LOCAL_GENERATOR, ExplodingGenerator, LiveServer, SpyGenerator

KEY = "model-server-key-0123456789"
PROMPT = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def local() -> Any:
    return shared_generator(LOCAL_GENERATOR)  # the one SmolLM2 of the test process


@pytest.fixture(scope="module")
def server(local: Any) -> Iterator[LiveServer]:
    usages: list[Any] = []
    app = create_model_app(local, api_keys=[ApiKey(key=KEY, name="test", scopes={"read"})], on_usage=usages.append)
    with LiveServer(app) as live:
        live.usages = usages  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120) as c:
        yield c


def test_the_model_is_listed_and_answers_as_it_does_in_process(client: openai.OpenAI, local: Any, server: Any):
    assert [m.id for m in client.models.list()] == ["SmolLM2-135M-Instruct"]
    reply = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=PROMPT, max_tokens=8, temperature=0)
    direct = local.generate([Message("user", PROMPT[0]["content"])], GenerationOptions(max_tokens=8, temperature=0))
    assert reply.choices[0].message.content == direct.text  # the server adds nothing to the model's greedy answer
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 8
    assert reply.usage.prompt_tokens == direct.usage.prompt_tokens
    assert server.usages[-1].completion_tokens == 8, "the usage hook saw the generation"


def test_a_stream_has_openais_chunks_and_joins_to_the_whole_answer(client: openai.OpenAI):
    whole = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=PROMPT, max_tokens=8)
    chunks = list(
        client.chat.completions.create(
            model="SmolLM2-135M-Instruct",
            messages=PROMPT,
            max_completion_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_a_stop_sequence_ends_the_answer_before_it(client: openai.OpenAI):
    free = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=PROMPT, max_tokens=12)
    text = free.choices[0].message.content or ""
    words = text.split()
    assert len(words) >= 3, text
    stop = words[2]
    cut = client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=PROMPT, max_tokens=12, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


def test_bad_requests_get_openais_errors(server: LiveServer, client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=PROMPT, temperature=5)
    assert bad.value.status_code == 400 and bad.value.param == "temperature"
    assert bad.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as no_tools:
        client.chat.completions.create(model="SmolLM2-135M-Instruct", messages=PROMPT, tools=[tool])  # type: ignore[list-item]
    assert no_tools.value.param == "tools" and "native tool calling" in no_tools.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=PROMPT, max_tokens=2)
    assert missing.value.code == "model_not_found"
    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong-key", max_retries=0)
    with stranger, pytest.raises(openai.AuthenticationError):
        stranger.models.list()


def test_ragkits_openai_connector_talks_to_it(server: LiveServer, local: Any, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAGKIT_TEST_MODEL_KEY", KEY)
    url = f"{server.url}/v1"
    config = f"{{type: openai, model: SmolLM2-135M-Instruct, base_url: '{url}', api_key_env: RAGKIT_TEST_MODEL_KEY}}"
    remote = build("generator", {**generator_config(config), "max_retries": 0, "timeout": 120})
    messages = [Message("user", "Name three colours.")]
    try:
        whole = remote.generate(messages, GenerationOptions(max_tokens=8, temperature=0))
        assert whole.text == local.generate(messages, GenerationOptions(max_tokens=8, temperature=0)).text
        streamed = list(remote.stream(messages, GenerationOptions(max_tokens=8, temperature=0, seed=3)))
        assert "".join(d.text for d in streamed) == whole.text
        assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens == 8
    finally:
        remote.close()


def test_tools_pass_through_to_a_generator_that_calls_them():
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    with FakeOpenAIServer(model="fake-model") as fake:
        fake.reset(tool_call={"name": "lookup", "arguments": '{"q": "chinook"}'})
        upstream = build("generator", {"type": "openai", "model": "fake-model", "base_url": fake.v1, "api_key": "x"})
        with LiveServer(create_model_app(upstream)) as live, openai.OpenAI(base_url=f"{live.url}/v1", api_key="x") as c:
            reply = c.chat.completions.create(model="fake-model", messages=PROMPT, tools=[tool])  # type: ignore[list-item]
            calls = reply.choices[0].message.tool_calls or []
            assert reply.choices[0].finish_reason == "tool_calls"
            assert [(call.function.name, call.function.arguments) for call in calls] == [("lookup", '{"q": "chinook"}')]
        upstream.close()
        assert fake.state.requests[-1]["body"]["tools"] == [tool], "the tools reached the upstream model"


def _qwen_installed() -> bool:
    try:
        from ragkit_transformers.packaged import QWEN_CODER_05B, installed
    except ImportError:
        return False
    return installed(QWEN_CODER_05B)


@pytest.mark.skipif(not _qwen_installed(), reason="ragkit-transformers[qwen-0-5b] not installed")
def test_the_served_local_qwen_answers_with_native_tool_calls_whole_and_streamed():
    calculator = {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate an arithmetic expression.",
            "parameters": {
                "type": "object",
                "properties": {"expression": {"type": "string"}},
                "required": ["expression"],
            },
        },
    }
    question = [{"role": "user", "content": "What is 1234 * 5678? Use the calculator."}]
    qwen = shared_generator({"type": "transformers", "model": "qwen2.5-coder-0.5b-instruct", "max_new_tokens": 96})
    with LiveServer(create_model_app(qwen)) as live, openai.OpenAI(base_url=f"{live.url}/v1", api_key="x") as c:
        reply = c.chat.completions.create(
            model="qwen2.5-coder-0.5b-instruct",
            messages=question,  # type: ignore[arg-type]
            tools=[calculator],  # type: ignore[list-item]
            temperature=0,
        )
        assert reply.choices[0].finish_reason == "tool_calls"
        calls = reply.choices[0].message.tool_calls or []
        assert [call.function.name for call in calls] == ["calculator"]  # type: ignore[union-attr]
        expression = json.loads(calls[0].function.arguments)["expression"]  # type: ignore[union-attr]
        assert "1234" in expression and "5678" in expression
        chunks = list(
            c.chat.completions.create(
                model="qwen2.5-coder-0.5b-instruct",
                messages=question,  # type: ignore[arg-type]
                tools=[calculator],  # type: ignore[list-item]
                temperature=0,
                stream=True,
            )
        )
        streamed = [call for chunk in chunks if chunk.choices for call in chunk.choices[0].delta.tool_calls or []]
        assert [call.function.name for call in streamed] == ["calculator"]  # type: ignore[union-attr]
        assert streamed[0].function.arguments == calls[0].function.arguments  # type: ignore[union-attr]
        assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "tool_calls"


def test_a_client_that_leaves_stops_the_model(local: Any):
    spy = SpyGenerator(local)
    with LiveServer(create_model_app(spy)) as live:
        long = [{"role": "user", "content": "Count from 1 to 500, one number per line."}]  # far past the timeout
        body = {"model": spy.model_name, "messages": long, "max_tokens": 400, "temperature": 0}
        with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=live.url, timeout=1.0) as impatient:
            impatient.post("/v1/chat/completions", json=body)
        for _ in range(600):  # the server notices the hang-up and closes the stream (bounded wait, not a timing)
            if spy.runs and spy.runs[0]["ended_at"] is not None:
                break
            time.sleep(0.2)
        assert spy.runs[0]["closed_early"] and not spy.runs[0]["completed"]
        assert spy.runs[0]["deltas"] < 400


def test_a_failure_mid_stream_is_an_error_event_before_done():
    with LiveServer(create_model_app(ExplodingGenerator())) as live:
        body = {"model": "ExplodingGenerator", "messages": PROMPT, "stream": True}
        with httpx.Client(base_url=live.url, timeout=30) as client:
            events = [line[6:] for line in client.post("/v1/chat/completions", json=body).text.splitlines() if line]
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[1]["choices"][0]["delta"] == {"content": "Santa"}
    assert chunks[-1]["error"]["type"] == "api_error" and "fake generator bug" in chunks[-1]["error"]["message"]
    assert events[-1] == "[DONE]"
