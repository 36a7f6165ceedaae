"""The lexical side of retrieval: a BM25 index (bm25s) that keeps its own chunks.

The index is an ingest destination (:class:`~ragkit.protocols.IngestDestination`):
an ingest hands it the chunks it writes, the source commits and the deletions,
and only those chunks are tokenized and written. Everything lives in one SQLite
file, ``index.sqlite`` in the index folder: each chunk (so keyword search
returns hits without asking the vector store), its filterable fields and its
token ids, and the vocabulary. BM25 statistics are corpus-wide, so the score
matrix is computed in memory from the stored token ids (one vectorised bm25s
pass, no tokenizing) when the chunks changed: at :meth:`BM25Index.flush` in a
process that searches, or at the first search in one that does not.

:meth:`BM25Index.rebuild` still indexes a whole corpus at once (a collection
uses it when the index is missing, in an older format, or may lag the vectors
after a crash); it writes a new folder and swaps it in with a rename, so a
reader never sees half an index. A filtered keyword search ranks only the
chunks that match the filter.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.component import Component
from ragkit.config import indexed_text
from ragkit.errors import ConfigError, MissingDependencyError, StorageError
from ragkit.filters import Filter, check_kinds, field_kinds
from ragkit.registry import register
from ragkit.schema import Chunk, Hit, SourceRecord
from ragkit.sqlite_wal import connect_wal
from ragkit.stores.files import writable

log = logging.getLogger(__name__)

_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
DB_FILE = "index.sqlite"
"""The index's database inside its folder; a folder without it holds no index (or an old one)."""
FORMAT = 2
"""Version of the on-disk layout; version 1 was ``chunks.jsonl`` beside bm25s's own files."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    chunk TEXT NOT NULL,
    fields TEXT NOT NULL,
    tokens BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE TABLE IF NOT EXISTS vocab (token TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_BUILTIN_FIELDS = {"source", "document_id"}
_TOKENIZE_BATCH = 5000
_IN_BATCH = 900  # stay under SQLite's bound-parameter limit


class _Corpus:
    """What is indexed, in memory: per chunk (in insertion order) its filter fields and token ids."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
        self.fields: set[str] = set(_BUILTIN_FIELDS)
        self.tokens: dict[int, str] = {}
        """The vocabulary, id to token."""


