"""The data plane of the FAKE Pinecone in :mod:`ragkit_pinecone.testing`: one index's records and routes.

``POST /vectors/upsert``, ``/query``, ``/vectors/fetch_by_metadata``,
``/vectors/delete``, ``/vectors/update``, ``/describe_index_stats`` and
``GET /vectors/fetch``, ``/vectors/list``, with the camelCase JSON bodies of
Pinecone's REST API. The content rules (limits, filters, scores) are in
:mod:`ragkit_pinecone.fake_rules`. Callers hold the server's lock.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import numpy as np

from ragkit_pinecone import fake_rules as rules
from ragkit_pinecone.fake_rules import FakeRequestError, bad

DEFAULT_NAMESPACE = "__default__"


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


def _namespace(value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_NAMESPACE
    if not isinstance(value, str) or not value.isascii() or "\x00" in value or len(value) > 512:
        raise bad(f"Namespace {str(value)[:64]!r} is invalid")
    return value


def data_plane(index: FakeIndex, method: str, path: str, body: Any, query: dict[str, list[str]]) -> tuple[int, Any]:
    """Answer one data-plane request: ``(status, JSON body)``, or a :class:`FakeRequestError`."""
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
    if namespace not in index.namespaces:  # a namespace exists while it holds records
        raise FakeRequestError(404, f"Namespace not found: {namespace}")
    records = index.namespaces[namespace]
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


__all__ = ["DEFAULT_NAMESPACE", "FakeIndex", "Record", "data_plane"]
