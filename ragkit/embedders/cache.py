"""An on-disk cache of embeddings, so unchanged text is never embedded twice.

Vectors are keyed by the embedder's :attr:`~ragkit.protocols.Embedder.fingerprint`
(which names the model and every option that changes the vectors) and the
content hash of the text. The store is one SQLite file in WAL mode, safe to
share between threads and processes.

The cache never fails an ingest: a corrupt file is moved aside and a fresh
one started, and a cache that cannot be read or written is logged and
skipped (the texts are simply embedded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.hashing import content_hash
from ragkit.protocols import Embedder, Preloadable, Vectors, counts_tokens
from ragkit.sqlite_wal import connect_wal

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_MAX_PARAMS = 900  # below SQLite's oldest limit on bound parameters (999)
_QUERY_NAMESPACE = "\x00query"


class EmbeddingCache:
    """Vectors by (fingerprint, text hash) in a SQLite file.

    Thread-safe (one connection behind a lock) and multi-process safe (WAL,
    busy timeout). Vectors are stored as float32 bytes.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._writable = True
        self._open()

    # -- connection -------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc):
                self._disable(f"cannot open {self.path}: {exc}")
                return
            logger.warning("embedding cache %s is corrupt (%s); starting a fresh one", self.path, exc)
            self._reset_file()
        except OSError as exc:
            self._disable(f"cannot create {self.path.parent}: {exc}")

    def _connect(self) -> sqlite3.Connection:
        conn = connect_wal(self.path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                logger.warning("embedding cache %s has schema %s; starting a fresh one", self.path, version)
                conn.execute("DROP TABLE IF EXISTS embeddings")
            _create_schema(conn)
            conn.execute("SELECT count(*) FROM (SELECT 1 FROM embeddings LIMIT 1)").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _reset_file(self) -> None:
        """Move a corrupt file aside and start an empty cache (or disable the cache)."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            if self.path.exists():
                self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._conn = self._connect()
            logger.warning("embedding cache: moved the corrupt file to %s", aside)
        except (OSError, sqlite3.Error) as exc:
            self._disable(f"cannot start a fresh cache at {self.path}: {exc}")

    def _disable(self, reason: str) -> None:
        logger.warning("embedding cache disabled: %s", reason)
        self._conn = None

    def _failed(self, action: str, exc: sqlite3.Error) -> None:
        if _is_corruption(exc):
            logger.warning("embedding cache %s is corrupt (%s while %s); starting a fresh one", self.path, exc, action)
            self._reset_file()
        elif isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc).lower():
            logger.warning("embedding cache %s lost its table (%s while %s); recreating it", self.path, exc, action)
            try:
                if self._conn is not None:
                    _create_schema(self._conn)
            except sqlite3.Error as again:
                self._disable(f"cannot recreate the table in {self.path}: {again}")
        elif isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).lower():
            if self._writable:
                logger.warning("embedding cache %s is read-only; new vectors are not cached", self.path)
            self._writable = False
        else:
            logger.warning("embedding cache %s: %s failed: %s", self.path, action, exc)

    @property
    def enabled(self) -> bool:
        """False when the cache file could not be opened (every lookup misses)."""
        return self._conn is not None

    # -- reads and writes -----------------------------------------------------------

    def get_many(self, fingerprint: str, text_hashes: Sequence[str]) -> list[np.ndarray | None]:
        """The cached vector of each hash (float32, 1-D), or ``None`` where there is none."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(text_hashes))
        with self._lock:
            if self._conn is None or not unique:
                return [None] * len(text_hashes)
            try:
                for start in range(0, len(unique), _MAX_PARAMS):
                    part = unique[start : start + _MAX_PARAMS]
                    marks = ",".join("?" * len(part))
                    sql = (
                        "SELECT text_hash, dim, vector FROM embeddings"
                        f" WHERE fingerprint = ? AND text_hash IN ({marks})"
                    )
                    rows = self._conn.execute(sql, (fingerprint, *part)).fetchall()
                    for text_hash, dim, blob in rows:
                        if isinstance(blob, bytes) and len(blob) == 4 * dim:
                            found[text_hash] = np.frombuffer(blob, dtype=np.float32)
            except sqlite3.Error as exc:
                self._failed("reading", exc)
                return [None] * len(text_hashes)
        return [found.get(h) for h in text_hashes]

    def put_many(self, fingerprint: str, text_hashes: Sequence[str], vectors: Vectors) -> None:
        """Store one vector per hash (replacing any already there)."""
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(text_hashes):
            raise ValueError(f"put_many: {len(text_hashes)} hashes but vectors of shape {matrix.shape}")
        dim = int(matrix.shape[1])
        rows = [(fingerprint, h, dim, matrix[i].tobytes()) for i, h in enumerate(text_hashes)]
        with self._lock:
            if self._conn is None or not self._writable or not rows:
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO embeddings (fingerprint, text_hash, dim, vector) VALUES (?, ?, ?, ?)",
                        rows,
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                self._failed("writing", exc)

    def count(self, fingerprint: str | None = None) -> int:
        """Number of cached vectors (of one fingerprint, or all)."""
        with self._lock:
            if self._conn is None:
                return 0
            try:
                if fingerprint is None:
                    return int(self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])
                return int(
                    self._conn.execute(
                        "SELECT count(*) FROM embeddings WHERE fingerprint = ?", (fingerprint,)
                    ).fetchone()[0]
                )
            except sqlite3.Error as exc:
                self._failed("counting", exc)
                return 0

    def clear(self, fingerprint: str | None = None) -> int:
        """Delete cached vectors (of one fingerprint, or all); returns how many."""
        with self._lock:
            if self._conn is None or not self._writable:
                return 0
            try:
                if fingerprint is None:
                    cursor = self._conn.execute("DELETE FROM embeddings")
                else:
                    cursor = self._conn.execute("DELETE FROM embeddings WHERE fingerprint = ?", (fingerprint,))
                return int(cursor.rowcount)
            except sqlite3.Error as exc:
                self._failed("clearing", exc)
                return 0

    def close(self) -> None:
        """Close the file (later lookups miss, later writes are dropped)."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS embeddings ("
        " fingerprint TEXT NOT NULL, text_hash TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,"
        " PRIMARY KEY (fingerprint, text_hash)) WITHOUT ROWID"
    )
    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


def _is_corruption(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "corrupt" in text or "file is encrypted" in text
    )


class CachedEmbedder:
    """An :class:`~ragkit.protocols.Embedder` that asks an :class:`EmbeddingCache` first.

    ``embed_documents`` looks all texts up in one query, sends only the
    misses to the inner embedder in one call (a text repeated within the
    batch is embedded once), stores them, and returns the vectors in input
    order. Queries are passed through unless ``cache_queries`` is true.

    Counters: :attr:`hits` counts distinct texts served from the cache,
    :attr:`misses` distinct texts sent to the inner embedder.

    When the inner embedder is also a :class:`~ragkit.protocols.TokenCounter`
    (has ``max_tokens`` and ``count_tokens``), so is the cached one.
    """

    def __new__(cls, embedder: Embedder, cache: EmbeddingCache, cache_queries: bool = False) -> CachedEmbedder:
        """A plain or a token-counting cached embedder, after what ``embedder`` can do."""
        if cls is CachedEmbedder and counts_tokens(embedder):
            cls = _CachedTokenCountingEmbedder
        return super().__new__(cls)

    def __init__(self, embedder: Embedder, cache: EmbeddingCache, cache_queries: bool = False) -> None:
        self.inner = embedder
        self.cache = cache
        self.cache_queries = cache_queries
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        """The inner embedder's dimension."""
        return self.inner.dimension

    @property
    def fingerprint(self) -> str:
        """The inner embedder's fingerprint (the cache changes no vector)."""
        return self.inner.fingerprint

    def to_config(self) -> dict[str, Any]:
        """The inner embedder's config (the cache is not part of it)."""
        to_config = getattr(self.inner, "to_config", None)
        if to_config is None:
            raise AttributeError(f"{type(self.inner).__name__} has no to_config")
        return dict(to_config())

    @property
    def model_name(self) -> str:
        """The inner embedder's model name (for messages), else its class name."""
        return str(getattr(self.inner, "model_name", None) or type(self.inner).__name__)

    @property
    def is_loaded(self) -> bool:
        """Whether the inner embedder's model is loaded (true for one that has nothing to load)."""
        return not isinstance(self.inner, Preloadable) or self.inner.is_loaded

    def load(self) -> None:
        """Load the inner embedder's model now, if it has one to load."""
        if isinstance(self.inner, Preloadable):
            self.inner.load()

    def reset_counters(self) -> None:
        """Set :attr:`hits` and :attr:`misses` back to zero."""
        with self._lock:
            self.hits = self.misses = 0

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, {self.cache!r})"

    # -- sync -------------------------------------------------------------------------

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors for passages: cached ones from the cache, the rest from the inner embedder."""
        texts = list(texts)
        if not _all_str(texts):
            return self.inner.embed_documents(texts)  # the inner embedder names the bad input
        plan = self._lookup(texts, self.fingerprint)
        if plan.missing_texts:
            self._store(plan, self.inner.embed_documents(plan.missing_texts))
        if plan.stale():
            self._store(plan.refresh(), self.inner.embed_documents(plan.missing_texts))
        return self._assemble(plan)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors for queries (cached only with ``cache_queries=True``)."""
        texts = list(texts)
        if not self.cache_queries or not _all_str(texts):
            return self.inner.embed_queries(texts)
        plan = self._lookup(texts, self.fingerprint + _QUERY_NAMESPACE)
        if plan.missing_texts:
            self._store(plan, self.inner.embed_queries(plan.missing_texts))
        if plan.stale():
            self._store(plan.refresh(), self.inner.embed_queries(plan.missing_texts))
        return self._assemble(plan)

    # -- async ------------------------------------------------------------------------

    async def aembed_documents(self, texts: Sequence[str]) -> Vectors:
        """Async twin: cache reads and writes in a worker thread, misses through the inner async method."""
        texts = list(texts)
        if not _all_str(texts):
            return await self.inner.aembed_documents(texts)
        plan = await asyncio.to_thread(self._lookup, texts, self.fingerprint)
        if plan.missing_texts:
            await asyncio.to_thread(self._store, plan, await self.inner.aembed_documents(plan.missing_texts))
        if plan.stale():
            plan.refresh()
            await asyncio.to_thread(self._store, plan, await self.inner.aembed_documents(plan.missing_texts))
        return self._assemble(plan)

    async def aembed_queries(self, texts: Sequence[str]) -> Vectors:
        """Async twin of :meth:`embed_queries`."""
        texts = list(texts)
        if not self.cache_queries or not _all_str(texts):
            return await self.inner.aembed_queries(texts)
        plan = await asyncio.to_thread(self._lookup, texts, self.fingerprint + _QUERY_NAMESPACE)
        if plan.missing_texts:
            await asyncio.to_thread(self._store, plan, await self.inner.aembed_queries(plan.missing_texts))
        if plan.stale():
            plan.refresh()
            await asyncio.to_thread(self._store, plan, await self.inner.aembed_queries(plan.missing_texts))
        return self._assemble(plan)

    # -- the plan -----------------------------------------------------------------------

    def _lookup(self, texts: list[str], key: str) -> _Plan:
        hashes = [content_hash(text) for text in texts]
        first_text: dict[str, str] = {}
        for text_hash, text in zip(hashes, texts, strict=True):
            first_text.setdefault(text_hash, text)
        unique = list(first_text)
        cached = self.cache.get_many(key, unique) if unique else []
        vectors = {h: v for h, v in zip(unique, cached, strict=True) if v is not None}
        missing = [h for h in unique if h not in vectors]
        with self._lock:
            self.hits += len(vectors)
            self.misses += len(missing)
        return _Plan(key, hashes, first_text, vectors, missing)

    def _store(self, plan: _Plan, new: Vectors) -> None:
        matrix = np.asarray(new, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(plan.missing_hashes):
            raise ValueError(
                f"{type(self.inner).__name__} returned vectors of shape {matrix.shape} "
                f"for {len(plan.missing_hashes)} texts"
            )
        self.cache.put_many(plan.key, plan.missing_hashes, matrix)
        for i, text_hash in enumerate(plan.missing_hashes):
            plan.vectors[text_hash] = matrix[i]
        plan.fresh_dim = int(matrix.shape[1])
        plan.missing_hashes = []

    def _assemble(self, plan: _Plan) -> Vectors:
        if not plan.hashes:
            return np.zeros((0, self.dimension), dtype=np.float32)
        dim = plan.vectors[plan.hashes[0]].shape[0]
        out = np.empty((len(plan.hashes), dim), dtype=np.float32)
        for i, text_hash in enumerate(plan.hashes):
            out[i] = plan.vectors[text_hash]
        return out


def _all_str(texts: list[Any]) -> bool:
    return all(isinstance(text, str) for text in texts)


class _Plan:
    """Which texts of one call are cached and which must be embedded."""

    __slots__ = ("first_text", "fresh_dim", "hashes", "key", "missing_hashes", "vectors")

    def __init__(
        self,
        key: str,
        hashes: list[str],
        first_text: dict[str, str],
        vectors: dict[str, np.ndarray],
        missing_hashes: list[str],
    ) -> None:
        self.key = key
        self.hashes = hashes
        self.first_text = first_text
        self.vectors = vectors
        self.missing_hashes = missing_hashes
        self.fresh_dim: int | None = None

    @property
    def missing_texts(self) -> list[str]:
        return [self.first_text[h] for h in self.missing_hashes]

    def stale(self) -> bool:
        """Whether cached vectors disagree in length (with each other or with fresh ones)."""
        dims = {v.shape[0] for v in self.vectors.values()}
        if self.fresh_dim is not None:
            dims.add(self.fresh_dim)
        if len(dims) > 1:
            logger.warning("embedding cache: vectors of lengths %s under %s; re-embedding them", sorted(dims), self.key)
            return True
        return False

    def refresh(self) -> _Plan:
        """Mark every text as missing (after :meth:`stale`)."""
        self.vectors = {}
        self.missing_hashes = list(self.first_text)
        self.fresh_dim = None
        return self


class _CachedTokenCountingEmbedder(CachedEmbedder):
    """A :class:`CachedEmbedder` around a token-counting embedder (also a ``TokenCounter``)."""

    @property
    def max_tokens(self) -> int:
        """The inner embedder's ``max_tokens``."""
        return int(self.inner.max_tokens)  # type: ignore[attr-defined]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The inner embedder's ``count_tokens``."""
        return list(self.inner.count_tokens(texts))  # type: ignore[attr-defined]