@register("lexical", "bm25")
class BM25Index(Component):
    """Okapi BM25 over chunk texts, with English stop words by default.

    A chunk ingested with contextual chunk headers is indexed with its header
    prefix (``chunk.metadata["chunk_header"]``), the same text that was embedded.
    """

    label = "lexical"
    """Its stage name in an ingest report."""

    def __init__(
        self,
        path: str | Path,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stopwords: str | None = "en",
        stemmer: str | None = "english",
    ) -> None:
        if method not in _METHODS:
            raise ConfigError(f"lexical 'bm25': method must be one of {', '.join(_METHODS)}, got {method!r}")
        if k1 < 0 or not 0 <= b <= 1:
            raise ConfigError(f"lexical 'bm25': need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.path = Path(path)
        self.k1 = k1
        self.b = b
        self.method = method
        self.stopwords = stopwords
        self.stemmer = stemmer
        self._stem: Any = None
        if stemmer:
            try:
                import Stemmer
            except ImportError:
                raise MissingDependencyError("stemming in the BM25 index", "PyStemmer") from None
            try:
                self._stem = Stemmer.Stemmer(stemmer).stemWords
            except KeyError:
                known = ", ".join(Stemmer.algorithms())
                raise ConfigError(f"lexical 'bm25': unknown stemmer {stemmer!r}; known: {known}") from None
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._db_identity: tuple[int, int] | None = None
        self._generation = -1
        self._corpus: _Corpus | None = None
        self._model: Any = None
        self._ids: list[str] = []
        self._fields: list[dict[str, Any]] = []
        self._field_kinds: dict[str, set[str]] = {}
        """What kinds of value each filter field holds, computed with ``_fields`` (not per filtered query)."""
        self._model_stale = True

    def to_config(self) -> dict[str, Any]:
        """The options that rebuild this index (the path is the collection's)."""
        config = super().to_config()
        config.pop("path", None)
        return config

    @property
    def _db_path(self) -> Path:
        return self.path / DB_FILE

    @property
    def exists(self) -> bool:
        """Whether an index in the current format has been built and saved."""
        return self._db_path.exists()

    @property
    def outdated(self) -> bool:
        """Whether the folder holds an index in an older format (to be rebuilt from the chunk store)."""
        return not self.exists and (self.path / "chunks.jsonl").exists()

    # -- incremental upkeep (the ingest destination) -------------------------------------

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Index ``chunks``, replacing any indexed under the same ids; only these are tokenized."""
        latest = list({chunk.id: chunk for chunk in chunks}.values())  # the last of a repeated id wins
        if not latest:
            return
        tokens = self._tokenize([indexed_text(chunk) for chunk in latest])
        with self._lock, self._write() as conn:
            ids, added = _token_ids(conn, tokens)
            _delete_ids(conn, [chunk.id for chunk in latest])
            rows = [_row(chunk, token_ids) for chunk, token_ids in zip(latest, ids, strict=True)]
            conn.executemany("INSERT INTO chunks (id, source, chunk, fields, tokens) VALUES (?, ?, ?, ?, ?)", rows)
            if self._corpus is not None:
                self._corpus.tokens.update((i, token) for token, i in added.items())
                for chunk, token_ids in zip(latest, ids, strict=True):
                    fields = _filter_fields(chunk)
                    self._corpus.docs.pop(chunk.id, None)
                    self._corpus.docs[chunk.id] = (fields, token_ids)
                    self._corpus.fields.update(fields)

    def commit_sources(self, records: Sequence[SourceRecord]) -> None:
        """Drop each record's source chunks that the latest ingest did not produce."""
        if not records:
            return
        with self._lock, self._write() as conn:
            stale: list[str] = []
            for record in records:
                keep = set(record.chunk_ids)
                rows = conn.execute("SELECT id FROM chunks WHERE source = ?", (record.source,))
                stale.extend(chunk_id for (chunk_id,) in rows if chunk_id not in keep)
            self._forget(conn, stale)

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete the chunks of these sources; returns how many were deleted."""
        if not sources:
            return 0
        with self._lock, self._write() as conn:
            ids = [row[0] for row in _select_in(conn, "id", "source", sources)]
            self._forget(conn, ids)
        return len(ids)

    def _forget(self, conn: sqlite3.Connection, chunk_ids: list[str]) -> None:
        _delete_ids(conn, chunk_ids)
        if self._corpus is not None:
            for chunk_id in chunk_ids:
                self._corpus.docs.pop(chunk_id, None)

    def flush(self) -> None:
        """Writes are durable when they return; a process that has searched gets its scores recomputed now."""
        with self._lock:
            if self._corpus is not None and self._model_stale:
                self._compute_model()

    def close(self) -> None:
        """Close the database connection (the index reopens on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn, self._db_identity, self._corpus, self._model = None, None, None, None
            self._generation, self._model_stale = -1, True

    # -- building from scratch ------------------------------------------------------------

    def rebuild(self, chunks: Iterator[list[Chunk]]) -> int:
        """Index every chunk from scratch and swap the new index in atomically; returns how many were indexed."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        old = self.path.with_name(self.path.name + ".old")
        count = 0
        with self._lock:
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                conn = _connect(tmp / DB_FILE, read_only=False)
                try:
                    _initialise(conn)
                    for batch in _batches(chunks, _TOKENIZE_BATCH):
                        latest = list({chunk.id: chunk for chunk in batch}.values())
                        tokens = self._tokenize([indexed_text(chunk) for chunk in latest])
                        with _transaction(conn):
                            ids, _ = _token_ids(conn, tokens)
                            _delete_ids(conn, [chunk.id for chunk in latest])
                            conn.executemany(
                                "INSERT INTO chunks (id, source, chunk, fields, tokens) VALUES (?, ?, ?, ?, ?)",
                                [_row(chunk, token_ids) for chunk, token_ids in zip(latest, ids, strict=True)],
                            )
                        count += len(latest)
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    conn.close()
                self.close()
                shutil.rmtree(old, ignore_errors=True)
                if self.path.exists():
                    os.replace(self.path, old)
                os.replace(tmp, self.path)
                shutil.rmtree(old, ignore_errors=True)
            except (OSError, sqlite3.Error) as exc:
                raise StorageError(f"cannot save the BM25 index in {self.path}: {exc}") from None
        return count

    # -- searching ------------------------------------------------------------------------

    def search(self, queries: Sequence[str], top_k: int, filter: Filter | None = None) -> list[list[tuple[str, float]]]:
        """``(chunk id, BM25 score)`` of the ``top_k`` best matches per query; zero scores are left out."""
        if top_k < 1:
            return [[] for _ in queries]
        with self._lock:
            if not self._ready():
                return [[] for _ in queries]
            model, ids, fields, kinds = self._model, self._ids, self._fields, self._field_kinds
        mask = None
        if filter is not None:
            check_kinds(filter, kinds, "the keyword index")
            mask = np.fromiter((filter.matches(f) for f in fields), dtype=np.float32, count=len(fields))
            if not mask.any():
                return [[] for _ in queries]
        import bm25s

        k = min(top_k, len(ids))
        tokens = bm25s.tokenize(
            list(queries), stopwords=self._stopwords(), stemmer=self._stem, return_ids=False, show_progress=False
        )
        results: list[list[tuple[str, float]]] = []
        for query_tokens in tokens:
            if not query_tokens:
                results.append([])
                continue
            with self._lock:
                docs, scores = model.retrieve([query_tokens], k=k, show_progress=False, weight_mask=mask, n_threads=1)
            results.append([(ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0])
        return results

    def search_hits(self, queries: Sequence[str], top_k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The ``top_k`` best matches per query as ``lexical`` hits, with the chunks this index keeps."""
        ranked = self.search(queries, top_k, filter)
        wanted = list(dict.fromkeys(chunk_id for hits in ranked for chunk_id, _ in hits))
        chunks = self.get(wanted)
        by_id = {chunk.id: chunk for chunk in chunks}
        return [
            [Hit(by_id[chunk_id], score, "lexical") for chunk_id, score in hits if chunk_id in by_id] for hits in ranked
        ]

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The indexed chunks with these ids, in the given order (unknown ids are left out)."""
        with self._lock:
            conn = self._connection()
            if conn is None:
                return []
            found = {row[0]: row[1] for row in _select_in(conn, "id, chunk", "id", chunk_ids)}
        return [Chunk.from_dict(json.loads(found[i])) for i in chunk_ids if i in found]

    def count(self) -> int:
        """Number of indexed chunks."""
        with self._lock:
            conn = self._connection()
            return 0 if conn is None else int(conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def metadata_fields(self) -> set[str]:
        """Metadata field names on the indexed chunks, plus ``source`` and ``document_id``."""
        with self._lock:
            if not self._ready():
                return set(_BUILTIN_FIELDS)
            assert self._corpus is not None
            return set(self._corpus.fields)

    # -- state --------------------------------------------------------------------------------

    def _ready(self) -> bool:
        """Load what changed since last time and recompute the scores if needed; whether there is a model."""
        conn = self._connection()
        if conn is None:
            return False
        generation = _generation(conn)
        if self._corpus is None or generation != self._generation:
            self._load(conn)
            self._generation = generation
        if self._model_stale:
            self._compute_model()
        return self._model is not None

    def _load(self, conn: sqlite3.Connection) -> None:
        corpus = _Corpus()
        for chunk_id, fields_json, blob in conn.execute("SELECT id, fields, tokens FROM chunks ORDER BY seq"):
            fields = json.loads(fields_json)
            corpus.docs[chunk_id] = (fields, np.frombuffer(blob, dtype=np.int32))
            corpus.fields.update(fields)
        corpus.tokens = {int(i): token for token, i in conn.execute("SELECT token, id FROM vocab")}
        self._corpus = corpus
        self._model_stale = True

    def _compute_model(self) -> None:
        """The BM25 score matrix over the chunks in memory: only the live vocabulary, as a full build would."""
        assert self._corpus is not None
        import bm25s
        from bm25s.tokenization import Tokenized

        docs = self._corpus.docs
        self._ids = list(docs)
        self._fields = [fields for fields, _ in docs.values()]
        self._field_kinds = field_kinds(self._fields)
        self._model_stale = False
        if not docs:
            self._model = None
            return
        arrays = [tokens for _, tokens in docs.values()]
        flat = np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int32)
        live, dense = np.unique(flat, return_inverse=True)
        tokens_of = [self._corpus.tokens[int(i)] for i in live]
        per_doc = np.split(dense, np.cumsum([len(a) for a in arrays])[:-1])
        model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        vocab = {token: i for i, token in enumerate(tokens_of)}
        model.index(Tokenized(ids=[doc.tolist() for doc in per_doc], vocab=vocab), show_progress=False)
        self._model = model

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        if not texts:
            return []
        tokens: list[list[str]] = bm25s.tokenize(
            texts, stopwords=self._stopwords(), stemmer=self._stem, return_ids=False, show_progress=False
        )
        return tokens

    def _stopwords(self) -> str | list[str]:
        return self.stopwords if self.stopwords else []

    def _connection(self, create: bool = False) -> sqlite3.Connection | None:
        """The open database (reopened when another process swapped in a rebuilt index); ``None`` if none."""
        exists = self._db_path.exists()
        if self._conn is not None:
            if exists and _identity(self._db_path) == self._db_identity:
                return self._conn
            self.close()
        if not exists and not create:
            return None
        read_only = not writable(self.path)
        if read_only and not exists:
            raise StorageError(f"keyword index folder {self.path} is read-only and holds no index yet")
        try:
            if not read_only:
                self.path.mkdir(parents=True, exist_ok=True)
            conn = _connect(self._db_path, read_only)
            if not read_only:
                _initialise(conn)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the BM25 index {self._db_path}: {exc}") from None
        self._conn, self._db_identity = conn, _identity(self._db_path)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection(create=True)
        assert conn is not None
        with _transaction(conn):
            before = _generation(conn)
            yield conn
            conn.execute("UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        if before == self._generation:  # the corpus in memory saw every earlier write and was kept up to date
            self._generation = before + 1
        self._model_stale = True


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only:
        return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    return connect_wal(path)


def _initialise(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)
    conn.execute("INSERT OR IGNORE INTO state VALUES ('format', ?)", (str(FORMAT),))
    conn.execute("INSERT OR IGNORE INTO state VALUES ('generation', '0')")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StorageError(f"cannot write to the BM25 index: {exc}") from None
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK")
        raise StorageError(f"write to the BM25 index failed: {exc}") from exc


def _generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
    return int(row[0]) if row else 0


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _token_ids(conn: sqlite3.Connection, tokens: list[list[str]]) -> tuple[list[np.ndarray], dict[str, int]]:
    """Each text's tokens as vocabulary ids, and the tokens this added to the vocabulary (with their ids)."""
    distinct = {token for text in tokens for token in text}
    known = {token: int(i) for token, i in _select_in(conn, "token, id", "token", sorted(distinct), table="vocab")}
    new = sorted(distinct - set(known))
    added: dict[str, int] = {}
    if new:
        row = conn.execute("SELECT COALESCE(MAX(id), -1) FROM vocab").fetchone()
        first = int(row[0]) + 1
        added = {token: first + i for i, token in enumerate(new)}
        conn.executemany("INSERT INTO vocab VALUES (?, ?)", added.items())
        known.update(added)
    ids = [np.fromiter((known[token] for token in text), dtype=np.int32, count=len(text)) for text in tokens]
    return ids, added


def _row(chunk: Chunk, token_ids: np.ndarray) -> tuple[str, str, str, str, bytes]:
    return (
        chunk.id,
        chunk.source,
        json.dumps(chunk.to_dict(), default=str),
        json.dumps(_filter_fields(chunk), default=str),
        token_ids.astype(np.int32).tobytes(),
    )


def _filter_fields(chunk: Chunk) -> dict[str, Any]:
    return {**chunk.metadata, "source": chunk.source, "document_id": chunk.document_id}


def _delete_ids(conn: sqlite3.Connection, chunk_ids: Sequence[str]) -> None:
    for i in range(0, len(chunk_ids), _IN_BATCH):
        part = list(chunk_ids[i : i + _IN_BATCH])
        conn.execute(f"DELETE FROM chunks WHERE id IN ({','.join('?' * len(part))})", part)


def _select_in(
    conn: sqlite3.Connection, columns: str, key: str, values: Sequence[str], table: str = "chunks"
) -> list[Any]:
    rows: list[Any] = []
    for i in range(0, len(values), _IN_BATCH):
        part = list(values[i : i + _IN_BATCH])
        placeholders = ",".join("?" * len(part))
        rows.extend(conn.execute(f"SELECT {columns} FROM {table} WHERE {key} IN ({placeholders})", part))
    return rows


def _batches(chunks: Iterable[list[Chunk]], size: int) -> Iterator[list[Chunk]]:
    pending: list[Chunk] = []
    for batch in chunks:
        pending.extend(batch)
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending
