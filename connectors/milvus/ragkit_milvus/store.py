"""A ragkit vector store in Milvus: a Milvus Lite folder for tests, a server or cluster by URI.

Each ragkit collection uses two Milvus collections:

- ``<collection>`` holds the chunks: ``id`` (primary key), ``vector``
  (cosine), ``document_id``, ``source``, ``text``, ``start``, ``end``,
  ``content_hash`` and ``metadata`` (JSON, what filters read);
- ``<collection>__sources`` holds the committed source records and the
  names of the metadata fields seen (Milvus wants a vector in every
  collection, so it carries a two-dimensional placeholder).

Milvus has no transactions. Writes keep the protocol's promise that a
crash mid-ingest leaves the last good state readable by ordering:
a source's new chunks are upserted (ids are stable, so a re-run is
idempotent), its stale chunks are deleted only when the source is
committed, and the source record is written last, so a source whose commit
did not finish is ingested again next time.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ragkit.errors import ConfigError, ConflictError, InputError, RagkitError, StorageError, UnavailableError
from ragkit.filters import Filter
from ragkit.hashing import content_hash
from ragkit.protocols import Vectors
from ragkit.schema import Chunk, Hit, SourceRecord
from ragkit.stores.base import StoreBase
from ragkit.stores.source_parts import assemble_source_record, split_source_record
from ragkit_milvus.expressions import quote, to_milvus_expr

log = logging.getLogger(__name__)

T = TypeVar("T")

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf_flat", "autoindex")
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
LITE_FILE = "milvus.db"
"""The Milvus Lite folder inside the store's path when no ``uri`` is given."""
MAX_VARCHAR_BYTES = 65_535
"""Milvus's limit on a VARCHAR value (``text``, ``source``), in UTF-8 bytes."""
MAX_JSON_BYTES = 65_536
"""Milvus's limit on a JSON value (a chunk's ``metadata``), in bytes."""
MAX_ID_BYTES = 512
MAX_TOP_K = 16_384
"""Milvus answers at most this many hits per query."""
_SOURCES_SUFFIX = "__sources"
_CHUNK_FIELDS = ["id", "document_id", "source", "text", "start", "end", "content_hash", "metadata"]
_PLACEHOLDER_VECTOR = [1.0, 0.0]
_IN_BATCH = 500  # values per `in [...]` expression
_WRITE_ROWS = 1_000  # rows per upsert call ...
_WRITE_BYTES = 8 << 20  # ... and about this many bytes
_RECORD_PART_BYTES = 48_000  # document ids per source-record row, well under MAX_JSON_BYTES
_QUERY_BATCH = 1_024  # query vectors per search call
_INDEXES: dict[str, dict[str, Any]] = {
    "flat": {"index_type": "FLAT", "params": {}},
    "hnsw": {"index_type": "HNSW", "params": {"M": 16, "efConstruction": 200}},
    "ivf_flat": {"index_type": "IVF_FLAT", "params": {"nlist": 128}},
    "autoindex": {"index_type": "AUTOINDEX", "params": {}},
}
_NAME_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")

# Milvus Lite runs one in-process server per folder; stores opened on the same
# folder share it, and the last one to close stops it (which frees the folder).
_lite_lock = threading.Lock()
_lite_users: dict[str, int] = {}


