"""A ragkit vector store in Chroma: embedded in the collection's folder, or a Chroma server by URL.

Each ragkit collection uses two Chroma collections:

- ``<collection>`` holds the chunks, one row each, in cosine space (the row
  layout is :mod:`ragkit_chroma.layout`'s);
- ``<collection>.sources`` holds the committed source records and the names
  of the metadata fields seen (with a two-dimensional placeholder vector).

Chroma never embeds anything here: every write and query passes vectors, and
the collections are opened with ``embedding_function=None``, so Chroma's
default embedding function (which downloads an ONNX model) is never built.
Chroma's anonymous telemetry is switched off (``ANONYMIZED_TELEMETRY=False``
unless the user set it, and ``Settings(anonymized_telemetry=False)``).

Writes keep the protocol's promise that a crash mid-ingest leaves the last
good state readable by ordering: new chunks are upserted (stable ids make a
re-run idempotent), stale ones are deleted only when their source is
committed, and the source record is written last.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np

from ragkit.errors import ConfigError, ConflictError, InputError, RagkitError, StorageError, UnavailableError
from ragkit.filters import Filter
from ragkit.hashing import content_hash
from ragkit.protocols import Vectors
from ragkit.schema import Chunk, Hit, SourceRecord
from ragkit.stores.base import StoreBase
from ragkit_chroma.layout import chunk_metadata, row_to_chunk
from ragkit_chroma.where import to_chroma_where

log = logging.getLogger(__name__)

T = TypeVar("T")

EMBEDDED_FOLDER = "chroma"
"""Where the embedded Chroma database lives inside the store's path when no ``url`` is given."""
DIMENSION_KEY = "ragkit:dimension"
"""Chroma collection metadata holding the vector length the ragkit store was created with."""
_SOURCES_SUFFIX = ".sources"
_PLACEHOLDER = [1.0, 0.0]
_BATCH = 1_000  # ids per get/delete call, rows per upsert (Chroma's own limit is larger)
_NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,500}[A-Za-z0-9]")
_INCLUDE = ["documents", "metadatas"]


