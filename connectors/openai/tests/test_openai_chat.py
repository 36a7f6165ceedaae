"""The OpenAI-compatible chat generator: the real ``openai`` client against a fake server on loopback.

``FakeOpenAIChatServer`` is a **fake**: a small ``http.server`` that speaks
the OpenAI chat-completions wire protocol (``POST /v1/chat/completions``,
JSON answers, SSE streams in chunked transfer encoding with a usage chunk
and ``data: [DONE]``) and no model at all. It echoes the last user message
(or a scripted reply), streams it word by word, answers with tool calls on
request, and has knobs to fail the next requests (429 with ``Retry-After``,
500, 400, 401 ...), answer slowly, stall or drop the connection in the
middle of a stream, and send garbage. It records every request and notices
when a client hangs up before the stream is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ragkit_openai import OpenAIChatGenerator

from ragkit.errors import ConfigError, InputError, UnavailableError, UpstreamError, UpstreamTimeoutError
from ragkit.generation.base import GenerationOptions, Generator, Message
from ragkit.registry import build

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


@dataclass
class FakeChatState:
    """What the fake server does next, and what it has seen."""

    reply: str | None = None
    """Scripted answer; ``None``: ``"Echo: <last user message>"``."""
    tool_call: dict[str, Any] | None = None
    """Answer with this call (``{"name": ..., "arguments": ...}``) instead of text."""
    fail_next: list[int] = field(default_factory=list)
    fail_always: int | None = None
    error_message: str = "simulated failure"
    retry_after: str | None = "0"
    api_key: str | None = None
    delay: float = 0.0
    """Seconds to wait before answering (before the headers)."""
    chunk_delay: float = 0.0
    """Seconds between streamed chunks."""
    drop_after: int | None = None
    """Streamed chunks after which the connection is cut without ending the body."""
    stall_after: int | None = None
    """Streamed chunks after which the server goes quiet for ``stall_seconds``."""
    stall_seconds: float = 3.0
    send_usage: bool = True
    garbage: bytes | None = None
    """A 200 answer with this body instead of a completion."""
    garbage_type: str = "text/html"
    bad_stream_json: bool = False
    error_event_after: int | None = None
    """Streamed chunks after which an ``{"error": ...}`` event is sent (as vLLM does when generation fails)."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    chunks_sent: int = 0
    chunks_planned: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]


def _words(text: str) -> list[str]:
    """``text`` cut into streamable pieces that join back to it."""
    pieces = text.split(" ")
    return [piece if i == 0 else " " + piece for i, piece in enumerate(pieces)]


