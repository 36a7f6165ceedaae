"""A FAKE Pinecone service for tests: Pinecone's REST wire protocol on loopback, no Pinecone behind it.

No Pinecone server can run on a test machine (the service is hosted only),
so :class:`FakePineconeServer` stands in for it. It is a **fake**: a real
threaded ``http.server`` on ``127.0.0.1`` that the official ``pinecone``
client talks unmodified HTTP to, once pointed at it (``host=`` for the
control plane; the index hosts it hands out point back at itself).

- Control plane (the server's own port): ``GET/POST /indexes``,
  ``GET/DELETE /indexes/{name}``, with the index model of API version
  2026-07 (``schema.fields._values`` a ``dense_vector``, ``deployment``,
  ``status``, ``host``). Each index gets its own listener, as each real
  index has its own host; the ``host`` it returns is ``http://127.0.0.1:PORT``
  (a real one is a bare hostname the client reaches over TLS).
- Data plane (each index's port): ``/vectors/upsert``, ``/query``,
  ``/vectors/fetch``, ``/vectors/fetch_by_metadata``, ``/vectors/delete``
  (ids, filter or ``deleteAll``), ``/vectors/list`` (by id prefix, paginated),
  ``/vectors/update``, ``/describe_index_stats``, in the camelCase JSON the
  client's models decode.
- Every request must carry ``Api-Key`` (a wrong one gets 401) and
  ``X-Pinecone-Api-Version``. Errors come in the service's bodies: the
  control plane's ``{"error": {"code", "message"}, "status"}``, the data
  plane's ``{"code", "message", "details"}``.
- The data-plane routes are in :mod:`ragkit_pinecone.fake_data_plane`, and
  what the service does with content (limits, filters, scores) in
  :mod:`ragkit_pinecone.fake_rules`.

Where it differs from the service: it is immediately consistent (the real
one applies writes asynchronously, so a read straight after a write may not
see it yet), creates and deletes indexes at once (``status.ready`` is true
from the start), knows only dense-vector indexes, and keeps everything in
memory. It records every request in :attr:`FakePineconeServer.requests`.
Use it as a context manager::

    with FakePineconeServer() as fake:
        pc = Pinecone(api_key=fake.api_key, host=fake.url)
"""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ragkit_pinecone import fake_rules as rules
from ragkit_pinecone.fake_data_plane import DEFAULT_NAMESPACE, FakeIndex, Record, data_plane
from ragkit_pinecone.fake_rules import FakeRequestError, bad

API_VERSION = "2026-07"
"""The API version the fake speaks (the ``X-Pinecone-Api-Version`` pinecone 10.x sends)."""
_NAME_RULE = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")
_CONTROL_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}
_DATA_CODES = {400: 3, 401: 16, 404: 5, 413: 3}  # gRPC status numbers, as the data plane reports them


class FakePineconeServer:
    """A FAKE Pinecone (control plane and per-index data planes) on loopback; see the module docstring."""

    def __init__(self, api_key: str = "fake-pinecone-key") -> None:
        self.api_key = api_key
        self.indexes: dict[str, FakeIndex] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        """``(method, path, headers)`` of every request, in order."""
        self.lock = threading.RLock()
        self._control: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The control plane's URL, for ``Pinecone(host=...)`` or ``PINECONE_CONTROLLER_HOST``."""
        if self._control is None:
            raise RuntimeError("the fake Pinecone server is not started")
        return f"http://127.0.0.1:{self._control.server_address[1]}"

    def start(self) -> FakePineconeServer:
        """Start listening (the control plane) on a free loopback port."""
        self._control = self._listen(None)
        return self

    def stop(self) -> None:
        """Stop every listener."""
        with self.lock:
            listeners = [index.listener for index in self.indexes.values()] + [self._control]
        for listener in listeners:
            if listener is not None:
                listener.shutdown()
                listener.server_close()
        self._control = None

    def __enter__(self) -> FakePineconeServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _listen(self, index: FakeIndex | None) -> ThreadingHTTPServer:
        fake = self

        class Handler(_Handler):
            server_fake = fake
            server_index = index

        listener = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        listener.daemon_threads = True
        threading.Thread(target=listener.serve_forever, args=(0.05,), name="fake-pinecone", daemon=True).start()
        return listener

    # -- control plane ------------------------------------------------------------------------

    def create_index(self, body: Any) -> dict[str, Any]:
        """``POST /indexes``."""
        if not isinstance(body, dict):
            raise bad("Request body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not _NAME_RULE.fullmatch(name):
            raise bad(
                f"Name {name!r} is invalid: it must consist of lower case alphanumeric characters or '-', "
                "start and end with an alphanumeric character, and be at most 45 characters"
            )
        fields = (body.get("schema") or {}).get("fields") or {}
        dense = fields.get("_values")
        if set(fields) != {"_values"} or not isinstance(dense, dict) or dense.get("type") != "dense_vector":
            raise bad("the fake Pinecone server supports only dense vector indexes (schema.fields._values)")
        dimension, metric = dense.get("dimension"), dense.get("metric", "cosine")
        if not isinstance(dimension, int) or not 1 <= dimension <= rules.MAX_DIMENSION:
            raise bad(f"Dimension must be an integer between 1 and {rules.MAX_DIMENSION}, got {dimension!r}")
        if metric not in rules.METRICS:
            raise bad(f"Metric must be one of {', '.join(rules.METRICS)}, got {metric!r}")
        with self.lock:
            if name in self.indexes:
                raise FakeRequestError(409, f"Resource {name} already exists")
            index = FakeIndex(name, dimension, metric)
            index.listener = self._listen(index)
            self.indexes[name] = index
            return index.model()

    def find_index(self, name: str) -> FakeIndex:
        """The index called ``name``, or a 404."""
        with self.lock:
            index = self.indexes.get(name)
        if index is None:
            raise FakeRequestError(404, f"Resource {name} not found")
        return index

    def delete_index(self, name: str) -> None:
        """``DELETE /indexes/{name}``: the index and its host go at once."""
        index = self.find_index(name)
        with self.lock:
            del self.indexes[name]
        listener = index.listener
        if listener is not None:
            # Closed before the reply goes out, so the host refuses connections once the client hears back.
            # This thread serves the control plane, not the index's listener, so waiting on it is safe.
            listener.shutdown()
            listener.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakePineconeServer
    server_index: FakeIndex | None

    def setup(self) -> None:
        super().setup()
        # one response is written in two pieces (head, body): without NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold the second piece back ~40 ms on every keep-alive request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        with fake.lock:
            fake.requests.append((method, url.path, dict(self.headers.items())))
        control = self.server_index is None
        try:
            if self.headers.get("Api-Key") != fake.api_key:
                raise FakeRequestError(401, "Invalid API Key")
            if not self.headers.get("X-Pinecone-Api-Version"):
                raise bad("Missing X-Pinecone-Api-Version header")
            if len(raw) > rules.MAX_REQUEST_BYTES:
                raise FakeRequestError(413, f"Request size {len(raw)} bytes exceeds the maximum supported size of 2MB")
            try:
                body = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                raise bad("Request body is not valid JSON") from None
            query = parse_qs(url.query, keep_blank_values=True)
            if control:
                status, answer = self._control(method, url.path, body)
            else:
                assert self.server_index is not None
                with fake.lock:
                    status, answer = data_plane(self.server_index, method, url.path, body, query)
        except FakeRequestError as exc:
            status = exc.status
            if control:
                code = _CONTROL_CODES.get(status, "UNKNOWN")
                answer = {"error": {"code": code, "message": exc.message}, "status": status}
            else:
                answer = {"code": _DATA_CODES.get(status, 2), "message": exc.message, "details": []}
        self._send(status, answer)

    def _control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        fake = self.server_fake
        if path == "/indexes" and method == "GET":
            with fake.lock:
                return 200, {"indexes": [index.model() for index in fake.indexes.values()]}
        if path == "/indexes" and method == "POST":
            return 201, fake.create_index(body)
        match = re.fullmatch(r"/indexes/([^/]+)", path)
        if match and method == "GET":
            return 200, fake.find_index(unquote(match[1])).model()
        if match and method == "DELETE":
            fake.delete_index(unquote(match[1]))
            return 202, None
        raise FakeRequestError(404, f"{method} {path} is not a route of the fake Pinecone control plane")

    def _send(self, status: int, answer: Any) -> None:
        payload = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-pinecone-request-id", f"fake-{id(self):x}")
        self.end_headers()
        self.wfile.write(payload)


__all__ = ["API_VERSION", "DEFAULT_NAMESPACE", "FakeIndex", "FakePineconeServer", "Record"]
