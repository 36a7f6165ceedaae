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
- What the service does with content (limits, filters, scores) is in
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

import base64
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ragkit_pinecone import fake_rules as rules
from ragkit_pinecone.fake_rules import FakeRequestError, bad

API_VERSION = "2026-07"
"""The API version the fake speaks (the ``X-Pinecone-Api-Version`` pinecone 10.x sends)."""
DEFAULT_NAMESPACE = "__default__"
_NAME_RULE = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")
_CONTROL_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}
_DATA_CODES = {400: 3, 401: 16, 404: 5, 413: 3}  # gRPC status numbers, as the data plane reports them


@dataclass
class Record:
    """One stored vector."""

    values: np.ndarray
    metadata: dict[str, Any]


@dataclass
class FakeIndex:
    """One index: its settings, its namespaces of records, and the listener that is its host."""

    name: str
    dimension: int
    metric: str
    namespaces: dict[str, dict[str, Record]] = field(default_factory=dict)
    listener: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        """``http://127.0.0.1:PORT``: where the data plane of this index answers."""
        assert self.listener is not None
        return f"http://127.0.0.1:{self.listener.server_address[1]}"

    def model(self) -> dict[str, Any]:
        """The index as ``describe`` returns it (API version 2026-07)."""
        return {
            "name": self.name,
            "host": self.host,
            "status": {"ready": True, "state": "Ready"},
            "schema": {
                "fields": {"_values": {"type": "dense_vector", "dimension": self.dimension, "metric": self.metric}}
            },
            "deployment": {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
            "deletion_protection": "disabled",
            "tags": None,
        }


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
        if listener is not None:  # shut down from another thread: this one is serving the request
            threading.Thread(target=_close_listener, args=(listener,), daemon=True).start()


def _close_listener(listener: ThreadingHTTPServer) -> None:
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
                    status, answer = _data_plane(self.server_index, method, url.path, body, query)
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


# -- data plane -----------------------------------------------------------------------------------


def _namespace(value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_NAMESPACE
    if not isinstance(value, str) or not value.isascii() or "\x00" in value or len(value) > 512:
        raise bad(f"Namespace {str(value)[:64]!r} is invalid")
    return value


def _data_plane(index: FakeIndex, method: str, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
    if method == "GET" and path == "/vectors/fetch":
        return 200, _fetch(index, query)
    if method == "GET" and path == "/vectors/list":
        return 200, _list(index, query)
    if method != "POST" or not isinstance(body, dict):
        raise FakeRequestError(404, f"{method} {path} is not a route of the fake Pinecone data plane")
    handlers = {
        "/vectors/upsert": _upsert,
        "/query": _query,
        "/vectors/fetch_by_metadata": _fetch_by_metadata,
        "/vectors/delete": _delete,
        "/vectors/update": _update,
        "/describe_index_stats": _stats,
    }
    handler = handlers.get(path)
    if handler is None:
        raise FakeRequestError(404, f"POST {path} is not a route of the fake Pinecone data plane")
    return 200, handler(index, body)


def _upsert(index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    vectors = body.get("vectors")
    if not isinstance(vectors, list) or not vectors:
        raise bad("vectors must be a non-empty array")
    if len(vectors) > rules.MAX_UPSERT_VECTORS:
        raise bad(f"Upsert accepts at most {rules.MAX_UPSERT_VECTORS} vectors per request, got {len(vectors)}")
    checked = []
    for vector in vectors:  # all or nothing: validate every vector before writing any
        if not isinstance(vector, dict):
            raise bad("each vector must be an object")
        vector_id = rules.check_id(vector.get("id"))
        values = rules.check_values(vector.get("values"), index.dimension, index.metric)
        checked.append((vector_id, Record(values, rules.check_metadata(vector.get("metadata"), vector_id))))
    records = index.namespaces.setdefault(_namespace(body.get("namespace")), {})
    records.update(checked)
    return {"upsertedCount": len(checked)}


def _query(index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    top_k = rules.check_top_k(body)
    namespace = _namespace(body.get("namespace"))
    records = index.namespaces.get(namespace, {})
    if ("vector" in body) == ("id" in body):
        raise bad("Exactly one of vector or id must be given")
    if "id" in body:
        known = records.get(rules.check_id(body["id"]))
        if known is None:
            return {"matches": [], "namespace": namespace, "usage": {"readUnits": 1}}
        vector = known.values
    else:
        vector = rules.check_values(body["vector"], index.dimension, index.metric, "Query vector")
    flt = body.get("filter")
    if flt is not None:
        rules.check_filter(flt)
    candidates = [
        (key, record) for key, record in records.items() if flt is None or rules.matches(flt, record.metadata)
    ]
    matches: list[dict[str, Any]] = []
    if candidates:
        score = rules.scores(index.metric, np.stack([record.values for _, record in candidates]), vector)
        order = np.argsort(score if index.metric == "euclidean" else -score, kind="stable")[:top_k]
        for position in order:
            key, record = candidates[int(position)]
            match: dict[str, Any] = {"id": key, "score": float(score[position])}
            if body.get("includeValues"):
                match["values"] = record.values.tolist()
            if body.get("includeMetadata") and record.metadata:
                match["metadata"] = record.metadata
            matches.append(match)
    return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1 + len(records) // 1000}}


def _vector(key: str, record: Record) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": key, "values": record.values.tolist()}
    if record.metadata:
        answer["metadata"] = record.metadata
    return answer


def _fetch(index: FakeIndex, query: dict[str, list[str]]) -> dict[str, Any]:
    ids = query.get("ids") or []
    if not ids:
        raise bad("ids must be given")
    if len(ids) > rules.MAX_FETCH_IDS:
        raise bad(f"Fetch accepts at most {rules.MAX_FETCH_IDS} ids, got {len(ids)}")
    namespace = _namespace((query.get("namespace") or [""])[0])
    records = index.namespaces.get(namespace, {})
    found = {key: _vector(key, records[key]) for key in map(rules.check_id, ids) if key in records}
    return {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}


def _page(keys: list[str], token: Any, limit: Any) -> tuple[list[str], str | None]:
    """One page of sorted ``keys`` after the token's key, and the next token (base64 of the last key)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise bad(f"limit must be a positive integer, got {limit!r}")
    start = 0
    if token:
        try:
            after = base64.urlsafe_b64decode(str(token).encode()).decode()
        except ValueError:
            raise bad("Invalid pagination token") from None
        start = next((i for i, key in enumerate(keys) if key > after), len(keys))
    page = keys[start : start + limit]
    more = start + limit < len(keys)
    return page, base64.urlsafe_b64encode(page[-1].encode()).decode() if more and page else None


def _list(index: FakeIndex, query: dict[str, list[str]]) -> dict[str, Any]:
    namespace = _namespace((query.get("namespace") or [""])[0])
    prefix = (query.get("prefix") or [""])[0]
    try:
        limit = int((query.get("limit") or ["100"])[0])
    except ValueError:
        raise bad("limit must be an integer") from None
    if limit > rules.MAX_LIST_LIMIT:
        raise bad(f"limit must be at most {rules.MAX_LIST_LIMIT}")
    keys = sorted(key for key in index.namespaces.get(namespace, {}) if key.startswith(prefix))
    page, token = _page(keys, (query.get("paginationToken") or [""])[0], limit)
    answer: dict[str, Any] = {
        "vectors": [{"id": key} for key in page],
        "namespace": namespace,
        "usage": {"readUnits": 1},
    }
    if token:
        answer["pagination"] = {"next": token}
    return answer


def _fetch_by_metadata(index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    flt = body.get("filter")
    if not flt:
        raise bad("Empty filter provided for fetch by metadata request")
    rules.check_filter(flt)
    namespace = _namespace(body.get("namespace"))
    records = index.namespaces.get(namespace, {})
    limit = body.get("limit", 100)
    if isinstance(limit, int) and limit > 10_000:
        raise bad("limit must be at most 10000")
    keys = sorted(key for key, record in records.items() if rules.matches(flt, record.metadata))
    page, token = _page(keys, body.get("paginationToken"), limit)
    answer: dict[str, Any] = {
        "vectors": {key: _vector(key, records[key]) for key in page},
        "namespace": namespace,
        "usage": {"readUnits": 1},
    }
    if token:
        answer["pagination"] = {"next": token}
    return answer


def _delete(index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    namespace = _namespace(body.get("namespace"))
    selectors = [key for key in ("ids", "filter", "deleteAll") if body.get(key)]
    if len(selectors) != 1:
        raise bad("Exactly one of ids, filter or deleteAll must be given")
    records = index.namespaces.get(namespace, {})
    if body.get("deleteAll"):
        index.namespaces.pop(namespace, None)
    elif "ids" in selectors:
        ids = body["ids"]
        if not isinstance(ids, list) or len(ids) > rules.MAX_DELETE_IDS:
            raise bad(f"ids must be an array of at most {rules.MAX_DELETE_IDS} ids")
        for key in ids:
            records.pop(rules.check_id(key), None)
    else:
        flt = rules.check_filter(body["filter"])
        for key in [key for key, record in records.items() if rules.matches(flt, record.metadata)]:
            del records[key]
    return {}


def _update(index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    records = index.namespaces.get(_namespace(body.get("namespace")), {})
    if ("id" in body) == ("filter" in body):
        raise bad("Exactly one of id or filter must be given")
    metadata = body.get("setMetadata")
    if "filter" in body:
        flt = rules.check_filter(body["filter"])
        if "values" in body or metadata is None:
            raise bad("An update by filter sets metadata only")
        targets = [record for record in records.values() if rules.matches(flt, record.metadata)]
    else:
        known = records.get(rules.check_id(body["id"]))
        targets = [known] if known is not None else []
    values = rules.check_values(body["values"], index.dimension, index.metric) if "values" in body else None
    for record in targets if not body.get("dryRun") else []:
        if values is not None:
            record.values = values
        if metadata is not None:
            record.metadata = rules.check_metadata({**record.metadata, **metadata}, "update")
    return {"matchedRecords": len(targets)}


def _stats(index: FakeIndex, body: dict[str, Any]) -> dict[str, Any]:
    flt = body.get("filter")
    if flt is not None:
        rules.check_filter(flt)
    counts = {
        name: sum(1 for record in records.values() if flt is None or rules.matches(flt, record.metadata))
        for name, records in index.namespaces.items()
    }
    return {
        "namespaces": {name: {"vectorCount": count} for name, count in counts.items() if count},
        "dimension": index.dimension,
        "indexFullness": 0.0,
        "totalVectorCount": sum(counts.values()),
        "metric": index.metric,
        "vectorType": "dense",
    }


__all__ = ["API_VERSION", "DEFAULT_NAMESPACE", "FakeIndex", "FakePineconeServer", "Record"]
