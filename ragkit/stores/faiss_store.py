"""The embedded default vector store: FAISS for vectors, SQLite for everything else.

SQLite (``store.sqlite`` in the collection folder) is the source of truth: it
holds every chunk, its metadata, its vector and the source records, and each
write is one transaction. The FAISS index (``vectors.faiss``) is a derived,
in-memory structure saved by :meth:`FaissStore.flush` together with the
database generation it reflects; when the two disagree on open (a crash
between a write and a flush) the index is rebuilt from SQLite. So a crash
mid-ingest always leaves the last committed state readable.

Index kinds: ``flat`` (exact inner product), ``ivf`` (inverted lists, trained
on the stored vectors) and ``hnsw`` (graph); ``auto`` is exact below
``approximate_threshold`` vectors and IVF above it.

Device: ``auto`` (default) also searches a GPU copy of the index where faiss
reports a GPU (the ``gpu`` extra); ``cpu`` never does; ``cuda`` requires one.
See :mod:`ragkit.stores.faiss_gpu`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.errors import ConfigError, ConflictError, StorageError
from ragkit.filters import Filter, check_kinds
from ragkit.protocols import Vectors
from ragkit.registry import register
from ragkit.schema import Chunk, Hit, SourceRecord
from ragkit.sqlite_wal import connect_wal
from ragkit.stores.base import StoreBase
from ragkit.stores.columns import MetadataColumns
from ragkit.stores.faiss_gpu import (
    GPU_MAX_K,
    GPU_MIN_VECTORS,
    FaissGpu,
    GpuBackend,
    GpuMirror,
    build_mirror,
    check_device,
    choose_device,
)
from ragkit.stores.files import fsync_file, writable

log = logging.getLogger(__name__)

INDEX_KINDS = ("auto", "flat", "ivf", "hnsw")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    source TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document ON chunks(document_id);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL,
    document_ids TEXT NOT NULL,
    chunk_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fields (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_CHUNK_COLUMNS = 'rowid, id, document_id, source, text, start, "end", content_hash, metadata'
_BUILTIN_FIELDS = {"source", "document_id"}
_MIN_POINTS_PER_LIST = 39
"""FAISS's own minimum of training points per inverted list."""
_RETRAIN_GROWTH = 4
"""An IVF index is retrained once the collection grows this many times past its training size."""