def _chromadb() -> Any:
    """The ``chromadb`` module, imported here only, with its telemetry switched off first."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb

    return chromadb


class ChromaStore(StoreBase):
    """Chunks and vectors in Chroma, searched by cosine similarity with ragkit filters.

    ``url``: ``None`` keeps an embedded Chroma database in ``<path>/chroma``
    (Chroma's ``PersistentClient``); ``http(s)://host:port`` talks to a Chroma
    server (``chroma run``). ``tenant`` and ``database`` choose where on the
    server (Chroma's defaults otherwise). ``token_env`` names an environment
    variable whose value is sent as ``Authorization: Bearer <token>``.
    ``collection`` names the Chroma collection (default: derived from the
    ragkit collection's name). ``ef_search`` and ``ef_construction`` size
    Chroma's HNSW index (applied when the Chroma collection is created, not
    when an existing one is reopened; larger is closer to exact).

    Filters are translated to Chroma's ``where`` (see :mod:`ragkit_chroma.where`);
    a prefix filter, or ``<``/``>`` against a string, is refused with a
    :class:`ragkit.errors.FilterError`.
    """

    role = "store"
    component_type = "chroma"
    capabilities = frozenset({"drop", "stats", "chunks_of_documents"})

    def __init__(
        self,
        path: str | Path,
        dimension: int,
        name: str = "",
        url: str | None = None,
        tenant: str | None = None,
        database: str | None = None,
        token_env: str | None = None,
        collection: str | None = None,
        ef_search: int = 200,
        ef_construction: int = 200,
    ) -> None:
        if dimension < 1:
            raise ConfigError(f"store 'chroma': dimension must be positive, got {dimension}")
        for option, value in (("ef_search", ef_search), ("ef_construction", ef_construction)):
            if value < 1:
                raise ConfigError(f"store 'chroma': {option} must be positive, got {value}")
        if collection is not None and (not _NAME_RULE.fullmatch(collection) or len(collection) > 500):
            raise ConfigError(
                f"store 'chroma': collection {collection!r} is not a valid Chroma name "
                "(3 to 500 characters from letters, digits, '.', '_' and '-', starting and ending with a "
                "letter or digit)"
            )
        self._token: str | None = None
        if token_env is not None:
            self._token = os.environ.get(token_env)
            if self._token is None:
                raise ConfigError(f"store 'chroma': environment variable {token_env!r} (token_env) is not set")
        self.path = Path(path)
        self.name = name
        self._dimension = dimension
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self.collection = collection or collection_name_for(name)
        self.sources_collection = self.collection + _SOURCES_SUFFIX
        self.url = url
        self.tenant = tenant
        self.database = database
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"store 'chroma': url {url!r} must be http(s)://host:port (a Chroma server)")
            self.where = f"Chroma server at {url}"
        elif tenant is not None or database is not None or token_env is not None:
            raise ConfigError("store 'chroma': tenant, database and token_env need a url (a Chroma server)")
        else:
            self.where = f"Chroma at {self.path / EMBEDDED_FOLDER}"
        self._lock = threading.RLock()
        self._client: Any = None
        self._chunks: Any = None
        self._records: Any = None
        self._known_fields: set[str] = set()
        self._open()

    @property
    def dimension(self) -> int:
        """Vector length the store holds."""
        return self._dimension

    @property
    def is_embedded(self) -> bool:
        """Whether Chroma runs in this process (rather than behind a server)."""
        return self.url is None

    # -- opening and closing ---------------------------------------------------------------

    def _open(self) -> None:
        chromadb = _chromadb()
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        place: dict[str, str] = {}
        if self.tenant is not None:
            place["tenant"] = self.tenant
        if self.database is not None:
            place["database"] = self.database
        with self._errors("connecting"):
            if self.url is None:
                folder = self.path / EMBEDDED_FOLDER
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(f"cannot create store folder {folder}: {exc.strerror}") from None
                self._client = chromadb.PersistentClient(path=str(folder), settings=settings)
            else:
                parts = urlsplit(self.url)
                headers = {"Authorization": f"Bearer {self._token}"} if self._token else None
                self._client = chromadb.HttpClient(
                    host=parts.hostname,
                    port=parts.port or (443 if parts.scheme == "https" else 8000),
                    ssl=parts.scheme == "https",
                    headers=headers,
                    settings=settings,
                    **place,
                )
        try:
            self._chunks = self._collection(self.collection, self._dimension)
            self._records = self._collection(self.sources_collection, len(_PLACEHOLDER))
            self._known_fields = self._read_fields()
        except BaseException:
            self._release()
            raise

    def _collection(self, name: str, dimension: int) -> Any:
        configuration = {
            "hnsw": {"space": "cosine", "ef_search": self.ef_search, "ef_construction": self.ef_construction}
        }
        with self._errors(f"opening collection {name!r}"):
            found = self._client.get_or_create_collection(
                name, embedding_function=None, configuration=configuration, metadata={DIMENSION_KEY: dimension}
            )
        held = (found.metadata or {}).get(DIMENSION_KEY)
        if held is None:
            raise ConflictError(
                f"{self.where}: collection {name!r} was not made by ragkit (its metadata has no {DIMENSION_KEY!r}); "
                "name another collection"
            )
        if int(held) != dimension:
            raise ConflictError(
                f"{self.where}: collection {name!r} holds {held}-dimensional vectors; "
                f"this store was opened for {dimension}-dimensional ones (re-ingest into a new collection)"
            )
        return found

    def flush(self) -> None:
        """Nothing to do: Chroma persists each write when it returns."""

    def close(self) -> None:
        """Release the Chroma client (the embedded database's files with the last client on them)."""
        self._release()

    def drop(self) -> None:
        """Delete both Chroma collections and close the store."""
        self._client_required()
        with self._lock, self._errors("dropping the collections"):
            self._client.delete_collection(self.collection)
            self._client.delete_collection(self.sources_collection)
        self._release()

    def _release(self) -> None:
        client, self._client, self._chunks, self._records = self._client, None, None, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing must not fail a shutdown
                log.debug("closing the Chroma client for %s: %s", self.where, exc)

    def __del__(self) -> None:
        if getattr(self, "_client", None) is not None:
            with suppress(Exception):
                self._release()

    # -- writing -------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or replace ``chunks`` (by id), each with its vector."""
        vectors = self.check_vectors(chunks, vectors, f"Chroma collection {self.collection!r}")
        if not chunks:
            return
        self._client_required()
        latest = {chunk.id: i for i, chunk in enumerate(chunks)}  # the last one of a repeated id wins
        order = sorted(latest.values())
        fields = {key for i in order for key in chunks[i].metadata}
        with self._lock:
            for batch in _batches(order, _BATCH):
                with self._errors("writing chunks"):
                    self._chunks.upsert(
                        ids=[chunks[i].id for i in batch],
                        embeddings=vectors[batch],
                        documents=[chunks[i].text for i in batch],
                        metadatas=[chunk_metadata(chunks[i]) for i in batch],
                    )
            new_fields = sorted(fields - self._known_fields)
            if new_fields:
                with self._errors("recording metadata fields"):
                    self._records.upsert(
                        ids=[f"f:{content_hash(name)}" for name in new_fields],
                        embeddings=[_PLACEHOLDER] * len(new_fields),
                        metadatas=[{"kind": "field", "name": name} for name in new_fields],
                    )
                self._known_fields.update(new_fields)

    def commit_sources(self, records: Sequence[SourceRecord]) -> None:
        """Delete each source's chunks the latest ingest did not produce, then save its record."""
        self._client_required()
        with self._lock:
            for record in records:
                keep = set(record.chunk_ids)
                stale = [i for i in self._ids_where({"source": {"$eq": record.source}}) if i not in keep]
                for batch in _batches(stale, _BATCH):
                    with self._errors(f"deleting stale chunks of {record.source!r}"):
                        self._chunks.delete(ids=batch)
                data = record.to_dict()
                data.pop("chunk_ids", None)
                with self._errors(f"saving the record of {record.source!r}"):
                    self._records.upsert(
                        ids=[f"s:{content_hash(record.source)}"],
                        embeddings=[_PLACEHOLDER],
                        documents=[json.dumps(data, ensure_ascii=False)],
                        metadatas=[{"kind": "source", "source": record.source}],
                    )

    def sources(self) -> dict[str, SourceRecord]:
        """Every committed source record, by source."""
        self._client_required()
        records: dict[str, SourceRecord] = {}
        for rows in self._pages(self._records, {"kind": {"$eq": "source"}}, ["documents"], _BATCH):
            for text in rows["documents"]:
                data = json.loads(text)
                records[data["source"]] = SourceRecord.from_dict(data)
        return records

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete the sources' chunks and records; returns the number of chunks deleted."""
        deleted = self._delete_where("source", sources)
        ids = [f"s:{content_hash(source)}" for source in sources]
        with self._lock:
            for batch in _batches(ids, _BATCH):
                with self._errors("deleting source records"):
                    self._records.delete(ids=batch)
        return deleted

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        """Delete the documents' chunks; returns the number of chunks deleted."""
        return self._delete_where("document_id", document_ids)

    def _delete_where(self, key: str, values: Sequence[str]) -> int:
        self._client_required()
        deleted = 0
        with self._lock:
            for batch in _batches(list(dict.fromkeys(values)), _BATCH):
                ids = self._ids_where({key: {"$in": batch}})
                for id_batch in _batches(ids, _BATCH):
                    with self._errors(f"deleting chunks by {key}"):
                        self._chunks.delete(ids=id_batch)
                deleted += len(ids)
        return deleted

    # -- reading ---------------------------------------------------------------------------

    def search(self, vectors: Vectors, top_k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The ``top_k`` most similar chunks (cosine) for each query vector, best first.

        Chroma filters before it ranks, so a filtered search returns the best
        ``top_k`` among the matching chunks.
        """
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[1] != self._dimension:
            raise ConflictError(
                f"query vectors are {queries.shape[-1]}-dimensional; Chroma collection {self.collection!r} "
                f"holds {self._dimension}-dimensional ones"
            )
        where = to_chroma_where(filter) if filter is not None else None  # refuse before touching Chroma
        if top_k < 1 or len(queries) == 0:
            return [[] for _ in queries]
        self._client_required()
        if self.count() == 0:
            return [[] for _ in queries]
        results: list[list[Hit]] = []
        for start in range(0, len(queries), _BATCH):
            batch = queries[start : start + _BATCH]
            with self._errors("searching"):
                found = self._chunks.query(
                    query_embeddings=batch,
                    n_results=top_k,
                    where=where,
                    include=["documents", "metadatas", "distances"],
                )
            for ids, documents, metadatas, distances in zip(
                found["ids"], found["documents"], found["metadatas"], found["distances"], strict=True
            ):
                results.append(
                    [
                        Hit(row_to_chunk(i, text, meta), 1.0 - float(distance), "dense")
                        for i, text, meta, distance in zip(ids, documents, metadatas, distances, strict=True)
                    ]
                )
        return results

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the given order (unknown ids are left out)."""
        self._client_required()
        found: dict[str, Chunk] = {}
        for batch in _batches(list(dict.fromkeys(chunk_ids)), _BATCH):
            with self._errors("reading chunks"):
                rows = self._chunks.get(ids=batch, include=_INCLUDE)
            for i, text, meta in zip(rows["ids"], rows["documents"], rows["metadatas"], strict=True):
                found[i] = row_to_chunk(i, text, meta)
        return [found[i] for i in chunk_ids if i in found]

    def chunks_of_documents(self, document_ids: Sequence[str]) -> list[Chunk]:
        """Every chunk of these documents: by document in the order given, then by ``start``."""
        order = {doc_id: i for i, doc_id in enumerate(dict.fromkeys(document_ids))}
        chunks: list[Chunk] = []
        for batch in _batches(list(order), _BATCH):
            for page in self._chunks_where({"document_id": {"$in": batch}}, _BATCH):
                chunks.extend(page)
        chunks.sort(key=lambda c: (order[c.document_id], c.start, c.end, c.id))
        return chunks

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[list[Chunk]]:
        """Every chunk stored when iteration starts, in batches.

        The ids are read first and the chunks fetched by id, so writes while
        iterating neither skip nor repeat a chunk (Chroma pages only by
        offset): a chunk deleted meanwhile is left out, one added is not seen.
        """
        size = max(1, batch_size)
        ids = [i for rows in self._pages(self._chunks, None, [], _BATCH) for i in rows["ids"]]
        for start in range(0, len(ids), size):
            with self._errors("reading"):
                rows = self._chunks.get(ids=ids[start : start + size], include=_INCLUDE)
            found = {
                i: row_to_chunk(i, text, meta)
                for i, text, meta in zip(rows["ids"], rows["documents"], rows["metadatas"], strict=True)
            }
            batch = [found[i] for i in ids[start : start + size] if i in found]
            if batch:
                yield batch

    def count(self) -> int:
        """Number of stored chunks."""
        self._client_required()
        with self._errors("counting chunks"):
            return int(self._chunks.count())

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
            "where": self.where,
            "collection": self.collection,
            "ef_search": self.ef_search,
        }

    # -- Chroma helpers --------------------------------------------------------------------

    def _read_fields(self) -> set[str]:
        names: set[str] = set()
        for rows in self._pages(self._records, {"kind": {"$eq": "field"}}, ["metadatas"], _BATCH):
            names.update(str(meta["name"]) for meta in rows["metadatas"])
        return names

    def _chunks_where(self, where: dict[str, Any] | None, batch_size: int) -> Iterator[list[Chunk]]:
        for rows in self._pages(self._chunks, where, _INCLUDE, batch_size):
            yield [
                row_to_chunk(i, text, meta)
                for i, text, meta in zip(rows["ids"], rows["documents"], rows["metadatas"], strict=True)
            ]

    def _ids_where(self, where: dict[str, Any]) -> list[str]:
        return [i for rows in self._pages(self._chunks, where, [], _BATCH) for i in rows["ids"]]

    def _pages(
        self, collection: Any, where: dict[str, Any] | None, include: list[str], size: int
    ) -> Iterator[dict[str, Any]]:
        """``collection.get`` in pages of at most ``size`` rows (by offset: do not write while paging)."""
        self._client_required()
        offset = 0
        while True:
            with self._errors("reading"):
                rows = collection.get(where=where, include=include, limit=size, offset=offset)
            if not rows["ids"]:
                return
            yield rows
            if len(rows["ids"]) < size:
                return
            offset += len(rows["ids"])

    def _client_required(self) -> None:
        if self._client is None:
            raise StorageError(f"Chroma store {self.collection!r} ({self.where}) is closed")

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn chromadb's errors into ragkit errors that say where and what was being done."""
        try:
            yield
        except RagkitError:
            raise
        except Exception as exc:
            raise self._wrap(exc, action) from exc

    def _wrap(self, exc: Exception, action: str) -> RagkitError:
        message = str(exc) or type(exc).__name__
        lowered = message.lower()
        lost = {"TransportError", "ConnectionError", "TimeoutException"} & {k.__name__ for k in type(exc).__mro__}
        if lost or "could not connect" in lowered:
            return UnavailableError(f"{self.where} is unavailable ({action}): {message}")
        if "dimension" in lowered:
            return ConflictError(f"{self.where}: {action} failed: {message}")
        if isinstance(exc, ValueError) and "metadata" in lowered:
            return InputError(f"{self.where}: {action} failed: {message}")
        return StorageError(f"{self.where}: {action} failed: {message}")


# -- module helpers --------------------------------------------------------------------------


def collection_name_for(name: str) -> str:
    """The Chroma collection name for a ragkit collection called ``name``.

    ``ragkit-`` plus the name with every character Chroma refuses replaced by
    ``_``; when anything was replaced (or the name is long) a short hash of
    the original keeps distinct names distinct.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._-")
    base = f"ragkit-{cleaned}" if cleaned else "ragkit"
    if cleaned != name or len(base) > 200:
        base = f"{base[:200]}-{content_hash(name)[:8]}"
    return base


def _batches(values: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


__all__ = ["ChromaStore", "collection_name_for"]
