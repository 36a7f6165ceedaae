"""One FAKE model server for every connector's tests: OpenAI-compatible, and TGI's native API too.

:class:`FakeOpenAIServer` is a **fake**, a wire-protocol test double with no
model behind it, served on loopback (``127.0.0.1``, a free port) by a small
threaded ``http.server``, so clients talk real HTTP to it: keep-alive,
chunked server-sent-event streams, timeouts, refused and broken
connections, and a client that hangs up mid-stream is noticed. Like a real
TGI server, it speaks both APIs:

* ``POST /v1/chat/completions``: JSON answers, or SSE streams of
  ``chat.completion.chunk`` events with a usage chunk and ``data: [DONE]``.
  It echoes the last user message (``"Echo: ..."``) or a scripted
  ``reply``, word by word, honours ``max_tokens`` (or ``max_completion_tokens``; one word is one token)
  and ``stop``, and answers with a tool call on request. ``script`` is a
  queue of replies for multi-turn tests (agents): each request takes the
  next text or tool-call reply (several calls at once for parallel calls).
* ``POST /v1/embeddings``: vectors from ``embed`` (by default a seeded
  bag-of-words hashing of :data:`FAKE_DIMENSION` dimensions, no model), in
  OpenAI's response shape (rows out of order, by ``index``; ``dimensions``
  and ``encoding_format: base64`` honoured).
* ``GET /v1/models``.
* TGI's native ``POST /generate`` and ``POST /generate_stream`` (the reply
  cut into tokens by :func:`fake_tokens`, ``max_new_tokens`` and ``stop``
  honoured the way TGI does, the stop sequence left in the text, a special
  end-of-sequence token last), ``POST /tokenize``, ``GET /info`` and
  ``GET /health``, with errors in TGI's ``{"error", "error_type"}`` shape.

Knobs on :class:`FakeState` make it misbehave: fail the next requests,
every n-th or every request with a status (and ``Retry-After``), answer
slowly, demand a key, stall or drop a stream, send an error event or
garbage. It records every request, and counts the failures it sent and the
most model requests it had in flight at once (:meth:`FakeOpenAIServer.wait_idle`
waits for the slow ones to finish). Use it as a context manager::

    with FakeOpenAIServer(model="fake-model") as fake:
        state = fake.reset(fail_next=[429])      # fresh knobs for one test
        generator = OpenAIChatGenerator(model="fake-model", base_url=fake.v1)
        ...
        assert len(state.requests) == 2
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import numpy as np

FAKE_ANSWER = "The river flows through the city."
"""What the native TGI routes answer when no ``reply`` is scripted."""
FAKE_DIMENSION = 64
"""Vector length of the default fake embedding."""
TGI_ERROR_TYPES = {
    422: "validation",
    424: "generation",
    429: "overloaded",
    500: "incomplete_generation",
    503: "overloaded",
}
_MODEL_ROUTES = frozenset({"/v1/chat/completions", "/v1/embeddings", "/generate", "/generate_stream"})


def fake_tokens(text: str) -> list[str]:
    """The fake's tokenizer: words and punctuation, each with its leading space."""
    return re.findall(r"\s*\w+|\s*[^\w\s]", text)


def hashed_embedding(texts: Sequence[str]) -> np.ndarray:
    """The default fake embedding: each word adds ±1 at a position its hash picks (no model, deterministic)."""
    vectors = np.zeros((len(texts), FAKE_DIMENSION), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()) or [text]:
            digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
            vectors[row, digest[0] % FAKE_DIMENSION] += 1.0 if digest[1] & 1 else -1.0
        if not vectors[row].any():
            vectors[row, 0] = 1.0
    return vectors


def _words(text: str) -> list[str]:
    """``text`` cut into streamable pieces that join back to it."""
    pieces = text.split(" ")
    return [piece if i == 0 else " " + piece for i, piece in enumerate(pieces)]