@register("store", "faiss")
class FaissStore(StoreBase):
    """FAISS vectors plus a SQLite document store, in one folder."""

    capabilities = frozenset({"stats", "chunks_of_documents", "refresh"})
    unsaved_options = ("read_only", "gpu_backend")  # how this process opens the folder, not a property of the store

    def __init__(
        self,
        path: str | Path,
        dimension: int,
        name: str = "",
        index: str = "auto",
        approximate_threshold: int = 100_000,
        nlist: int | None = None,
        nprobe: int = 48,
        hnsw_m: int = 32,
        ef_search: int = 96,
        exact_filter_limit: int = 50_000,
        read_only: bool = False,
        device: str = "auto",
        gpu_min_vectors: int = GPU_MIN_VECTORS,
        *,
        gpu_backend: GpuBackend | None = None,
    ) -> None:
        check_device(device)
        if index not in INDEX_KINDS:
            raise ConfigError(f"store 'faiss': index must be one of {', '.join(INDEX_KINDS)}, got {index!r}")
        if dimension < 1:
            raise ConfigError(f"store 'faiss': dimension must be positive, got {dimension}")
        for option, value in (
            ("approximate_threshold", approximate_threshold),
            ("nprobe", nprobe),
            ("hnsw_m", hnsw_m),
            ("ef_search", ef_search),
            ("exact_filter_limit", exact_filter_limit),
            ("gpu_min_vectors", gpu_min_vectors),
        ):
            if value < 1:
                raise ConfigError(f"store 'faiss': {option} must be positive, got {value}")
        if nlist is not None and nlist < 1:
            raise ConfigError(f"store 'faiss': nlist must be positive, got {nlist}")
        self.path = Path(path)
        self._dimension = dimension
        self.name = name
        self.index_kind = index
        self.approximate_threshold = approximate_threshold
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.exact_filter_limit = exact_filter_limit
        self._lock = threading.RLock()
        self._local = threading.local()
        self._index: Any = None
        self._active_kind = "flat"
        self._tombstones: set[int] = set()
        self._trained_count = 0
        self._count: int | None = None  # cached COUNT(*): a full scan at a million rows
        self._columns: MetadataColumns | None = None  # built on the first filtered search
        self._dirty = False
        self._index_generation = -1  # the database generation the in-memory index (and caches) reflect
        self.read_only = read_only or not writable(self.path)
        self._db_path = self.path / "store.sqlite"
        self._connections: list[sqlite3.Connection] = []
        self.device = device
        self.gpu_min_vectors = gpu_min_vectors
        self._gpu_backend = gpu_backend
        self._gpu_mirror: GpuMirror | None = None
        self._gpu_stale = True
        self.search_device = self._choose_search_device()
        self._open()

    # -- config ----------------------------------------------------------------

    @property
    def dimension(self) -> int:
        """Vector length the store holds."""
        return self._dimension

    def _choose_search_device(self) -> str:
        """``cpu`` or ``cuda``, by :func:`ragkit.stores.faiss_gpu.choose_device`."""
        if self.device == "cpu":
            return "cpu"
        if self._gpu_backend is None:
            import faiss

            self._gpu_backend = FaissGpu(faiss)
        return choose_device(self.device, self._gpu_backend.num_gpus())

    # -- opening -----------------------------------------------------------------

    def _open(self) -> None:
        if not self.read_only:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create store folder {self.path}: {exc.strerror}") from None
        elif not self._db_path.exists():
            raise StorageError(f"store folder {self.path} is read-only and holds no store yet")
        db = self._connection()
        if not self.read_only:
            try:
                db.executescript(_SCHEMA)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot initialise {self._db_path}: {exc}") from None
            if db.execute("SELECT value FROM state WHERE key = 'dimension'").fetchone() is None:
                with self._write() as conn:
                    conn.execute("INSERT OR IGNORE INTO state VALUES ('dimension', ?)", (str(self._dimension),))
                    conn.execute("INSERT OR IGNORE INTO state VALUES ('generation', '0')")
        stored = db.execute("SELECT value FROM state WHERE key = 'dimension'").fetchone()
        if stored is not None and int(stored[0]) != self._dimension:
            raise ConflictError(
                f"store at {self.path} holds {stored[0]}-dimensional vectors, "
                f"but the embedder makes {self._dimension}-dimensional ones"
            )
        self._load_index()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                if self.read_only:
                    uri = f"file:{self._db_path}?mode=ro&immutable=1"
                    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
                else:
                    conn = connect_wal(self._db_path)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {self._db_path}: {exc}") from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _write(self) -> _WriteTransaction:
        if self.read_only:
            raise StorageError(f"store folder {self.path} is read-only: cannot write")
        return _WriteTransaction(self)

    def _generation(self) -> int:
        row = self._connection().execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    # -- the FAISS index -------------------------------------------------------------

    def _index_files(self) -> tuple[Path, Path]:
        return self.path / "vectors.faiss", self.path / "vectors.json"

    def _load_index(self) -> None:
        import faiss

        index_file, meta_file = self._index_files()
        generation = self._generation()
        self._index_generation = generation
        count = self.count()
        try:
            meta = json.loads(meta_file.read_text())
            if meta.get("generation") == generation and meta.get("count") == count:
                self._index = faiss.read_index(str(index_file))
                self._gpu_stale = True
                self._active_kind = meta["kind"]
                self._tombstones = set(meta.get("tombstones", []))
                self._trained_count = int(meta.get("trained_count", 0))
                if self._index.ntotal - len(self._tombstones) == count:
                    self._configure_search()
                    return
            log.warning("vector index in %s is behind the database; rebuilding it", self.path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("vector index in %s is unreadable (%s); rebuilding it", self.path, exc)
        self._rebuild_index()

    def refresh(self) -> bool:
        """Catch up with writes another process committed (a CLI ingest beside a running server).

        Compares the database generation with the one the in-memory index
        reflects (one small query); when they differ, reloads the index (from
        the saved file when it matches the database, else rebuilt from SQLite)
        and drops the cached count and filter columns. Returns whether it did.
        """
        with self._lock:
            if self._generation() == self._index_generation:
                return False
            log.info("store %s changed on disk (another writer): reloading its vector index", self.path)
            self._count = None
            self._columns = None
            self._load_index()
            return True

    def _wanted_kind(self, count: int) -> str:
        kind = self.index_kind
        if kind == "auto":
            kind = "ivf" if count >= self.approximate_threshold else "flat"
        if kind == "ivf" and count < _MIN_POINTS_PER_LIST * self._nlist_for(count):
            return "flat"  # too few vectors to train the inverted lists yet: stay exact
        return kind

    def _nlist_for(self, count: int) -> int:
        return self.nlist or max(1, int(math.sqrt(count)))

    def _rebuild_index(self) -> None:
        """Build the index from the vectors in SQLite (the source of truth)."""
        count = self.count()
        kind = self._wanted_kind(count)
        ids, vectors = self._all_vectors()
        self._index = self._new_index(kind, vectors)
        self._gpu_stale = True
        self._active_kind = kind
        self._tombstones = set()
        if len(ids):
            self._index.add_with_ids(vectors, ids)
        self._configure_search()
        self._dirty = True

    def _all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        count = self.count()
        ids = np.empty(count, dtype=np.int64)
        vectors = np.empty((count, self._dimension), dtype=np.float32)
        cursor = self._connection().execute("SELECT rowid, vector FROM chunks ORDER BY rowid")
        filled = 0
        while rows := cursor.fetchmany(10_000):
            for rowid, blob in rows:
                ids[filled] = rowid
                vectors[filled] = np.frombuffer(blob, dtype=np.float32)
                filled += 1
        return ids[:filled], vectors[:filled]

    def _new_index(self, kind: str, sample: np.ndarray) -> Any:
        import faiss

        d = self._dimension
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        if kind == "hnsw":
            return faiss.IndexIDMap2(faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT))
        nlist = self._nlist_for(len(sample))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        self._trained_count = len(sample)
        rng = np.random.default_rng(0)
        train = sample if len(sample) <= nlist * 64 else sample[rng.choice(len(sample), nlist * 64, replace=False)]
        index.train(np.ascontiguousarray(train))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # allows remove_ids and reconstruct
        return index

    def _configure_search(self) -> None:
        import faiss

        inner = faiss.downcast_index(self._index.index) if hasattr(self._index, "index") else self._index
        if isinstance(inner, faiss.IndexHNSWFlat):
            inner.hnsw.efSearch = self.ef_search
        if isinstance(self._index, faiss.IndexIVF):
            self._index.nprobe = self.nprobe

    def _index_add(self, rowids: np.ndarray, vectors: np.ndarray) -> None:
        count = self.count()
        outgrown = self._active_kind == "ivf" and count > _RETRAIN_GROWTH * max(self._trained_count, 1)
        if outgrown or (self._active_kind == "flat" and self._wanted_kind(count) != "flat"):
            self._rebuild_index()  # switch to (or retrain) the approximate index from the stored vectors
            return
        self._index.add_with_ids(vectors, rowids)
        with self._lock:  # a GPU index is not safe to add to while a search runs on it
            if self._gpu_mirror is None or not self._gpu_mirror.add(rowids, vectors):
                self._gpu_stale = True  # no copy yet (it may now pass gpu_min_vectors), or CAGRA: rebuild it
        self._dirty = True

    def _index_remove(self, rowids: Sequence[int]) -> None:
        if not len(rowids):
            return
        import faiss

        if self._columns is not None:
            self._columns.remove(rowids)
        if self._active_kind == "hnsw":  # HNSW cannot remove: hide the ids until the next rebuild
            self._tombstones.update(int(r) for r in rowids)
        else:
            ids = np.ascontiguousarray(rowids, dtype=np.int64)
            # an IVF index with a hashtable direct map only removes by IDSelectorArray
            selector = faiss.IDSelectorArray(len(ids), faiss.swig_ptr(ids))
            self._index.remove_ids(selector)
        self._gpu_stale = True  # GPU indexes cannot remove ids: the mirror is cloned again on the next search
        self._dirty = True

    # -- writing -------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or replace ``chunks`` (by id), each with its vector."""
        vectors = self.check_vectors(chunks, vectors, f"store at {self.path}")
        if not chunks:
            return
        with self._lock, self._write() as conn:
            replaced = _rowids_for(conn, "id", [c.id for c in chunks])
            if replaced:
                conn.executemany("DELETE FROM chunks WHERE rowid = ?", [(r,) for r in replaced])
            # rowids above any ever used (never reuse one: HNSW may still hide it as deleted)
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
            first = (int(row[0]) if row else 0) + 1
            new_rowids = np.arange(first, first + len(chunks), dtype=np.int64)
            fields: set[str] = set()
            for chunk in chunks:
                fields.update(chunk.metadata)
            conn.executemany(
                "INSERT INTO chunks"
                ' (rowid, id, document_id, source, text, start, "end", content_hash, metadata, vector)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        int(rowid),
                        c.id,
                        c.document_id,
                        c.source,
                        c.text,
                        c.start,
                        c.end,
                        c.content_hash,
                        json.dumps(c.metadata, default=str),
                        vector.tobytes(),
                    )
                    for rowid, c, vector in zip(new_rowids, chunks, vectors, strict=True)
                ],
            )
            conn.executemany("INSERT OR IGNORE INTO fields VALUES (?)", [(f,) for f in fields])
        self._index_remove(replaced)
        self._index_add(new_rowids, vectors)
        if self._columns is not None:
            self._columns.append(new_rowids.tolist(), (_filter_fields(c) for c in chunks))

    def commit_sources(self, records: Sequence[SourceRecord]) -> None:
        """Save source records, deleting each source's chunks that the latest ingest did not produce."""
        if not records:
            return
        removed: list[int] = []
        with self._lock, self._write() as conn:
            for record in records:
                keep = set(record.chunk_ids)
                stale = [
                    rowid
                    for rowid, chunk_id in conn.execute(
                        "SELECT rowid, id FROM chunks WHERE source = ?", (record.source,)
                    )
                    if chunk_id not in keep
                ]
                conn.executemany("DELETE FROM chunks WHERE rowid = ?", [(r,) for r in stale])
                removed.extend(stale)
                conn.execute(
                    "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.source,
                        record.content_hash,
                        record.size,
                        record.mtime,
                        json.dumps(record.document_ids),
                        record.chunk_count,
                    ),
                )
        self._index_remove(removed)

    def sources(self) -> dict[str, SourceRecord]:
        """Every committed source record, by source."""
        rows = self._connection().execute(
            "SELECT source, content_hash, size, mtime, document_ids, chunk_count FROM sources"
        )
        return {row[0]: SourceRecord(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5]) for row in rows}

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete the sources' chunks and records; returns the number of chunks deleted."""
        with self._lock, self._write() as conn:
            rowids = _rowids_for(conn, "source", sources)
            conn.executemany("DELETE FROM chunks WHERE rowid = ?", [(r,) for r in rowids])
            conn.executemany("DELETE FROM sources WHERE source = ?", [(s,) for s in sources])
        self._index_remove(rowids)
        return len(rowids)

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        """Delete the documents' chunks; returns the number of chunks deleted."""
        with self._lock, self._write() as conn:
            rowids = _rowids_for(conn, "document_id", document_ids)
            conn.executemany("DELETE FROM chunks WHERE rowid = ?", [(r,) for r in rowids])
        self._index_remove(rowids)
        return len(rowids)

    def flush(self) -> None:
        """Save the FAISS index atomically, stamped with the database generation it reflects."""
        with self._lock:
            if not self._dirty or self.read_only:
                return
            import faiss

            if self._active_kind == "hnsw" and len(self._tombstones) > 0.2 * max(self._index.ntotal, 1):
                self._rebuild_index()
            index_file, meta_file = self._index_files()
            meta = {
                "generation": self._generation(),
                "count": self.count(),
                "kind": self._active_kind,
                "tombstones": sorted(self._tombstones),
                "trained_count": self._trained_count,
            }
            try:
                tmp_index = index_file.with_suffix(".faiss.tmp")
                faiss.write_index(self._index, str(tmp_index))
                fsync_file(tmp_index)
                os.replace(tmp_index, index_file)
                tmp_meta = meta_file.with_suffix(".json.tmp")
                tmp_meta.write_text(json.dumps(meta))
                fsync_file(tmp_meta)
                os.replace(tmp_meta, meta_file)
            except (OSError, RuntimeError) as exc:
                raise StorageError(f"cannot save the vector index in {self.path}: {exc}") from None
            self._dirty = False

    def close(self) -> None:
        """Flush and close every connection."""
        self.flush()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._local = threading.local()

    # -- reading --------------------------------------------------------------------

    def search(self, vectors: Vectors, top_k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The ``top_k`` most similar chunks (cosine) for each query vector, best first."""
        queries = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if queries.shape[1] != self._dimension:
            raise ConflictError(
                f"query vectors are {queries.shape[1]}-dimensional; the store holds {self._dimension}-dimensional ones"
            )
        if top_k < 1 or self.count() == 0:
            return [[] for _ in queries]
        if filter is None:
            scores, ids = self._search_index(queries, top_k, None)
        else:
            allowed = self._filtered_rowids(filter)
            if len(allowed) == 0:
                return [[] for _ in queries]
            if len(allowed) <= self.exact_filter_limit:
                scores, ids = self._search_exact(queries, top_k, allowed)
            else:
                scores, ids = self._search_index(queries, top_k, allowed)
        return self._hits(scores, ids)

    def _search_index(self, queries: np.ndarray, top_k: int, allowed: np.ndarray | None) -> tuple[Any, Any]:
        import faiss

        if allowed is None and top_k <= GPU_MAX_K:
            with self._lock:
                # the GPU copy holds only live vectors (HNSW's hidden ids included: it is built from SQLite)
                mirror = self._mirror()
                if mirror is not None:
                    return mirror.search(queries, top_k)
        selector: Any = None
        bitmap = None
        if allowed is not None:  # a bitmap over row ids: cheap to build and to test, even for many ids
            bits = np.zeros(int(allowed.max()) + 1, dtype=bool)
            bits[allowed] = True
            bitmap = np.packbits(bits, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bitmap))
        elif self._tombstones:
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.fromiter(self._tombstones, dtype=np.int64)))
        with self._lock:
            if selector is None:
                found: tuple[Any, Any] = self._index.search(queries, top_k)
                return found
            if self._active_kind == "ivf":
                params: Any = faiss.SearchParametersIVF()
                params.nprobe = self.nprobe
            else:
                params = faiss.SearchParameters()
            params.sel = selector
            found = self._index.search(queries, top_k, params=params)
            del bitmap  # the selector points into it until here
            return found

    def _mirror(self) -> GpuMirror | None:
        """The GPU copy of the index for unfiltered searches (``None`` on the CPU or for a small collection)."""
        if self.search_device != "cuda" or self._gpu_backend is None:
            return None
        if self._gpu_stale:
            import faiss

            self._gpu_mirror = None
            self._gpu_mirror = build_mirror(
                self._gpu_backend,
                self._index,
                self._active_kind,
                self._all_vectors,
                self.nprobe,
                faiss,
                min_vectors=self.gpu_min_vectors,
            )
            self._gpu_stale = False
        return self._gpu_mirror

    def _search_exact(self, queries: np.ndarray, top_k: int, allowed: np.ndarray) -> tuple[Any, Any]:
        """Exact search over just the allowed vectors (a selective filter)."""
        with self._lock:
            candidates = self._index.reconstruct_batch(allowed)
        scores = queries @ candidates.T
        k = min(top_k, len(allowed))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        return np.take_along_axis(top_scores, order, axis=1), allowed[np.take_along_axis(top, order, axis=1)]

    def _filtered_rowids(self, flt: Filter) -> np.ndarray:
        with self._lock:
            if self._columns is None:
                self._columns = self._load_columns()
            # a comparison that can never match its field's kind of value (page > "2" on numbers) is refused
            check_kinds(flt, self._columns.kinds(), f"collection {self.name!r}" if self.name else "the store")
            return self._columns.matching_rowids(flt)

    def _load_columns(self) -> MetadataColumns:
        columns = MetadataColumns()
        cursor = self._connection().execute("SELECT rowid, source, document_id, metadata FROM chunks ORDER BY rowid")
        while rows := cursor.fetchmany(10_000):
            columns.append(
                (row[0] for row in rows),
                ({**json.loads(row[3]), "source": row[1], "document_id": row[2]} for row in rows),
            )
        return columns

    def _hits(self, scores: np.ndarray, ids: np.ndarray) -> list[list[Hit]]:
        wanted = {int(i) for i in np.asarray(ids).ravel() if i >= 0}
        chunks = {row[0]: _row_to_chunk(row) for row in _select_in(self._connection(), _CHUNK_COLUMNS, "rowid", wanted)}
        results: list[list[Hit]] = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits = [
                Hit(chunks[int(i)], float(s), "dense")
                for s, i in zip(row_scores, row_ids, strict=True)
                if i >= 0 and int(i) in chunks
            ]
            results.append(hits)
        return results

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the given order (unknown ids are left out)."""
        found = {row[1]: _row_to_chunk(row) for row in _select_in(self._connection(), _CHUNK_COLUMNS, "id", chunk_ids)}
        return [found[i] for i in chunk_ids if i in found]

    def chunks_of_documents(self, document_ids: Sequence[str]) -> list[Chunk]:
        """Every chunk of these documents: by document in the order given, then by ``start``.

        One query on the ``document_id`` index (per 900 ids); unknown ids are left out.
        """
        order = {doc_id: i for i, doc_id in enumerate(dict.fromkeys(document_ids))}
        rows = _select_in(self._connection(), _CHUNK_COLUMNS, "document_id", order)
        chunks = [_row_to_chunk(row) for row in rows]
        chunks.sort(key=lambda c: (order[c.document_id], c.start, c.end, c.id))
        return chunks

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[list[Chunk]]:
        """Every stored chunk, in insertion order, in batches."""
        last = 0
        conn = self._connection()
        while True:
            rows = conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, batch_size)
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [_row_to_chunk(row) for row in rows]

    def count(self) -> int:
        """Number of stored chunks."""
        if self._count is None:
            row = self._connection().execute("SELECT COUNT(*) FROM chunks").fetchone()
            self._count = int(row[0])
        return self._count

    def metadata_fields(self) -> set[str]:
        """Metadata field names seen on stored chunks, plus ``source`` and ``document_id``."""
        names = {row[0] for row in self._connection().execute("SELECT name FROM fields")}
        return names | _BUILTIN_FIELDS

    def metadata_summary(self, examples: int = 5) -> dict[str, tuple[set[str], list[Any]]]:
        """Each filter field's kinds of value and a few of its values, from the in-memory columns (for self-query)."""
        with self._lock:
            if self._columns is None:
                self._columns = self._load_columns()
            return self._columns.summary(examples)

    def stats(self) -> dict[str, Any]:
        """Counts and index details, for ``collections show``."""
        return {
            "chunks": self.count(),
            "sources": len(self.sources()),
            "index": self._active_kind,
            "search_device": self.search_device,
            "gpu_index": self._gpu_mirror.type_name if self._gpu_mirror is not None else None,
            "index_vectors": int(self._index.ntotal) - len(self._tombstones),
            "disk_bytes": sum(f.stat().st_size for f in self.path.iterdir() if f.is_file()),
        }


