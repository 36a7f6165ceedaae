"""The OpenAI-compatible chat generator: the real ``openai`` client against the FAKE server on loopback.

The server is :class:`ragkit.testing.fake_openai.FakeOpenAIServer`, the one
fake every connector's tests share: it speaks the OpenAI chat-completions
wire protocol (JSON answers, SSE streams in chunked transfer encoding with a
usage chunk and ``data: [DONE]``) with no model at all. It echoes the last
user message (or a scripted reply), streams it word by word, answers with
tool calls on request, and has knobs to fail the next requests (429 with
``Retry-After``, 500, 400, 401 ...), answer slowly, stall or drop the
connection in the middle of a stream, and send garbage. It records every
request and notices when a client hangs up before the stream is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
from ragkit_openai import OpenAIChatGenerator

from ragkit.errors import ConfigError, InputError, UnavailableError, UpstreamError, UpstreamTimeoutError
from ragkit.generation.base import GenerationOptions, Generator, Message
from ragkit.registry import build
from ragkit.testing.fake_openai import FakeOpenAIServer, FakeState
from ragkit.testing.generator_conformance import GeneratorConformance

MODEL = "fake-chat-model"
QUESTION = [Message("system", "You answer briefly."), Message("user", "What flows through the city?")]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# -- the fake server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model=MODEL) as server:
        yield server


@pytest.fixture
def srv(fake_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> tuple[str, FakeState]:
    """The fake server with its knobs reset; the client's backoff shortened so retries are quick."""
    import openai._base_client

    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.01)
    return fake_server.v1, fake_server.reset()


def make(url: str, **options: Any) -> OpenAIChatGenerator:
    options.setdefault("max_retries", 0)
    return OpenAIChatGenerator(model=options.pop("model", MODEL), base_url=url, **options)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# -- the generator conformance suite ---------------------------------------------------------------


class TestConformance(GeneratorConformance):
    @pytest.fixture
    def generator(self, fake_server: FakeOpenAIServer):
        fake_server.reset()
        return make(fake_server.v1)


# -- answers ----------------------------------------------------------------------------------


def test_is_a_generator():
    generator = make("http://127.0.0.1:9/v1")
    assert isinstance(generator, Generator)
    assert generator.model_name == MODEL
    assert generator.context_window == 8192


def test_generate_returns_the_text_finish_reason_and_usage(srv):
    url, state = srv
    generation = make(url).generate(QUESTION)
    assert generation.text == "Echo: What flows through the city?"
    assert generation.finish_reason == "stop"
    assert (generation.usage.prompt_tokens, generation.usage.completion_tokens) == (11, 6)
    assert generation.model == MODEL
    assert generation.tool_calls is None
    body = state.bodies[0]
    assert "stream" not in body  # a real non-streaming call, not a joined stream
    assert body["messages"] == [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "What flows through the city?"},
    ]
    assert body["model"] == MODEL


