"""A ragkit vector store in a Pinecone index, through the official ``pinecone`` client."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.errors import ConfigError, ConflictError, InputError, NotFoundError, StorageError
from ragkit.filters import Filter
from ragkit.protocols import Vectors
from ragkit.schema import Chunk, Hit, SourceRecord
from ragkit.stores.base import StoreBase
from ragkit_pinecone import records as rec
from ragkit_pinecone.client import PineconeIndexClient
from ragkit_pinecone.filters import to_pinecone_filter

log = logging.getLogger(__name__)

METRICS = ("cosine", "dotproduct", "euclidean")
MAX_TOP_K = 10_000
"""The most hits one query returns (Pinecone's ``topK`` ceiling)."""
TOP_K_WITH_METADATA = 1000
"""Pinecone returns metadata with at most this many matches; past it, ids come first, then a fetch."""
UPSERT_BYTES = 1_800_000
"""Upsert requests stay under Pinecone's 2 MB request limit."""
FETCH_BATCH = 100
_NAME_RULE = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")


class PineconeStore(StoreBase):
    """Chunks and vectors in a Pinecone index (one namespace per collection), with ragkit filters.

    ``index``: the Pinecone index (default ``ragkit``), created when missing
    if ``create`` (with the collection's dimension, ``metric``, ``cloud`` and
    ``region``). ``namespace``: where this collection's chunks live (default:
    the collection's name), so several collections share one index. The API
    key comes from ``api_key`` (never saved in a config) or the environment
    variable ``api_key_env`` (``PINECONE_API_KEY``). ``host`` overrides the
    control plane's URL (else ``PINECONE_CONTROLLER_HOST``, else Pinecone's);
    ``index_host`` talks to an index's data plane directly, skipping the
    control plane. ``batch_size`` vectors go in one upsert request.

    Pinecone applies writes asynchronously: a read straight after a write may
    not see it yet (see ``docs/pinecone.md``).
    """

    role = "store"
    component_type = "pinecone"
    capabilities = frozenset({"drop", "stats", "chunks_of_documents"})
    unsaved_options = ("api_key",)

    def __init__(
        self,
        path: str | Path,
        dimension: int,
        name: str = "",
        index: str = "ragkit",
        namespace: str | None = None,
        api_key: str | None = None,
        api_key_env: str = "PINECONE_API_KEY",
        host: str | None = None,
        index_host: str | None = None,
        create: bool = True,
        metric: str = "cosine",
        cloud: str = "aws",
        region: str = "us-east-1",
        batch_size: int = 100,
        timeout: float = 30.0,
        retries: int = 3,
    ) -> None:
        where = "store 'pinecone'"
        if dimension < 1:
            raise ConfigError(f"{where}: dimension must be positive, got {dimension}")
        if not _NAME_RULE.fullmatch(index):
            raise ConfigError(
                f"{where}: index {index!r} is not a valid Pinecone index name (lower-case letters, digits and "
                "hyphens, starting and ending with a letter or digit, at most 45 characters)"
            )
        if metric not in METRICS:
            raise ConfigError(f"{where}: metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if not 1 <= batch_size <= 1000:
            raise ConfigError(f"{where}: batch_size must be between 1 and 1000 (Pinecone's limit), got {batch_size}")
        if timeout <= 0 or retries < 0:
            raise ConfigError(f"{where}: timeout must be positive and retries not negative")
        key = api_key or os.environ.get(api_key_env, "")
        if not key:
            raise ConfigError(f"{where}: no API key: set the environment variable {api_key_env} (api_key_env)")
        self.path = Path(path)
        self.name = name
        self._dimension = dimension
        self.index = index
        self.namespace = namespace if namespace is not None else namespace_for(name)
        if not self.namespace.isascii() or "\x00" in self.namespace or len(self.namespace) > 480:
            raise ConfigError(
                f"{where}: namespace {self.namespace!r} must be ASCII, without NUL, at most 480 characters"
            )
        self.book = f"{self.namespace or '__default__'}:ragkit-book"
        self.metric = metric
        self.batch_size = batch_size
        self._lock = threading.RLock()
        self._known_fields: set[str] = set()
        self._client: PineconeIndexClient | None = PineconeIndexClient(
            api_key=key, index=index, host=host, index_host=index_host, timeout=timeout, retries=retries
        )
        self.where = f"Pinecone index {index!r}, namespace {self.namespace!r}"
        try:
            found = self._client.open(create=create, dimension=dimension, metric=metric, cloud=cloud, region=region)
        except BaseException:
            self.close()
            raise
        if found is not None:
            held, held_metric = found
            if held != dimension:
                self.close()
                raise ConflictError(
                    f"Pinecone index {index!r} holds {held}-dimensional vectors; "
                    f"this store needs {dimension}-dimensional ones"
                )
            self.metric = held_metric

    @property
    def dimension(self) -> int:
        """Vector length the store holds."""
        return self._dimension

    def _pc(self) -> PineconeIndexClient:
        if self._client is None:
            raise StorageError(f"Pinecone store ({self.where}) is closed")
        return self._client

    # -- lifecycle --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Nothing to do: every write is a request Pinecone has accepted when it returns."""

    def close(self) -> None:
        """Close the HTTP connections (the data stays in Pinecone)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def drop(self) -> None:
        """Delete this collection's namespace and its book (the index, which others may share, stays)."""
        client = self._pc()
        for namespace in (self.namespace, self.book):
            # asked even when stats say it is empty (they lag writes); a namespace that
            # holds nothing does not exist, and the service answers 404
            with suppress(NotFoundError):
                client.delete(namespace, everything=True)
        self.close()

    # -- writes -----------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or replace chunks by id, ``batch_size`` per request (and under 2 MB)."""
        matrix = self.check_vectors(chunks, vectors, self.where)
        if not chunks:
            return
        client = self._pc()
        items = [
            {"id": rec.record_id(chunk.id), "values": row.tolist(), "metadata": rec.chunk_metadata(chunk)}
            for chunk, row in zip(chunks, matrix, strict=True)
        ]
        if not np.all(np.isfinite(matrix)):
            raise InputError(f"{self.where}: vectors must be finite numbers (NaN or infinity found)")
        for batch in rec.sized_batches(items, self.batch_size, UPSERT_BYTES):
            client.upsert(batch, self.namespace)
        self._note_fields({key for chunk in chunks for key in chunk.metadata})

    def _note_fields(self, names: set[str]) -> None:
        new = names - self._known_fields
        if not new:
            return
        placeholder = self._placeholder()
        items = [{"id": rec.field_id(n), "values": placeholder, "metadata": {"kind": "field", "name": n}} for n in new]
        for batch in rec.sized_batches(items, self.batch_size, UPSERT_BYTES):
            self._pc().upsert(batch, self.book)
        with self._lock:
            self._known_fields |= new

    def _placeholder(self) -> list[float]:
        return [1.0] + [0.0] * (self._dimension - 1)

    def commit_sources(self, records: Sequence[SourceRecord]) -> None:
        """Delete each source's chunks the latest ingest did not produce, then save its record."""
        client = self._pc()
        for record in records:
            keep = {rec.record_id(i) for i in record.chunk_ids}
            stale = [i for i in self._ids_where({"source": {"$eq": record.source}}) if i not in keep]
            for batch in rec.batches(stale, 1000):
                client.delete(self.namespace, ids=batch)
            self._write_record(record)

    def _write_record(self, record: SourceRecord) -> None:
        client = self._pc()
        stem = rec.source_key(record.source)
        old_head = client.fetch([f"{stem}:0"], self.book).get(f"{stem}:0")
        old_parts = int(json.loads(old_head["data"]).get("parts", 1)) if old_head else 0
        parts = rec.source_parts(record)
        placeholder = self._placeholder()
        items = [{"id": key, "values": placeholder, "metadata": metadata} for key, metadata in parts]
        for batch in rec.sized_batches(items[1:], self.batch_size, UPSERT_BYTES):
            client.upsert(batch, self.book)
        client.upsert(items[:1], self.book)  # the head, which says how many parts there are, goes last
        leftovers = [f"{stem}:{n}" for n in range(len(parts), old_parts)]
        for id_batch in rec.batches(leftovers, 1000):
            client.delete(self.book, ids=id_batch)

    def sources(self) -> dict[str, SourceRecord]:
        """Every committed source record, by source."""
        found: dict[str, dict[str, Any]] = {}
        for page in self._pc().fetch_by_metadata({"kind": {"$eq": "source"}}, self.book, 1000):
            found.update(page)
        records, torn = rec.assemble_sources(found)
        for source in torn:
            log.warning("source record of %r in %s is incomplete; it will be ingested again", source, self.where)
        return records

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete the sources' chunks and records; returns the number of chunks deleted."""
        deleted = self._delete_where("source", sources)
        client = self._pc()
        for source in dict.fromkeys(sources):
            stem = rec.source_key(source)
            ids = [i for page in client.list_ids(self.book, prefix=stem + ":") for i in page]
            for batch in rec.batches(ids, 1000):
                client.delete(self.book, ids=batch)
        return deleted

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        """Delete the documents' chunks; returns the number of chunks deleted."""
        return self._delete_where("document_id", document_ids)

    def _delete_where(self, field: str, values: Sequence[str]) -> int:
        client = self._pc()
        deleted = 0
        for batch in rec.batches(list(dict.fromkeys(values)), 100):
            ids = self._ids_where({field: {"$in": batch}})
            for id_batch in rec.batches(ids, 1000):
                client.delete(self.namespace, ids=id_batch)
            deleted += len(ids)
        return deleted

    def _ids_where(self, flt: dict[str, Any]) -> list[str]:
        return [key for page in self._pc().fetch_by_metadata(flt, self.namespace, 1000) for key in page]

    # -- reads ------------------------------------------------------------------------------------

    def search(self, vectors: Vectors, top_k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The ``top_k`` (at most 10,000) nearest chunks for each query vector, best first.

        Scores are Pinecone's, bigger meaning nearer: cosine similarity (the
        default metric), dot product, or the squared Euclidean distance
        negated. Pinecone filters before it ranks, so a filtered search
        returns the best ``top_k`` matching chunks.
        """
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if queries.ndim != 2 or queries.shape[1] != self._dimension:
            raise ConflictError(
                f"query vectors are {queries.shape[-1]}-dimensional; {self.where} holds "
                f"{self._dimension}-dimensional ones"
            )
        if top_k < 1 or len(queries) == 0:
            return [[] for _ in queries]
        flt = to_pinecone_filter(filter) if filter is not None else None
        limit = min(top_k, MAX_TOP_K)
        with_metadata = limit <= TOP_K_WITH_METADATA
        client = self._pc()
        sign = -1.0 if self.metric == "euclidean" else 1.0  # a distance: smaller is nearer
        results: list[list[Hit]] = []
        for query in queries:
            matches = client.query(query.tolist(), limit, self.namespace, flt, with_metadata)
            if not with_metadata:
                fetched = self._fetch_metadata([key for key, _, _ in matches])
                matches = [(key, score, fetched.get(key)) for key, score, _ in matches]
            hits = []
            for _, score, metadata in matches:
                chunk = rec.metadata_chunk(metadata or {})
                if chunk is not None:  # a record ragkit did not write, or deleted since the query
                    hits.append(Hit(chunk, sign * score, "dense"))
            results.append(hits)
        return results

    def _fetch_metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        client = self._pc()
        found: dict[str, dict[str, Any]] = {}
        for batch in rec.batches(list(dict.fromkeys(ids)), FETCH_BATCH):
            found.update(client.fetch(batch, self.namespace))
        return found

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the given order (unknown ids are left out)."""
        found = self._fetch_metadata([rec.record_id(i) for i in chunk_ids])
        chunks = []
        for chunk_id in chunk_ids:
            chunk = rec.metadata_chunk(found.get(rec.record_id(chunk_id), {}))
            if chunk is not None and chunk.id == chunk_id:
                chunks.append(chunk)
        return chunks

    def chunks_of_documents(self, document_ids: Sequence[str]) -> list[Chunk]:
        """Every chunk of these documents: by document in the order given, then by ``start``."""
        order = {doc_id: i for i, doc_id in enumerate(dict.fromkeys(document_ids))}
        chunks: list[Chunk] = []
        for batch in rec.batches(list(order), 100):
            for page in self._pc().fetch_by_metadata({"document_id": {"$in": batch}}, self.namespace, 1000):
                chunks.extend(c for c in map(rec.metadata_chunk, page.values()) if c is not None)
        chunks.sort(key=lambda c: (order[c.document_id], c.start, c.end, c.id))
        return chunks

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[list[Chunk]]:
        """Every stored chunk, in batches of at most ``batch_size``."""
        client = self._pc()
        pending: list[Chunk] = []
        for ids in client.list_ids(self.namespace):
            found = self._fetch_metadata(ids)
            pending.extend(c for c in (rec.metadata_chunk(found.get(i, {})) for i in ids) if c is not None)
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending

    def count(self) -> int:
        """Number of stored chunks (Pinecone's stats, which lag writes by a little)."""
        return self._namespace_count(self.namespace)

    def _namespace_count(self, namespace: str) -> int:
        counts, _ = self._pc().namespace_counts()
        return counts.get(namespace or "__default__", counts.get(namespace, 0))

    def metadata_fields(self) -> set[str]:
        """Metadata field names seen on stored chunks (by any writer), plus ``source`` and ``document_id``."""
        names: set[str] = set()
        for page in self._pc().fetch_by_metadata({"kind": {"$eq": "field"}}, self.book, 1000):
            names.update(str(entry["name"]) for entry in page.values() if "name" in entry)
        with self._lock:
            self._known_fields |= names
        return names | {"source", "document_id"}

    def stats(self) -> dict[str, Any]:
        """Counts and where the vectors live, for ``collections show``."""
        return {
            "chunks": self.count(),
            "sources": len(self.sources()),
            "index": self.index,
            "namespace": self.namespace,
            "metric": self.metric,
        }


def namespace_for(name: str) -> str:
    """The default namespace of a ragkit collection called ``name``: the name, or a hash if Pinecone refuses it."""
    if name and name.isascii() and "\x00" not in name and len(name) <= 200:
        return name
    return "ragkit-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
