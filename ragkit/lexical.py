"""The lexical side of retrieval: a BM25 index (bm25s) kept beside the vectors.

The index is rebuilt from the store's chunks after an ingest changes
anything (BM25 statistics are corpus-wide, and bm25s builds a whole corpus in
one vectorised pass). It is saved to a temporary folder and swapped in with a
rename, so a reader never sees half an index. Beside the BM25 matrices it
keeps each chunk's id and filterable fields, so a filtered keyword search
ranks only the chunks that match the filter.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragkit.component import Component
from ragkit.config import indexed_text
from ragkit.errors import ConfigError, MissingDependencyError, StorageError
from ragkit.filters import Filter
from ragkit.registry import register
from ragkit.schema import Chunk

log = logging.getLogger(__name__)

_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


@register("lexical", "bm25")
class BM25Index(Component):
    """Okapi BM25 over chunk texts, with English stop words by default.

    A chunk ingested with contextual chunk headers is indexed with its header
    prefix (``chunk.metadata["chunk_header"]``), the same text that was embedded.
    """

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
        self._lock = threading.Lock()
        self._model: Any = None
        self._ids: list[str] = []
        self._fields: list[dict[str, Any]] = []

    def to_config(self) -> dict[str, Any]:
        """The options that rebuild this index (the path is the collection's)."""
        config = super().to_config()
        config.pop("path", None)
        return config

    # -- building ---------------------------------------------------------------

    def rebuild(self, chunks: Iterator[list[Chunk]]) -> int:
        """Index every chunk from scratch and save atomically; returns how many were indexed."""
        import bm25s

        ids: list[str] = []
        fields: list[dict[str, Any]] = []
        texts: list[str] = []
        for batch in chunks:
            for chunk in batch:
                ids.append(chunk.id)
                fields.append({**chunk.metadata, "source": chunk.source, "document_id": chunk.document_id})
                texts.append(indexed_text(chunk))  # with chunk headers on, the header prefix too
        model = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        if texts:
            tokens = bm25s.tokenize(texts, stopwords=self._stopwords(), stemmer=self._stem, show_progress=False)
            model.index(tokens, show_progress=False)
        self._save(model, ids, fields, empty=not texts)
        with self._lock:
            self._model, self._ids, self._fields = (model if texts else None), ids, fields
        return len(ids)

    def _stopwords(self) -> str | list[str]:
        return self.stopwords if self.stopwords else []

    def _save(self, model: Any, ids: list[str], fields: list[dict[str, Any]], empty: bool) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        old = self.path.with_name(self.path.name + ".old")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if not empty:
                model.save(str(tmp), show_progress=False)
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as out:
                for chunk_id, chunk_fields in zip(ids, fields, strict=True):
                    out.write(json.dumps({"id": chunk_id, "fields": chunk_fields}, default=str) + "\n")
            shutil.rmtree(old, ignore_errors=True)
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise StorageError(f"cannot save the BM25 index in {self.path}: {exc}") from None

    def _ensure_loaded(self) -> bool:
        with self._lock:
            if self._model is not None or self._ids:
                return self._model is not None
            chunks_file = self.path / "chunks.jsonl"
            if not chunks_file.exists():
                return False
            import bm25s

            rows = [json.loads(line) for line in chunks_file.read_text(encoding="utf-8").splitlines() if line]
            self._ids = [row["id"] for row in rows]
            self._fields = [row["fields"] for row in rows]
            if self._ids:
                self._model = bm25s.BM25.load(str(self.path), show_progress=False)
            return self._model is not None

    @property
    def exists(self) -> bool:
        """Whether an index has been built and saved."""
        return (self.path / "chunks.jsonl").exists()

    # -- searching --------------------------------------------------------------

    def search(self, queries: Sequence[str], top_k: int, filter: Filter | None = None) -> list[list[tuple[str, float]]]:
        """``(chunk id, BM25 score)`` of the ``top_k`` best matches per query; zero scores are left out."""
        if top_k < 1 or not self._ensure_loaded():
            return [[] for _ in queries]
        import bm25s

        mask = None
        if filter is not None:
            mask = np.fromiter((filter.matches(f) for f in self._fields), dtype=np.float32, count=len(self._fields))
            if not mask.any():
                return [[] for _ in queries]
        k = min(top_k, len(self._ids))
        tokens = bm25s.tokenize(
            list(queries), stopwords=self._stopwords(), stemmer=self._stem, return_ids=False, show_progress=False
        )
        results: list[list[tuple[str, float]]] = []
        for query_tokens in tokens:
            if not query_tokens:
                results.append([])
                continue
            with self._lock:
                docs, scores = self._model.retrieve(
                    [query_tokens], k=k, show_progress=False, weight_mask=mask, n_threads=1
                )
            results.append([(self._ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0])
        return results