def test_stream_yields_text_pieces_then_finish_and_usage(srv):
    url, state = srv
    deltas = list(make(url).stream(QUESTION))
    texts = [d.text for d in deltas if d.text]
    assert texts == ["Echo:", " What", " flows", " through", " the", " city?"]
    assert all(d.finish_reason is None for d in deltas[:-1])
    last = deltas[-1]
    assert last.finish_reason == "stop"
    assert last.usage is not None and last.usage.completion_tokens == 6 and last.usage.prompt_tokens == 11
    body = state.bodies[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert state.finished.wait(2)


def test_stream_text_equals_generate_text(srv):
    url, _ = srv
    generator = make(url)
    streamed = "".join(d.text for d in generator.stream(QUESTION))
    assert streamed == generator.generate(QUESTION).text


def test_stream_without_usage_from_the_server(srv):
    url, state = srv
    state.send_usage = False
    last = list(make(url).stream(QUESTION))[-1]
    assert last.finish_reason == "stop"
    assert last.usage is None


def test_length_finish_reason(srv):
    url, state = srv
    state.reply = "one two three four five six seven"
    generator = make(url)
    options = GenerationOptions(max_tokens=3)
    generation = generator.generate(QUESTION, options)
    assert (generation.text, generation.finish_reason) == ("one two three", "length")
    deltas = list(generator.stream(QUESTION, options))
    assert "".join(d.text for d in deltas) == "one two three"
    assert deltas[-1].finish_reason == "length"


def test_defaults_are_sent_and_unset_options_are_not(srv):
    url, state = srv
    make(url, max_tokens=64, temperature=0.2).generate(QUESTION)
    body = state.bodies[0]
    assert body["max_tokens"] == 64
    assert body["temperature"] == 0.2
    for name in ("top_p", "stop", "seed", "tools", "tool_choice", "stream_options"):
        assert name not in body


def test_options_are_passed_through(srv):
    url, state = srv
    state.reply = "alpha beta. gamma delta"
    options = GenerationOptions(max_tokens=7, temperature=0.7, top_p=0.9, stop=["."], seed=42)
    generation = make(url, extra_body={"top_k": 20, "repetition_penalty": 1.1}).generate(QUESTION, options)
    assert generation.text == "alpha beta"  # the fake honours stop
    body = state.bodies[0]
    assert body["max_tokens"] == 7
    assert body["temperature"] == 0.7
    assert body["top_p"] == 0.9
    assert body["stop"] == ["."]
    assert body["seed"] == 42
    assert body["top_k"] == 20  # extra_body goes to the top level of the JSON body
    assert body["repetition_penalty"] == 1.1


def test_tool_calls_in_generate(srv):
    url, state = srv
    state.tool_call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    options = GenerationOptions(tools=[WEATHER_TOOL], tool_choice="auto")
    generation = make(url).generate([Message("user", "Weather in Paris?")], options)
    assert generation.finish_reason == "tool_calls"
    assert generation.text == ""
    assert generation.tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    assert state.bodies[0]["tools"] == [WEATHER_TOOL]
    assert state.bodies[0]["tool_choice"] == "auto"


def test_tool_call_fragments_in_stream(srv):
    url, state = srv
    state.tool_call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    options = GenerationOptions(tools=[WEATHER_TOOL])
    deltas = list(make(url).stream([Message("user", "Weather in Paris?")], options))
    fragments = [call for d in deltas if d.tool_calls for call in d.tool_calls]
    assert all(isinstance(call, dict) for call in fragments)
    assert fragments[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert "".join(f["function"]["arguments"] for f in fragments) == '{"city": "Paris"}'
    assert deltas[-1].finish_reason == "tool_calls"
    assert deltas[-1].usage is not None and deltas[-1].usage.total_tokens == 27


def test_a_tool_result_conversation_is_sent_in_the_wire_form(srv):
    url, state = srv
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    messages = [
        Message("user", "Weather in Paris?"),
        Message("assistant", "", tool_calls=[call]),
        Message("tool", "18 C, sunny", tool_call_id="call_1"),
    ]
    make(url).generate(messages)
    sent = state.bodies[0]["messages"]
    assert sent[1] == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert sent[2] == {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"}


# -- cancellation ---------------------------------------------------------------------------


def test_closing_the_stream_closes_the_connection(srv):
    url, state = srv
    state.reply = " ".join(f"w{i}" for i in range(300))
    state.chunk_delay = 0.01
    iterator = make(url).stream(QUESTION)
    assert next(iterator).text == "w0"
    assert next(iterator).text == " w1"
    iterator.close()
    assert state.disconnected.wait(5), "the server never saw the client hang up"
    assert state.events_sent < state.events_planned
    assert not state.finished.is_set()


def test_leaving_a_for_loop_early_closes_the_connection(srv):
    url, state = srv
    state.reply = " ".join(f"w{i}" for i in range(300))
    state.chunk_delay = 0.01

    def consume() -> None:
        for delta in make(url).stream(QUESTION):
            if delta.text == " w3":
                break

    consume()
    assert state.disconnected.wait(5)


# -- errors and retries ---------------------------------------------------------------------


def test_429_and_500_are_retried_by_the_client(srv):
    url, state = srv
    state.fail_next = [429, 500]
    generation = make(url, max_retries=2).generate(QUESTION)
    assert generation.text.startswith("Echo:")
    assert len(state.requests) == 3  # two failures, then the answer


def test_a_stream_is_retried_before_it_starts(srv):
    url, state = srv
    state.fail_next = [503]
    deltas = list(make(url, max_retries=1).stream(QUESTION))
    assert "".join(d.text for d in deltas).startswith("Echo:")
    assert len(state.requests) == 2


def test_retry_after_is_honoured(srv, monkeypatch):
    """The client waits what the server's ``Retry-After`` says before its retry (its sleeps are recorded, not timed)."""
    import openai._base_client

    sleeps: list[float] = []
    monkeypatch.setattr(openai._base_client, "time", types.SimpleNamespace(sleep=sleeps.append, time=time.time))
    url, state = srv
    state.fail_next = [429]
    state.retry_after = "0.4"
    assert make(url, max_retries=1).generate(QUESTION).text.startswith("Echo:")
    assert sleeps == [0.4]  # not the shortened backoff of 0.01 s
    assert len(state.requests) == 2


def test_a_persistent_500_gives_upstream_error_with_status_and_message(srv):
    url, state = srv
    state.fail_always = 500
    state.error_message = "CUDA out of memory"
    with pytest.raises(UpstreamError, match=r"answered 500 \(after 2 retries\): CUDA out of memory") as info:
        make(url, max_retries=2).generate(QUESTION)
    assert not isinstance(info.value, UpstreamTimeoutError)
    assert info.value.http_status == 502
    assert url in str(info.value)
    assert len(state.requests) == 3


def test_a_persistent_429_gives_unavailable(srv):
    url, state = srv
    state.fail_always = 429
    with pytest.raises(UnavailableError, match="429") as info:
        make(url, max_retries=1).generate(QUESTION)
    assert info.value.http_status == 503
    assert len(state.requests) == 2


@pytest.mark.parametrize(("status", "error"), [(400, InputError), (422, InputError), (413, InputError)])
def test_client_errors_are_input_errors_and_not_retried(srv, status, error):
    url, state = srv
    state.fail_next = [status]
    state.error_message = "This model's maximum context length is 8192 tokens"
    with pytest.raises(error, match=rf"rejected the request \({status}\): This model's maximum context length") as info:
        make(url, max_retries=3).generate(QUESTION)
    assert info.value.http_status == 400
    assert len(state.requests) == 1


def test_an_unknown_model_is_a_config_error(srv):
    url, _ = srv
    with pytest.raises(ConfigError, match=r"404 for model 'no-such-model'.*does not exist"):
        make(url, model="no-such-model").generate(QUESTION)


def test_a_refused_key_is_a_config_error_naming_the_variable(srv, monkeypatch):
    url, state = srv
    state.api_key = "right-key"
    monkeypatch.setenv("CHAT_KEY", "wrong-key")
    with pytest.raises(ConfigError, match=r"refused the API key \(401\): check the CHAT_KEY environment variable"):
        make(url, api_key_env="CHAT_KEY", max_retries=3).generate(QUESTION)
    assert len(state.requests) == 1  # not retried
    monkeypatch.setenv("CHAT_KEY", "right-key")
    assert make(url, api_key_env="CHAT_KEY").generate(QUESTION).text.startswith("Echo:")
    assert state.requests[-1]["headers"]["authorization"] == "Bearer right-key"
    assert "right-key" not in json.dumps(make(url, api_key_env="CHAT_KEY").to_config())


@pytest.mark.timeout(120)  # bounds a hang; no assertion on seconds
def test_a_timeout_gives_upstream_timeout_naming_url_and_seconds(srv):
    """The client gives up at its own timeout instead of waiting for the slow server.

    The error comes while the server is still working on the one request
    (were the timeout ignored, the answer would come, and no error).
    """
    url, state = srv
    state.delay = 30.0
    with pytest.raises(UpstreamTimeoutError, match=r"did not answer within 0.3 s") as info:
        make(url, timeout=0.3).generate(QUESTION)
    assert state.in_flight == 1, "the client waited for the slow server's answer"
    assert len(state.requests) == 1
    assert url in str(info.value)
    assert info.value.http_status == 504


def test_a_stalled_stream_gives_upstream_timeout(srv):
    url, state = srv
    state.stall_after = 3
    state.stall_seconds = 1.5
    iterator = make(url, timeout=0.3).stream(QUESTION)
    with pytest.raises(UpstreamTimeoutError, match=r"stopped sending within 0.3 s"):
        list(iterator)


def test_connection_refused_gives_unavailable(srv):
    url = closed_port_url()
    with pytest.raises(UnavailableError, match="cannot reach generation server") as info:
        make(url).generate(QUESTION)
    assert info.value.http_status == 503
    assert not isinstance(info.value, UpstreamError)


def test_a_dropped_stream_gives_upstream_error(srv):
    url, state = srv
    state.drop_after = 3
    received: list[str] = []
    with pytest.raises(UpstreamError, match="broke off the stream") as info:
        for delta in make(url).stream(QUESTION):
            received.append(delta.text)
    assert not isinstance(info.value, UpstreamTimeoutError)
    assert "".join(received) == "Echo: What"  # what came before the break was delivered


def test_garbage_answers_give_upstream_error(srv):
    url, state = srv
    state.garbage = b"<html>502 Bad Gateway</html>"
    with pytest.raises(UpstreamError, match="no completion choices"):
        make(url).generate(QUESTION)
    state.garbage, state.garbage_type = b"{not json", "application/json"
    with pytest.raises(UpstreamError, match="could not be read"):
        make(url).generate(QUESTION)


def test_garbage_inside_a_stream_gives_upstream_error(srv):
    url, state = srv
    state.bad_stream_json = True
    with pytest.raises(UpstreamError, match="sent a stream that could not be read"):
        list(make(url).stream(QUESTION))


def test_an_error_event_inside_a_stream_gives_upstream_error(srv):
    url, state = srv
    state.error_event_after = 3
    received: list[str] = []
    with pytest.raises(UpstreamError, match="sent an error in the stream: engine dead: CUDA error"):
        for delta in make(url).stream(QUESTION):
            received.append(delta.text)
    assert "".join(received) == "Echo: What"


def test_no_messages_is_an_input_error(srv):
    url, state = srv
    with pytest.raises(InputError, match="no messages"):
        make(url).generate([])
    assert state.requests == []


# -- async --------------------------------------------------------------------------------------


def test_agenerate_and_astream(srv):
    url, state = srv

    async def main() -> tuple[Any, list[Any]]:
        generator = make(url)
        generation = await generator.agenerate(QUESTION)
        deltas = [d async for d in generator.astream(QUESTION)]
        return generation, deltas

    generation, deltas = asyncio.run(main())
    assert generation.text == "Echo: What flows through the city?"
    assert generation.usage.completion_tokens == 6
    assert "".join(d.text for d in deltas) == generation.text
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is not None
    assert "stream" not in state.bodies[0] and state.bodies[1]["stream"] is True


def test_async_tool_calls(srv):
    url, state = srv
    state.tool_call = {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    options = GenerationOptions(tools=[WEATHER_TOOL])

    async def main() -> tuple[Any, list[Any]]:
        generator = make(url)
        return await generator.agenerate(QUESTION, options), [d async for d in generator.astream(QUESTION, options)]

    generation, deltas = asyncio.run(main())
    assert generation.tool_calls is not None and generation.tool_calls[0]["function"]["name"] == "get_weather"
    args = "".join(c["function"].get("arguments", "") for d in deltas if d.tool_calls for c in d.tool_calls)
    assert args == '{"city": "Oslo"}'
    assert deltas[-1].finish_reason == "tool_calls"


def test_cancelling_astream_closes_the_connection(srv):
    url, state = srv
    state.reply = " ".join(f"w{i}" for i in range(300))
    state.chunk_delay = 0.01

    async def main() -> list[str]:
        seen: list[str] = []
        two = asyncio.Event()

        async def consume() -> None:
            async for delta in make(url).astream(QUESTION):
                seen.append(delta.text)
                if len(seen) == 2:
                    two.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(two.wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return seen

    seen = asyncio.run(main())
    assert seen[:2] == ["w0", " w1"]
    assert state.disconnected.wait(5), "the server never saw the client hang up"
    assert not state.finished.is_set()


def test_aclose_closes_the_connection(srv):
    url, state = srv
    state.reply = " ".join(f"w{i}" for i in range(300))
    state.chunk_delay = 0.01

    async def main() -> None:
        stream = make(url).astream(QUESTION)
        await stream.__anext__()
        await stream.aclose()

    asyncio.run(main())
    assert state.disconnected.wait(5)


def test_async_errors_are_mapped(srv):
    url, state = srv

    async def generate(**options: Any) -> Any:
        return await make(url, **options).agenerate(QUESTION)

    async def stream(**options: Any) -> list[Any]:
        return [d async for d in make(url, **options).astream(QUESTION)]

    state.fail_next = [500, 429]
    assert asyncio.run(generate(max_retries=2)).text.startswith("Echo:")
    assert len(state.requests) == 3
    state.fail_always = 500
    with pytest.raises(UpstreamError, match="answered 500"):
        asyncio.run(generate())
    state.fail_always = 400
    with pytest.raises(InputError, match=r"rejected the request \(400\)"):
        asyncio.run(stream())
    state.fail_always = None
    state.delay = 1.5
    with pytest.raises(UpstreamTimeoutError, match="0.2 s"):
        asyncio.run(generate(timeout=0.2))
    state.delay = 0.0
    state.drop_after = 3
    with pytest.raises(UpstreamError, match="broke off the stream"):
        asyncio.run(stream())
    with pytest.raises(UnavailableError, match="cannot reach"):
        asyncio.run(make(closed_port_url()).agenerate(QUESTION))


# -- clients, config, tokens -----------------------------------------------------------------


def test_one_client_shared_by_threads(srv):
    url, _ = srv
    generator = make(url)
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(generator.generate(QUESTION).text)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 8
    client = generator._client
    generator.generate(QUESTION)
    assert generator._client is client
    generator.close()
    assert generator._client is None


def test_config_round_trip_through_the_registry(srv):
    url, _ = srv
    config = {
        "type": "openai",
        "model": MODEL,
        "base_url": url,
        "api_key_env": "SOME_KEY",
        "timeout": 12.5,
        "max_retries": 1,
        "max_tokens": 100,
        "temperature": 0.3,
        "context_window": 4096,
        "extra_body": {"top_k": 5},
    }
    generator = build("generator", config)
    assert isinstance(generator, OpenAIChatGenerator)
    saved = generator.to_config()
    assert {key: saved[key] for key in config} == config
    again = build("generator", saved)
    assert again.to_config() == saved
    assert again.context_window == 4096
    assert again.generate(QUESTION).text.startswith("Echo:")


@pytest.mark.parametrize(
    "bad",
    [
        {"model": ""},
        {"base_url": "localhost:8000"},
        {"timeout": 0},
        {"max_retries": -1},
        {"max_tokens": 0},
        {"temperature": -0.5},
        {"context_window": "big"},
        {"extra_body": ["x"]},
        {"extra_body": {"x": object()}},
        {"tokenizer": "no-such-encoding"},
        {"nonsense": 1},
    ],
)
def test_bad_config_fails_when_built(bad):
    config = {"type": "openai", "model": MODEL, "base_url": "http://127.0.0.1:9/v1", **bad}
    with pytest.raises(ConfigError):
        build("generator", config)


def test_openai_without_key_or_url_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="no API key"):
        OpenAIChatGenerator(model="gpt-4o-mini")


def test_token_counts_are_estimates_without_a_tokenizer():
    generator = make("http://127.0.0.1:9/v1")
    assert generator.count_tokens("x" * 40) == 11
    assert generator.count_message_tokens(QUESTION) > generator.count_tokens(QUESTION[1].content)


def test_tiktoken_counts_with_a_tokenizer(monkeypatch):
    tiktoken = pytest.importorskip("tiktoken")

    class Words:
        def encode_ordinary(self, text: str) -> list[int]:
            return [0] * len(text.split())

    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: Words())
    generator = make("http://127.0.0.1:9/v1", tokenizer="cl100k_base")
    assert generator.count_tokens("one two three") == 3


def test_an_unloadable_tiktoken_encoding_falls_back_to_the_estimate(monkeypatch):
    tiktoken = pytest.importorskip("tiktoken")

    def offline(name: str) -> Any:
        raise ConnectionError("offline")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    generator = make("http://127.0.0.1:9/v1", tokenizer="o200k_base")
    assert generator.count_tokens("x" * 40) == 11
