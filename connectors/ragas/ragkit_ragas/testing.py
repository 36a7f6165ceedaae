"""``FakeOpenAIJudgeServer``: a **fake** OpenAI chat-completions server for testing judged metrics.

It is a test double, not a model: a small ``http.server`` on 127.0.0.1 that
speaks the OpenAI wire protocol (``POST /v1/chat/completions``, JSON
answers; ``GET /v1/models``) and answers each judge prompt with JSON that
fits the schema the prompt asks for. ragas prompts embed their output's
JSON Schema; the fake reads it from the last user message and writes a
minimal instance: every required field, two items per array, strings
``"statement 1"``, ``"statement 2"`` ..., and integer fields alternating
``1, 0`` along an array (so faithfulness and context recall come out at
0.5). A prompt without a schema gets ``{}``.

Knobs (attributes, safe to change between runs): ``fail_every`` (every
n-th request answers 500), ``delay`` (seconds to wait before answering),
``garbage`` (answer with text that is not JSON), ``array_items`` (items per
list; ``0`` makes ragas find nothing to score). It records the number of
requests, the request bodies, and the most requests it had in flight at
once. Use it as a context manager::

    with FakeOpenAIJudgeServer() as server:
        judge = {"type": "openai", "model": "fake-judge", "base_url": server.url, "max_retries": 0}
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCHEMA_MARKER = "JSON Schema:"


class FakeOpenAIJudgeServer(ThreadingHTTPServer):
    """A fake OpenAI-compatible judge on 127.0.0.1 (a test double: schema-shaped JSON, no model)."""

    daemon_threads = True

    def __init__(
        self, *, fail_every: int | None = None, delay: float = 0.0, garbage: bool = False, array_items: int = 2
    ) -> None:
        self.fail_every = fail_every
        self.delay = delay
        self.garbage = garbage
        self.array_items = array_items
        self.requests = 0
        self.failed = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict[str, Any]] = []
        self._counter_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", 0), _JudgeHandler)

    @property
    def url(self) -> str:
        """The API root to give the ``openai`` generator as ``base_url``."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reset(self) -> None:
        """Forget the counts and bodies (the knobs stay)."""
        with self._counter_lock:
            self.requests = 0
            self.failed = 0
            self.max_in_flight = self.in_flight
            self.bodies = []

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is in flight (slow answers to clients that gave up finish too)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.in_flight

    def start(self) -> FakeOpenAIJudgeServer:
        """Serve on a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="fake-openai-judge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()

    def __enter__(self) -> FakeOpenAIJudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and hang up are expected here: stay quiet."""

    # called by the handler
    def _begin(self, body: dict[str, Any]) -> int:
        with self._counter_lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.bodies.append(body)
            return self.requests

    def _end(self) -> None:
        with self._counter_lock:
            self.in_flight -= 1


class _JudgeHandler(BaseHTTPRequestHandler):
    server: FakeOpenAIJudgeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "fake-judge", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        server = self.server
        number = server._begin(body)
        try:
            if server.delay:
                time.sleep(server.delay)
            if server.fail_every and number % server.fail_every == 0:
                with server._counter_lock:
                    server.failed += 1
                self._send(500, {"error": {"message": f"fake failure of request {number}", "type": "server_error"}})
                return
            prompt = _user_text(body.get("messages") or [])
            answer = answer_for_prompt(prompt, server.array_items)
            text = "I think the answer is fine." if server.garbage else json.dumps(answer)
            self._send(200, _completion(body, text))
        finally:
            server._end()


def answer_for_prompt(prompt: str, array_items: int = 2) -> Any:
    """A minimal instance of the JSON Schema embedded in a ragas prompt (``{}`` when there is none)."""
    schema = extract_schema(prompt)
    if schema is None:
        return {}
    return _instance(schema, schema.get("$defs", {}), 0, array_items)


def extract_schema(prompt: str) -> dict[str, Any] | None:
    """The JSON Schema a ragas prompt asks its answer to follow, if it states one."""
    at = prompt.find(SCHEMA_MARKER)
    if at < 0:
        return None
    start = prompt.find("{", at)
    if start < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(prompt[start:])
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def _instance(schema: dict[str, Any], defs: dict[str, Any], index: int, array_items: int) -> Any:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _instance(defs.get(name, {}), defs, index, array_items)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _instance(options[0], defs, index, array_items)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {name: _instance(sub, defs, index, array_items) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items", {})
        return [_instance(items, defs, i, array_items) for i in range(array_items)]
    if kind == "integer":
        return 1 if index % 2 == 0 else 0
    if kind == "number":
        return 1.0 if index % 2 == 0 else 0.0
    if kind == "boolean":
        return index % 2 == 0
    return f"statement {index + 1}"


def _user_text(messages: list[dict[str, Any]]) -> str:
    """The user messages' text, joined (a re-ask carries the schema in its first message)."""
    parts = []
    for message in messages:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
            parts.append(str(content or ""))
    return "\n".join(parts)


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-judge"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": max(1, len(text) // 4),
            "total_tokens": 10 + len(text) // 4,
        },
    }