def _chat_handler(state: FakeChatState) -> type[BaseHTTPRequestHandler]:
    class FakeOpenAIChatHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            headers = {"Retry-After": state.retry_after} if status == 429 and state.retry_after is not None else None
            self._send_json(status, {"error": {"message": message, "type": kind, "code": status}}, headers)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                body = {}
            with state.lock:
                state.requests.append(
                    {"path": self.path, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
                )
                status = state.fail_next.pop(0) if state.fail_next else state.fail_always
            if state.delay:
                time.sleep(state.delay)
            if self.path != "/v1/chat/completions":
                return self._error(404, f"no route {self.path}")
            if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
                return self._error(401, "Incorrect API key provided", "authentication_error")
            if status is not None:
                return self._error(status, state.error_message, "server_error" if status >= 500 else "error")
            if body.get("model") != MODEL:
                return self._error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            if state.garbage is not None:
                self.send_response(200)
                self.send_header("Content-Type", state.garbage_type)
                self.send_header("Content-Length", str(len(state.garbage)))
                self.end_headers()
                self.wfile.write(state.garbage)
                return None
            messages = body.get("messages") or []
            if not messages:
                return self._error(400, "messages must not be empty")
            if state.tool_call is not None and body.get("tools"):
                return self._tool_call(body)
            return self._text(body, messages)

        # -- answers ---------------------------------------------------------------------

        def _answer(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[list[str], str]:
            if state.reply is not None:
                text = state.reply
            else:
                last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
                text = f"Echo: {last.get('content', '')}"
            stops = body.get("stop") or []
            stops = [stops] if isinstance(stops, str) else stops
            cut = min((text.find(s) for s in stops if s and s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
            pieces = _words(text)
            finish = "stop"
            max_tokens = body.get("max_tokens")
            if isinstance(max_tokens, int) and len(pieces) > max_tokens:
                pieces, finish = pieces[:max_tokens], "length"
            return pieces, finish

        def _text(self, body: dict[str, Any], messages: list[dict[str, Any]]) -> None:
            pieces, finish = self._answer(body, messages)
            usage = {"prompt_tokens": 11, "completion_tokens": len(pieces), "total_tokens": 11 + len(pieces)}
            if not body.get("stream"):
                message = {"role": "assistant", "content": "".join(pieces)}
                return self._send_json(200, self._completion(message, finish, usage))
            chunks = [self._chunk({"role": "assistant", "content": ""}, None)]
            chunks += [self._chunk({"content": piece}, None) for piece in pieces]
            chunks.append(self._chunk({}, finish))
            if state.send_usage and (body.get("stream_options") or {}).get("include_usage"):
                chunks.append(self._chunk(None, None, usage))
            return self._stream(chunks)

        def _tool_call(self, body: dict[str, Any]) -> None:
            assert state.tool_call is not None
            name, arguments = state.tool_call["name"], state.tool_call["arguments"]
            usage = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
            call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
            if not body.get("stream"):
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                return self._send_json(200, self._completion(message, "tool_calls", usage))
            half = len(arguments) // 2
            first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
            chunks = [
                self._chunk({"role": "assistant", "content": None, "tool_calls": [first]}, None),
                self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}, None),
                self._chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}, None),
                self._chunk({}, "tool_calls"),
                self._chunk(None, None, usage),
            ]
            return self._stream(chunks)

        @staticmethod
        def _completion(message: dict[str, Any], finish: str, usage: dict[str, int]) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 1700000000,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage,
            }

        @staticmethod
        def _chunk(delta: dict[str, Any] | None, finish: str | None, usage: dict[str, int] | None = None) -> str:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": MODEL,
                "choices": choices,
                "usage": usage,
            }
            return json.dumps(payload)

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _stream(self, chunks: list[str]) -> None:
            events = [f"data: {chunk}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]
            if state.bad_stream_json:
                events.insert(1, b"data: {not json\n\n")
            if state.error_event_after is not None:
                error = {"error": {"message": "engine dead: CUDA error", "type": "InternalServerError", "code": 500}}
                events.insert(state.error_event_after, f"data: {json.dumps(error)}\n\n".encode())
            state.chunks_planned = len(events)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            try:
                for i, event in enumerate(events):
                    if state.drop_after is not None and i == state.drop_after:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    if state.stall_after is not None and i == state.stall_after:
                        time.sleep(state.stall_seconds)
                    self._write_chunk(event)
                    state.chunks_sent += 1
                    if state.chunk_delay:
                        time.sleep(state.chunk_delay)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                state.finished.set()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                state.disconnected.set()

    return FakeOpenAIChatHandler


class FakeOpenAIChatServer(ThreadingHTTPServer):
    """A fake OpenAI chat-completions server on 127.0.0.1 (a test double; no model behind it)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.state = FakeChatState()
        super().__init__(("127.0.0.1", 0), _chat_handler(self.state))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reset(self) -> FakeChatState:
        self.state.__init__()  # type: ignore[misc]
        return self.state

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or hang up: broken pipes are expected here


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenAIChatServer]:
    server = FakeOpenAIChatServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def srv(fake_server: FakeOpenAIChatServer, monkeypatch: pytest.MonkeyPatch) -> tuple[str, FakeChatState]:
    """The fake server with its knobs reset; the client's backoff shortened so retries are quick."""
    import openai._base_client

    monkeypatch.setattr(openai._base_client, "INITIAL_RETRY_DELAY", 0.01)
    return fake_server.url, fake_server.reset()


def make(url: str, **options: Any) -> OpenAIChatGenerator:
    options.setdefault("max_retries", 0)
    return OpenAIChatGenerator(model=options.pop("model", MODEL), base_url=url, **options)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


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
    assert state.chunks_sent < state.chunks_planned
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


def test_retry_after_is_honoured(srv):
    url, state = srv
    state.fail_next = [429]
    state.retry_after = "0.4"
    started = time.perf_counter()
    make(url, max_retries=1).generate(QUESTION)
    assert time.perf_counter() - started >= 0.4
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


def test_a_timeout_gives_upstream_timeout_naming_url_and_seconds(srv):
    url, state = srv
    state.delay = 2.0
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeoutError, match=r"did not answer within 0.3 s") as info:
        make(url, timeout=0.3).generate(QUESTION)
    assert time.perf_counter() - started < 1.5
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