class MilvusStore(StoreBase):
    """Chunks and vectors in Milvus, searched by cosine similarity with ragkit filters.

    ``uri``: ``None`` keeps a Milvus Lite database in ``<path>/milvus.db``
    (one process at a time); a path ending in ``.db`` puts it there instead;
    ``http(s)://host:19530`` talks to a Milvus server or cluster.
    ``token`` (``user:password`` or an API key) is never written into the
    saved config: name an environment variable in ``token_env`` to keep it out
    of files. ``collection`` names the Milvus collection (default: derived
    from the ragkit collection's name). ``index``: ``auto`` is ``flat``
    (exact) on Milvus Lite and ``autoindex`` on a server; ``flat``, ``hnsw``,
    ``ivf_flat`` and ``autoindex`` choose one, at creation time.
    """

    role = "store"
    component_type = "milvus"
    capabilities = frozenset({"drop", "stats", "chunks_of_documents"})
    unsaved_options = ("token",)  # a secret: name an environment variable in token_env instead

    def __init__(
        self,
        path: str | Path,
        dimension: int,
        name: str = "",
        uri: str | None = None,
        token: str | None = None,
        token_env: str | None = None,
        collection: str | None = None,
        index: str = "auto",
        consistency_level: str = "Strong",
        timeout: float = 30.0,
    ) -> None:
        if dimension < 1:
            raise ConfigError(f"store 'milvus': dimension must be positive, got {dimension}")
        if index not in INDEX_KINDS:
            raise ConfigError(f"store 'milvus': index must be one of {', '.join(INDEX_KINDS)}, got {index!r}")
        if consistency_level not in CONSISTENCY_LEVELS:
            raise ConfigError(
                f"store 'milvus': consistency_level must be one of {', '.join(CONSISTENCY_LEVELS)}, "
                f"got {consistency_level!r}"
            )
        if timeout <= 0:
            raise ConfigError(f"store 'milvus': timeout must be positive, got {timeout}")
        if token is not None and token_env is not None:
            raise ConfigError("store 'milvus': give token or token_env, not both")
        if token_env is not None:
            token = os.environ.get(token_env)
            if token is None:
                raise ConfigError(f"store 'milvus': environment variable {token_env!r} (token_env) is not set")
        if collection is not None and not _NAME_RULE.fullmatch(collection):
            raise ConfigError(
                f"store 'milvus': collection {collection!r} is not a valid Milvus name "
                "(a letter or underscore, then letters, digits and underscores, at most 255)"
            )
        if collection is not None and len(collection) + len(_SOURCES_SUFFIX) > 255:
            raise ConfigError(f"store 'milvus': collection {collection!r} is too long (at most 246 characters)")

        self.path = Path(path)
        self.name = name
        self._dimension = dimension
        self.index_kind = index
        self.consistency_level = consistency_level
        self.timeout = timeout
        self.collection = collection or collection_name_for(name)
        self.sources_collection = self.collection + _SOURCES_SUFFIX
        self._lite_path: str | None = None
        if uri is None or _is_lite_file(uri):
            lite = Path(uri).expanduser() if uri is not None else self.path / LITE_FILE
            self._lite_path = os.path.abspath(lite)
            self.uri = self._lite_path
        elif uri.startswith(("http://", "https://", "tcp://", "unix:")):
            self.uri = uri
        else:
            raise ConfigError(
                f"store 'milvus': uri {uri!r} must be http(s)://host:port (a server or cluster) "
                "or a path ending in .db (Milvus Lite)"
            )
        self._token = token or ""
        self._lock = threading.RLock()
        self._client: Any = None
        self._known_fields: set[str] = set()
        self._vector_index = index if index != "auto" else ("flat" if self.is_lite else "autoindex")
        self._open()

    # -- config ----------------------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """Vector length the store holds."""
        return self._dimension

    @property
    def is_lite(self) -> bool:
        """Whether this store runs Milvus Lite in this process (rather than talking to a server)."""
        return self._lite_path is not None

    # -- opening and closing ---------------------------------------------------------------

    def _open(self) -> None:
        from pymilvus import MilvusClient

        if self._lite_path is not None:
            lite_dir = Path(self._lite_path)
            try:
                lite_dir.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create store folder {lite_dir.parent}: {exc.strerror}") from None
            if _lite_held_elsewhere(self._lite_path):
                raise UnavailableError(_in_use_message(self._lite_path))
            _lite_acquire(self._lite_path)
        try:
            with self._errors("connecting"):
                self._client = MilvusClient(uri=self.uri, token=self._token, timeout=self.timeout)
            with self._errors("opening the collections"):
                self._ensure_chunks_collection()
                self._ensure_sources_collection()
            self._known_fields = self._read_fields()
        except BaseException:
            self._release()
            raise

    def _ensure_chunks_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        client = self._client
        if client.has_collection(self.collection):
            self._check_schema(client.describe_collection(self.collection))
            self._vector_index = self._existing_index() or self._vector_index
        else:
            schema = MilvusClient.create_schema(
                auto_id=False, enable_dynamic_field=False, description=f"ragkit collection {self.name!r}"
            )
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self._dimension)
            schema.add_field("document_id", DataType.VARCHAR, max_length=MAX_ID_BYTES)
            schema.add_field("source", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
            schema.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
            schema.add_field("start", DataType.INT64)
            schema.add_field("end", DataType.INT64)
            schema.add_field("content_hash", DataType.VARCHAR, max_length=128)
            schema.add_field("metadata", DataType.JSON)
            index_params = client.prepare_index_params()
            index = _INDEXES[self._vector_index]
            index_params.add_index(
                "vector", index_type=index["index_type"], metric_type="COSINE", params=index["params"]
            )
            for field in ("source", "document_id"):
                index_params.add_index(field, index_type="INVERTED")
            self._create(self.collection, schema, index_params)
            log.info("created Milvus collection %s in %s", self.collection, self.uri)
        self._load(self.collection)

    def _ensure_sources_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        client = self._client
        if not client.has_collection(self.sources_collection):
            schema = MilvusClient.create_schema(
                auto_id=False, enable_dynamic_field=False, description=f"ragkit sources and fields of {self.collection}"
            )
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=128)
            schema.add_field("kind", DataType.VARCHAR, max_length=16)
            schema.add_field("source", DataType.VARCHAR, max_length=MAX_VARCHAR_BYTES)
            schema.add_field("part", DataType.INT64)
            schema.add_field("data", DataType.JSON)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=len(_PLACEHOLDER_VECTOR))
            index_params = client.prepare_index_params()
            index_params.add_index("vector", index_type="FLAT", metric_type="L2")
            self._create(self.sources_collection, schema, index_params)
        self._load(self.sources_collection)

    def _load(self, collection: str) -> None:
        """Load a collection for search; on Milvus Lite, repair index files a crash left half written.

        Milvus Lite builds each segment's index files in a background thread
        after a flush and writes them in place, so a process killed at that
        moment leaves a truncated file that makes every later load fail. The
        files are derived from the segments: removing them makes Lite build
        them again.
        """
        from pymilvus.exceptions import MilvusException

        try:
            self._client.load_collection(collection)
            return
        except MilvusException as exc:
            if self._lite_path is None or exc.code == 2:
                raise
            broken = _lite_index_files(self._lite_path, collection)
            if not broken:
                raise
            log.warning(
                "Milvus Lite could not load %s (%s); rebuilding its %d index files",
                collection,
                exc.message,
                len(broken),
            )
            for file in broken:
                file.unlink(missing_ok=True)
        self._client.load_collection(collection)

    def _create(self, collection: str, schema: Any, index_params: Any) -> None:
        # an empty collection's indexes are built at once: sync=False skips pymilvus's 0.5 s polling per index
        self._client.create_collection(collection, schema=schema, consistency_level=self.consistency_level)
        self._client.create_index(collection, index_params, sync=False)

    def _check_schema(self, description: dict[str, Any]) -> None:
        fields = {field["name"]: field for field in description.get("fields", [])}
        missing = sorted({*_CHUNK_FIELDS, "vector"} - set(fields))
        if missing:
            raise ConflictError(
                f"Milvus collection {self.collection!r} at {self.uri} was not made by ragkit "
                f"(it lacks {', '.join(missing)}); choose another collection name"
            )
        stored = int(fields["vector"].get("params", {}).get("dim", 0))
        if stored != self._dimension:
            raise ConflictError(
                f"Milvus collection {self.collection!r} at {self.uri} holds {stored}-dimensional vectors, "
                f"but the embedder makes {self._dimension}-dimensional ones"
            )

    def _existing_index(self) -> str | None:
        """The kind of vector index an existing collection has (the ``index`` option only applies at creation)."""
        for name in self._client.list_indexes(self.collection, field_name="vector"):
            index_type = str(self._client.describe_index(self.collection, name).get("index_type", "")).lower()
            kind = {"brute_force": "flat"}.get(index_type, index_type)
            if kind in _INDEXES:
                if self.index_kind not in ("auto", kind):
                    log.warning(
                        "Milvus collection %s already has a %s index; index=%r applies only when it is created",
                        self.collection,
                        kind,
                        self.index_kind,
                    )
                return kind
        return None

    def flush(self) -> None:
        """Make everything written so far durable.

        Milvus Lite seals its write-ahead log into segment files. A server
        makes each write durable in its log when it acknowledges it, and
        flushing there would only cut small segments, so nothing is sent.
        """
        if self._client is None or not self.is_lite:
            return
        with self._lock, self._errors("flushing"):
            self._client.flush(self.collection)
            self._client.flush(self.sources_collection)

    def close(self) -> None:
        """Flush, disconnect and (for Milvus Lite) stop the in-process server once no store uses it."""
        if self._client is None:
            return
        try:
            self.flush()
        finally:
            self._release()

    def drop(self) -> None:
        """Delete both Milvus collections (chunks, source records, field names) and close the store.

        Deleting a ragkit collection removes its folder; on a Milvus server the
        Milvus collections live on, so call this first to remove them too.
        """
        self._client_required()
        with self._lock, self._errors("dropping the collections"):
            self._client.drop_collection(self.collection)
            self._client.drop_collection(self.sources_collection)
        self._release()

    def _release(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing must not fail a shutdown
                log.debug("closing the Milvus client for %s: %s", self.uri, exc)
        if self._lite_path is not None:
            _lite_release(self._lite_path)

    def __del__(self) -> None:
        if getattr(self, "_client", None) is not None:
            with suppress(Exception):  # at interpreter shutdown there is nothing left to do
                self._release()

    # -- writing -------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or replace ``chunks`` (by id), each with its vector."""
        vectors = self.check_vectors(chunks, vectors, f"Milvus collection {self.collection!r}")
        if not chunks:
            return
        latest: dict[str, int] = {chunk.id: i for i, chunk in enumerate(chunks)}  # last one of a repeated id wins
        rows: list[dict[str, Any]] = []
        fields: set[str] = set()
        for i in sorted(latest.values()):
            chunk = chunks[i]
            rows.append(_chunk_row(chunk, vectors[i]))
            fields.update(chunk.metadata)
        self._client_required()
        with self._lock:
            new_fields = fields - self._known_fields
            for batch in _write_batches(rows, self._dimension):
                with self._errors("writing chunks"):
                    self._client.upsert(self.collection, batch)
            if new_fields:
                with self._errors("recording metadata fields"):
                    self._client.upsert(self.sources_collection, [_field_row(name) for name in sorted(new_fields)])
                self._known_fields |= new_fields

    def commit_sources(self, records: Sequence[SourceRecord]) -> None:
        """Delete each source's chunks the latest ingest did not produce, then save its record."""
        self._client_required()
        with self._lock:
            for record in records:
                keep = set(record.chunk_ids)
                stale = [i for i in self._ids_where(f"source == {quote(record.source)}") if i not in keep]
                for batch in _batches(stale, _IN_BATCH):
                    with self._errors(f"deleting stale chunks of {record.source!r}"):
                        self._client.delete(self.collection, ids=batch)
                self._write_record(record)

    def _write_record(self, record: SourceRecord) -> None:
        _check_bytes(record.source, MAX_VARCHAR_BYTES, f"source name {record.source[:80]!r}")
        parts = split_source_record(record, _RECORD_PART_BYTES)
        source_key = content_hash(record.source)
        rows = [
            {
                "key": f"s:{number}:{source_key}",
                "kind": "source",
                "source": record.source,
                "part": number,
                "data": data,
                "vector": _PLACEHOLDER_VECTOR,
            }
            for number, data in enumerate(parts)
        ]
        with self._errors(f"saving the record of {record.source!r}"):
            # the first part, which says how many parts there are, goes last
            self._client.upsert(self.sources_collection, rows[1:])
            self._client.upsert(self.sources_collection, rows[:1])
            self._client.delete(
                self.sources_collection,
                filter=f'kind == "source" and source == {quote(record.source)} and part >= {len(parts)}',
            )

    def sources(self) -> dict[str, SourceRecord]:
        """Every committed source record, by source."""
        parts: dict[str, dict[int, dict[str, Any]]] = {}
        for row in self._query_all(self.sources_collection, 'kind == "source"', ["source", "part", "data"]):
            parts.setdefault(row["source"], {})[int(row["part"])] = row["data"]
        records = {}
        for source, by_number in parts.items():
            record = assemble_source_record(source, by_number)
            if record is None:
                log.warning("source record of %r in %s is incomplete; it will be ingested again", source, self.uri)
                continue
            records[source] = record
        return records

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete the sources' chunks and records; returns the number of chunks deleted."""
        deleted = self._delete_where("source", sources)
        for batch in _batches(list(sources), _IN_BATCH):
            names = ", ".join(quote(s) for s in batch)
            with self._lock, self._errors("deleting source records"):
                self._client.delete(self.sources_collection, filter=f'kind == "source" and source in [{names}]')
        return deleted

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        """Delete the documents' chunks; returns the number of chunks deleted."""
        return self._delete_where("document_id", document_ids)

    def _delete_where(self, field: str, values: Sequence[str]) -> int:
        self._client_required()
        deleted = 0
        with self._lock:
            for batch in _batches(list(values), _IN_BATCH):
                expr = f"{field} in [{', '.join(quote(v) for v in batch)}]"
                found = self._count(expr)
                if found:
                    with self._errors(f"deleting chunks by {field}"):
                        self._client.delete(self.collection, filter=expr)
                    deleted += found
        return deleted

    # -- reading ---------------------------------------------------------------------------

    def search(self, vectors: Vectors, top_k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The ``top_k`` most similar chunks (cosine) for each query vector, best first.

        Milvus filters before it ranks, so a filtered search returns the best
        ``top_k`` among the matching chunks. ``top_k`` is capped at 16384.
        """
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[1] != self._dimension:
            raise ConflictError(
                f"query vectors are {queries.shape[-1]}-dimensional; Milvus collection {self.collection!r} "
                f"holds {self._dimension}-dimensional ones"
            )
        if top_k < 1 or len(queries) == 0:
            return [[] for _ in queries]
        self._client_required()
        limit = min(top_k, MAX_TOP_K)
        expr = to_milvus_expr(filter) if filter is not None else ""
        params = self._search_params(limit)
        results: list[list[Hit]] = []
        for start in range(0, len(queries), _QUERY_BATCH):
            batch = queries[start : start + _QUERY_BATCH]
            with self._errors("searching"):
                found = self._client.search(
                    self.collection,
                    data=batch,
                    anns_field="vector",
                    limit=limit,
                    filter=expr,
                    output_fields=_CHUNK_FIELDS,
                    search_params={"metric_type": "COSINE", "params": params},
                )
            for row in found:
                results.append([Hit(_row_to_chunk(hit["entity"]), float(hit["distance"]), "dense") for hit in row])
        return results

    def _search_params(self, limit: int) -> dict[str, Any]:
        index = self._vector_index
        if index == "hnsw":
            return {"ef": max(64, limit)}
        if index == "ivf_flat":
            return {"nprobe": 16}
        return {}

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the given order (unknown ids are left out)."""
        self._client_required()
        found: dict[str, Chunk] = {}
        for batch in _batches(list(dict.fromkeys(chunk_ids)), _IN_BATCH):
            with self._errors("reading chunks"):
                rows = self._client.get(self.collection, ids=batch, output_fields=_CHUNK_FIELDS)
            for row in rows:
                found[row["id"]] = _row_to_chunk(row)
        return [found[i] for i in chunk_ids if i in found]

    def chunks_of_documents(self, document_ids: Sequence[str]) -> list[Chunk]:
        """Every chunk of these documents: by document in the order given, then by ``start``.

        A query filtered on ``document_id`` (per 500 ids); unknown ids are left out.
        """
        order = {doc_id: i for i, doc_id in enumerate(dict.fromkeys(document_ids))}
        chunks: list[Chunk] = []
        for batch in _batches(list(order), _IN_BATCH):
            expr = f"document_id in [{', '.join(quote(v) for v in batch)}]"
            for rows in self._iterate(self.collection, expr, _CHUNK_FIELDS, 4096):
                chunks.extend(_row_to_chunk(row) for row in rows)
        chunks.sort(key=lambda c: (order[c.document_id], c.start, c.end, c.id))
        return chunks

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[list[Chunk]]:
        """Every stored chunk, in batches."""
        for rows in self._iterate(self.collection, "", _CHUNK_FIELDS, batch_size):
            yield [_row_to_chunk(row) for row in rows]

    def count(self) -> int:
        """Number of stored chunks."""
        return self._count("")

    def metadata_fields(self) -> set[str]:
        """Metadata field names seen on stored chunks (by any writer), plus ``source`` and ``document_id``."""
        fields = self._read_fields()
        with self._lock:
            self._known_fields |= fields
        return fields | {"source", "document_id"}

    def stats(self) -> dict[str, Any]:
        """Counts and where the vectors live, for ``collections show``."""
        return {
            "chunks": self.count(),
            "sources": len(self.sources()),
            "index": self._vector_index,
            "uri": self.uri,
            "collection": self.collection,
        }

    def _read_fields(self) -> set[str]:
        return {row["data"]["name"] for row in self._query_all(self.sources_collection, 'kind == "field"', ["data"])}

    # -- Milvus helpers --------------------------------------------------------------------

    def _client_required(self) -> None:
        if self._client is None:
            raise StorageError(f"Milvus store {self.collection!r} at {self.uri} is closed")

    def _count(self, expr: str) -> int:
        self._client_required()
        with self._errors("counting chunks"):
            rows = self._client.query(self.collection, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def _ids_where(self, expr: str) -> list[str]:
        return [row["id"] for row in self._query_all(self.collection, expr, ["id"])]

    def _query_all(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        return [row for rows in self._iterate(collection, expr, fields, 4096) for row in rows]

    def _iterate(
        self, collection: str, expr: str, fields: list[str], batch_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows matching ``expr`` in pages by ascending primary key (Milvus answers a limited query in key order)."""
        self._client_required()
        key = "id" if collection == self.collection else "key"
        limit = max(1, min(batch_size, MAX_TOP_K))
        output = fields if key in fields else [*fields, key]
        last: str | None = None
        while True:
            conditions = [f"{key} > {quote(last)}"] if last is not None else []
            if expr:
                conditions.append(f"({expr})")
            with self._errors("reading"):
                rows = self._client.query(
                    collection, filter=" and ".join(conditions), output_fields=output, limit=limit
                )
            if not rows:
                return
            last = max(row[key] for row in rows)
            yield [dict(row) for row in rows]
            if len(rows) < limit:
                return

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn pymilvus errors into ragkit errors that name the URI and what was being done."""
        try:
            yield
        except RagkitError:
            raise
        except Exception as exc:
            raise self._wrap(exc, action) from exc

    def _wrap(self, exc: Exception, action: str) -> RagkitError:
        from pymilvus.exceptions import ConnectionConfigException, MilvusException, MilvusUnavailableException

        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        where = f"Milvus Lite at {self.uri}" if self.is_lite else f"Milvus at {self.uri}"
        if self.is_lite and isinstance(exc, ConnectionConfigException):
            if _lite_locked(self.uri):
                return UnavailableError(_in_use_message(self.uri))
            return UnavailableError(f"cannot start {where}: {message}")
        code = getattr(exc, "code", None)
        if (
            isinstance(exc, (MilvusUnavailableException, ConnectionConfigException))
            or code == 2
            or ("connect" in message.lower() and "fail" in message.lower())
        ):
            return UnavailableError(f"{where} is unavailable ({action}): {message}")
        if isinstance(exc, MilvusException) and "dimension" in message.lower():
            return ConflictError(f"{where}: {action} failed: {message}")
        return StorageError(f"{where}: {action} failed: {message}")


# -- module helpers --------------------------------------------------------------------------


def collection_name_for(name: str) -> str:
    """The Milvus collection name for a ragkit collection called ``name``.

    ``ragkit_`` plus the name with every character Milvus refuses replaced by
    ``_``; when anything was replaced (or the name is very long) a short hash
    of the original keeps distinct names distinct.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name)
    base = f"ragkit_{cleaned}" if cleaned else "ragkit"
    if cleaned != name or len(base) > 200:
        base = f"{base[:200]}_{content_hash(name)[:8]}"
    return base


def _is_lite_file(uri: str) -> bool:
    return uri.endswith(".db") and "://" not in uri


def _lite_acquire(path: str) -> None:
    with _lite_lock:
        _lite_users[path] = _lite_users.get(path, 0) + 1


def _lite_release(path: str) -> None:
    with _lite_lock:
        users = _lite_users.get(path, 0) - 1
        if users > 0:
            _lite_users[path] = users
            return
        _lite_users.pop(path, None)
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(path)


def _lite_held_elsewhere(path: str) -> bool:
    """Whether another process has the Milvus Lite folder open (checked before Lite logs a traceback about it)."""
    with _lite_lock:
        if _lite_users.get(path):
            return False
    from milvus_lite.server_manager import server_manager_instance

    if path in getattr(server_manager_instance, "_servers", {}):
        return False  # this process serves it already
    return _lite_locked(path)


def _in_use_message(path: str) -> str:
    return (
        f"Milvus Lite at {path} is in use by another process (Milvus Lite serves one process at a time; "
        "use a Milvus server to share a collection between processes)"
    )


def _lite_locked(path: str) -> bool:
    """Whether another process holds the Milvus Lite folder's lock."""
    lock_file = os.path.join(path, "LOCK")
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _lite_index_files(lite_path: str, collection: str) -> list[Path]:
    """The index files Milvus Lite keeps beside a collection's segments (derived data)."""
    partitions = Path(lite_path) / "collections" / collection / "partitions"
    return [f for f in partitions.glob("*/indexes/*") if f.suffix in (".idx", ".sidx")]


def _check_bytes(value: str, limit: int, what: str) -> int:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InputError(f"{what} is {size} bytes in UTF-8; Milvus stores at most {limit}")
    return size


def _chunk_row(chunk: Chunk, vector: np.ndarray) -> dict[str, Any]:
    where = f"chunk {chunk.id[:80]!r} of {chunk.source[:200]!r}"
    _check_bytes(chunk.id, MAX_ID_BYTES, f"the id of {where}")
    _check_bytes(chunk.document_id, MAX_ID_BYTES, f"the document id of {where}")
    _check_bytes(chunk.source, MAX_VARCHAR_BYTES, f"the source of {where}")
    _check_bytes(chunk.text, MAX_VARCHAR_BYTES, f"the text of {where} (split documents into smaller chunks)")
    encoded = json.dumps(chunk.metadata, default=str, ensure_ascii=False)
    _check_bytes(encoded, MAX_JSON_BYTES, f"the metadata of {where} as JSON")
    return {
        "id": chunk.id,
        "vector": vector,
        "document_id": chunk.document_id,
        "source": chunk.source,
        "text": chunk.text,
        "start": int(chunk.start),
        "end": int(chunk.end),
        "content_hash": chunk.content_hash,
        "metadata": json.loads(encoded),
    }


def _row_to_chunk(row: dict[str, Any]) -> Chunk:
    return Chunk(
        id=row["id"],
        document_id=row["document_id"],
        source=row["source"],
        text=row["text"],
        start=int(row["start"]),
        end=int(row["end"]),
        metadata=dict(row["metadata"] or {}),
        content_hash=row["content_hash"],
    )


def _field_row(name: str) -> dict[str, Any]:
    return {
        "key": f"f:{content_hash(name)}",
        "kind": "field",
        "source": "",
        "part": 0,
        "data": {"name": name},
        "vector": _PLACEHOLDER_VECTOR,
    }


def _write_batches(rows: list[dict[str, Any]], dimension: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = 4 * dimension + len(row["text"]) * 2 + len(row["source"]) + 256
        if batch and (len(batch) >= _WRITE_ROWS or size + row_size > _WRITE_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += row_size
    if batch:
        yield batch


def _batches(values: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


__all__ = ["MilvusStore", "collection_name_for"]