class _WriteTransaction:
    """One SQLite transaction that also bumps the store's generation."""

    def __init__(self, store: FaissStore) -> None:
        self.store = store
        self.conn = store._connection()

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"cannot write to {self.store._db_path}: {exc}") from None
        row = self.conn.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
        self.before = int(row[0]) if row else None
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"write to {self.store._db_path} failed: {exc}") from exc
            return
        try:
            self.conn.execute("UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            self.conn.execute("COMMIT")
            self.store._count = None
            if self.before is not None and self.store._index_generation == self.before:
                # the in-memory index was current and this write updates it itself: it stays current;
                # after another process's write it stays behind, and refresh() reloads it
                self.store._index_generation = self.before + 1
        except sqlite3.Error as exc:
            self._rollback()
            raise StorageError(f"write to {self.store._db_path} failed: {exc}") from exc

    def _rollback(self) -> None:
        """Roll back, unless SQLite already did (a full disk ends the transaction itself)."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


def _filter_fields(chunk: Chunk) -> dict[str, Any]:
    return {**chunk.metadata, "source": chunk.source, "document_id": chunk.document_id}


def _row_to_chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(
        id=row[1],
        document_id=row[2],
        source=row[3],
        text=row[4],
        start=row[5],
        end=row[6],
        content_hash=row[7],
        metadata=json.loads(row[8]),
    )


def _select_in(conn: sqlite3.Connection, columns: str, key: str, values: Any) -> list[Any]:
    values = list(values)
    rows: list[Any] = []
    for i in range(0, len(values), 900):  # stay under SQLite's bound-parameter limit
        part = values[i : i + 900]
        placeholders = ",".join("?" * len(part))
        rows.extend(conn.execute(f"SELECT {columns} FROM chunks WHERE {key} IN ({placeholders})", part))
    return rows


def _rowids_for(conn: sqlite3.Connection, key: str, values: Sequence[str]) -> list[int]:
    return [row[0] for row in _select_in(conn, "rowid", key, values)]