@dataclass
class FakeState:
    """What the fake server does next, and what it has seen."""

    model: str | None = None
    """The one model name served (others get 404 on the OpenAI routes); ``None``: any name."""
    reply: str | Callable[[list[dict[str, Any]]], str] | None = None
    """Scripted answer, or a function of the chat messages (or ``[{"role": "user", "content": <prompt>}]``
    for TGI) that writes it; ``None``: ``"Echo: <last user message>"`` (chat) or :data:`FAKE_ANSWER` (TGI)."""
    tool_call: dict[str, Any] | None = None
    """Answer requests that offer tools with this call (``{"name": ..., "arguments": ...}``) instead of text."""
    script: list[str | dict[str, Any]] = field(default_factory=list)
    """Chat: a queue of replies, one taken per request before any other knob: a text, or
    ``{"tool_calls": [{"name": ..., "arguments": {...} or "json text", "id": optional}, ...], "content": optional}``
    (several calls: parallel tool calls). When it is empty, ``tool_call`` / ``reply`` / the echo answer."""
    embed: Callable[[list[str]], Any] = hashed_embedding
    """Texts to vectors for ``/v1/embeddings``."""
    scale: float = 1.0
    """Factor on every vector sent (clients must normalise)."""
    fail_next: list[int] = field(default_factory=list)
    """Statuses to answer the next model requests with, one per request (e.g. ``[429, 500]``)."""
    fail_always: int | None = None
    fail_every: int | None = None
    """Every n-th model request (counted from the last reset) answers 500, e.g. ``3``: the 3rd, 6th, ..."""
    error_message: str = "simulated failure"
    retry_after: str | None = None
    """``Retry-After`` header sent with error answers."""
    api_key: str | None = None
    """Model routes demand ``Authorization: Bearer <api_key>``."""
    delay: float = 0.0
    """Seconds a model route waits before answering (before the headers)."""
    chunk_delay: float = 0.0
    """Seconds between streamed events."""
    drop_after: int | None = None
    """Streamed events after which the connection is cut without ending the body."""
    stall_after: int | None = None
    """Streamed events after which the server goes quiet for ``stall_seconds``."""
    stall_seconds: float = 3.0
    send_usage: bool = True
    """Chat streams: send the usage chunk when the client asks for it."""
    garbage: bytes | None = None
    """Chat: a 200 answer with this body instead of a completion."""
    garbage_type: str = "text/html"
    bad_stream_json: bool = False
    """Chat streams: an event that is not JSON, second."""
    error_event_after: int | None = None
    """Streamed events after which an error event is sent and the stream ends (as vLLM and TGI do)."""
    error_event_message: str = "engine dead: CUDA error: CUDA OOM"
    no_details: bool = False
    """TGI streams: end without the final event that carries ``details``."""
    tokenize_route: bool = True
    """TGI: whether ``/tokenize`` exists."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request: ``{"path", "body", "headers"}`` (header names in lower case)."""
    model_requests: int = 0
    """Requests to the model routes so far (what ``fail_every`` counts)."""
    failures: int = 0
    """Model requests answered with a failure knob's status (``fail_next``, ``fail_always``, ``fail_every``)."""
    in_flight: int = 0
    """Model requests being answered now."""
    max_in_flight: int = 0
    """The most model requests answered at once."""
    events_sent: int = 0
    events_planned: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    """Set when a client hung up in the middle of a stream."""
    finished: threading.Event = field(default_factory=threading.Event)
    """Set when a stream was sent to its end."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of the requests, in order."""
        return [r["body"] for r in self.requests]

    def on(self, path: str) -> list[dict[str, Any]]:
        """The requests to ``path``."""
        return [r for r in self.requests if r["path"] == path]

    @property
    def prompts(self) -> list[str]:
        """The prompts sent to TGI's ``/generate`` and ``/generate_stream``."""
        return [r["body"]["inputs"] for r in self.requests if r["path"] in ("/generate", "/generate_stream")]

    @property
    def batch_sizes(self) -> list[int]:
        """Texts per ``/v1/embeddings`` request."""
        return [len(r["body"]["input"]) for r in self.on("/v1/embeddings") if isinstance(r["body"].get("input"), list)]

    @property
    def inputs(self) -> list[str]:
        """Every text sent to ``/v1/embeddings``, in order."""
        return [text for r in self.on("/v1/embeddings") for text in r["body"].get("input", [])]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeOpenAIServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def state(self) -> FakeState:
        return self.server.state

    @property
    def openai(self) -> bool:
        return self.path.startswith("/v1/")

    # -- plumbing ----------------------------------------------------------------------------

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str | None = None) -> None:
        state = self.state
        headers = {"Retry-After": state.retry_after} if state.retry_after is not None else None
        if self.openai:
            kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
            payload: dict[str, Any] = {"error": {"message": message, "type": kind, "code": status}}
        else:
            payload = {"error": message, "error_type": kind or TGI_ERROR_TYPES.get(status, "unknown")}
        self._send_json(status, payload, headers)

    def _record(self, body: Any) -> None:
        with self.state.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.state.requests.append({"path": self.path, "body": body, "headers": headers})

    def _stream(self, events: list[bytes]) -> None:
        """Send ``events`` as a chunked SSE body, misbehaving as the knobs say."""
        state = self.state
        state.events_planned = len(events)
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
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
                state.events_sent += 1
                if state.chunk_delay:
                    time.sleep(state.chunk_delay)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            state.finished.set()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            state.disconnected.set()

    # -- routes ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        """``/v1/models``, and TGI's ``/info`` and ``/health``."""
        self._record(None)
        if self.path == "/v1/models":
            model = self.state.model or "fake-model"
            return self._send_json(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
        if self.path == "/info":
            info = {
                "model_id": "fake/tgi-model",
                "model_dtype": "torch.float16",
                "max_input_tokens": 3072,
                "max_total_tokens": 4096,
                "version": "3.0.0-fake",
            }
            return self._send_json(200, info)
        if self.path == "/health":
            return self._send_json(200, {})
        return self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        """The model routes, behind the failure knobs; TGI's ``/tokenize``."""
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            body = {}
        self._record(body)
        state = self.state
        if self.path == "/tokenize" and state.tokenize_route:
            return self._tokenize(body)
        if self.path not in _MODEL_ROUTES:
            return self._error(404, f"no route {self.path}")
        with state.lock:
            state.model_requests += 1
            status = state.fail_next.pop(0) if state.fail_next else state.fail_always
            if status is None and state.fail_every and state.model_requests % state.fail_every == 0:
                status = 500
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._answer(state, body, status)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _answer(self, state: FakeState, body: dict[str, Any], status: int | None) -> None:
        """A model route's answer, once the request is counted: a knob's failure, or the route's reply."""
        if state.delay:
            time.sleep(state.delay)
        if state.api_key is not None and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            return self._error(401, "Incorrect API key provided", "authentication_error")
        if status is not None:
            with state.lock:
                state.failures += 1
            return self._error(status, state.error_message)
        if self.openai and state.model is not None and body.get("model") != state.model:
            return self._error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        if self.path == "/v1/embeddings":
            return self._embeddings(body)
        if self.path == "/v1/chat/completions":
            return self._chat(body)
        return self._generate(body)

    # -- OpenAI chat -------------------------------------------------------------------------

    def _chat(self, body: dict[str, Any]) -> None:
        state = self.state
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
        with state.lock:
            scripted = state.script.pop(0) if state.script else None
        if isinstance(scripted, dict):
            return self._tool_calls(body, scripted.get("tool_calls") or [], scripted.get("content"))
        if scripted is None and state.tool_call is not None and body.get("tools"):
            return self._tool_call(body)
        pieces, finish = self._chat_answer(body, messages, scripted)
        usage = {"prompt_tokens": 11, "completion_tokens": len(pieces), "total_tokens": 11 + len(pieces)}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces)}
            return self._send_json(200, _completion(message, finish, usage))
        chunks = [_chunk({"role": "assistant", "content": ""}, None)]
        chunks += [_chunk({"content": piece}, None) for piece in pieces]
        chunks.append(_chunk({}, finish))
        if state.send_usage and (body.get("stream_options") or {}).get("include_usage"):
            chunks.append(_chunk(None, None, usage))
        return self._chat_stream(chunks)

    def _chat_answer(
        self, body: dict[str, Any], messages: list[dict[str, Any]], scripted: str | None = None
    ) -> tuple[list[str], str]:
        if scripted is not None:
            text = scripted
        elif callable(self.state.reply):
            text = self.state.reply(messages)
        elif self.state.reply is not None:
            text = self.state.reply
        else:
            last: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            text = f"Echo: {last.get('content', '')}"
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        cut = min((text.find(s) for s in stops if s and s in text), default=-1)
        if cut >= 0:
            text = text[:cut]
        pieces = _words(text)
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))  # OpenAI's newer name too
        if isinstance(max_tokens, int) and len(pieces) > max_tokens:
            return pieces[:max_tokens], "length"
        return pieces, "stop"

    def _tool_call(self, body: dict[str, Any]) -> None:
        assert self.state.tool_call is not None
        name, arguments = self.state.tool_call["name"], self.state.tool_call["arguments"]
        usage = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}
        if not body.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return self._send_json(200, _completion(message, "tool_calls", usage))
        half = len(arguments) // 2
        first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
        chunks = [
            _chunk({"role": "assistant", "content": None, "tool_calls": [first]}, None),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}, None),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}, None),
            _chunk({}, "tool_calls"),
            _chunk(None, None, usage),
        ]
        return self._chat_stream(chunks)

    def _tool_calls(self, body: dict[str, Any], calls: list[dict[str, Any]], content: str | None) -> None:
        """A scripted reply with tool calls (several: parallel calls), whole or streamed in fragments."""
        wire: list[dict[str, Any]] = []
        for i, call in enumerate(calls):
            arguments = call.get("arguments", {})
            text = arguments if isinstance(arguments, str) else json.dumps(arguments)
            call_id = str(call.get("id") or f"call_{len(self.state.requests)}_{i}")
            wire.append({"id": call_id, "type": "function", "function": {"name": call["name"], "arguments": text}})
        finish = "tool_calls" if wire else "stop"
        usage = {
            "prompt_tokens": 20,
            "completion_tokens": 7 * max(1, len(wire)),
            "total_tokens": 20 + 7 * max(1, len(wire)),
        }
        if not body.get("stream"):
            message = {"role": "assistant", "content": content, "tool_calls": wire or None}
            return self._send_json(200, _completion(message, finish, usage))
        chunks = [_chunk({"role": "assistant", "content": content}, None)]
        for i, call in enumerate(wire):
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            first = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            chunks.append(_chunk({"tool_calls": [first]}, None))
            chunks.append(_chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[:half]}}]}, None))
            chunks.append(_chunk({"tool_calls": [{"index": i, "function": {"arguments": arguments[half:]}}]}, None))
        chunks.append(_chunk({}, finish))
        chunks.append(_chunk(None, None, usage))
        return self._chat_stream(chunks)

    def _chat_stream(self, chunks: list[str]) -> None:
        state = self.state
        events = [f"data: {chunk}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]
        if state.bad_stream_json:
            events.insert(1, b"data: {not json\n\n")
        if state.error_event_after is not None:
            error = {"error": {"message": state.error_event_message, "type": "InternalServerError", "code": 500}}
            events[state.error_event_after :] = [f"data: {json.dumps(error)}\n\n".encode()]
        self._stream(events)

    # -- OpenAI embeddings -------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
            return self._error(400, "'$.input' is invalid: expected non-empty strings")
        vectors = np.asarray(self.state.embed(inputs), dtype=np.float32)
        if body.get("dimensions"):
            vectors = vectors[:, : int(body["dimensions"])]
        vectors = vectors * self.state.scale
        rows = []
        for i, vector in enumerate(vectors):
            if body.get("encoding_format") == "base64":
                embedding: Any = base64.b64encode(vector.astype(np.float32).tobytes()).decode()
            else:
                embedding = vector.tolist()
            rows.append({"object": "embedding", "index": i, "embedding": embedding})
        rows.reverse()  # clients must order by "index", not by position
        tokens = sum(len(t.split()) for t in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._send_json(200, {"object": "list", "data": rows, "model": body.get("model"), "usage": usage})

    # -- TGI's native API --------------------------------------------------------------------

    def _tokenize(self, body: dict[str, Any]) -> None:
        text = body.get("inputs") or ""
        tokens = [{"id": 1, "text": "<s>", "start": 0, "stop": 0}]
        position = 0
        for i, piece in enumerate(fake_tokens(text)):
            tokens.append({"id": 100 + i, "text": piece, "start": position, "stop": position + len(piece)})
            position += len(piece)
        self._send_json(200, tokens)

    def _generate(self, body: dict[str, Any]) -> None:
        inputs, params = body.get("inputs"), body.get("parameters") or {}
        if not isinstance(inputs, str) or not inputs:
            return self._error(422, "`inputs` cannot be empty")
        if params.get("temperature") is not None and params["temperature"] <= 0:
            return self._error(422, "`temperature` must be strictly positive")
        if params.get("top_p") is not None and not 0 < params["top_p"] < 1:
            return self._error(422, "`top_p` must be > 0.0 and < 1.0")
        tokens, finish = self._tgi_tokens(inputs, params)
        if self.path == "/generate":
            text = "".join(t["text"] for t in tokens if not t["special"])
            details = {
                "finish_reason": finish,
                "generated_tokens": len(tokens),
                "seed": params.get("seed"),
                "prefill": [],
                "tokens": tokens,
            }
            return self._send_json(200, {"generated_text": text, "details": details})
        return self._tgi_stream(tokens, finish, len(fake_tokens(inputs)) + 1, params)

    def _tgi_tokens(self, prompt: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        reply = self.state.reply
        if callable(reply):
            reply = reply([{"role": "user", "content": prompt}])
        pieces = fake_tokens(reply if reply is not None else FAKE_ANSWER)
        limit = params.get("max_new_tokens") or 20
        stops = params.get("stop") or []
        tokens: list[dict[str, Any]] = []
        text = ""
        for i, piece in enumerate(pieces):
            if len(tokens) >= limit:
                return tokens, "length"
            tokens.append({"id": 1000 + i, "text": piece, "logprob": -0.5, "special": False})
            text += piece
            if any(stop and text.endswith(stop) for stop in stops):
                return tokens, "stop_sequence"
        if len(tokens) >= limit:
            return tokens, "length"
        tokens.append({"id": 2, "text": "</s>", "logprob": -0.01, "special": True})
        return tokens, "eos_token"

    def _tgi_stream(self, tokens: list[dict[str, Any]], finish: str, input_length: int, params: dict[str, Any]) -> None:
        state = self.state
        events = []
        text = ""
        for i, token in enumerate(tokens):
            if not token["special"]:
                text += token["text"]
            last = i == len(tokens) - 1 and not state.no_details
            details = {
                "finish_reason": finish,
                "generated_tokens": len(tokens),
                "seed": params.get("seed"),
                "input_length": input_length,
            }
            event = {
                "index": i + 1,
                "token": token,
                "top_tokens": None,
                "generated_text": text if last else None,
                "details": details if last else None,
            }
            events.append(b"data:" + json.dumps(event).encode() + b"\n\n")
        if state.error_event_after is not None:
            error = {"error": state.error_event_message, "error_type": "generation"}
            events[state.error_event_after :] = [b"data:" + json.dumps(error).encode() + b"\n\n"]
        self._stream(events)


def _completion(message: dict[str, Any], finish: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }


def _chunk(delta: dict[str, Any] | None, finish: str | None, usage: dict[str, int] | None = None) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake-model",
        "choices": choices,
        "usage": usage,
    }
    return json.dumps(payload)


class FakeOpenAIServer(ThreadingHTTPServer):
    """The fake server on ``127.0.0.1`` and a free port (a test double; no model behind it).

    Args:
        **defaults: :class:`FakeState` knobs every :meth:`reset` starts from
            (e.g. ``model="fake-model"``, ``embed=my_model.embed_documents``,
            or ``fail_always=500`` for a server that always fails).

    """

    daemon_threads = True

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self.state = FakeState(**defaults)
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's root (TGI's ``base_url``)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def v1(self) -> str:
        """The OpenAI API root (the OpenAI connectors' ``base_url``)."""
        return f"{self.url}/v1"

    def reset(self, **knobs: Any) -> FakeState:
        """Fresh state (the constructor's defaults, then ``knobs``), nothing recorded; returns it."""
        self.state = FakeState(**{**self.defaults, **knobs})
        return self.state

    def start(self) -> FakeOpenAIServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name=f"fake-openai-{self.server_address[1]}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread = None
        self.server_close()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no model request is in flight (slow answers to clients that gave up finish too).

        Returns:
            Whether the server went idle within ``timeout`` seconds.

        """
        deadline = time.monotonic() + timeout
        while self.state.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.state.in_flight

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients that time out or hang up leave broken pipes here on purpose."""
