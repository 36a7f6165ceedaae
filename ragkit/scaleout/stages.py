"""The work each Ray Data stage does on a cluster node: load and split files, embed chunks.

Nothing here imports Ray: the stages are plain callables over column batches
(a dict of column name to sequence), which :mod:`ragkit.scaleout.ray_engine`
hands to Ray Data. A node rebuilds the collection's loader, splitter and
embedder from the collection's config, and a file is turned into chunks by
the very code the in-process ingest runs (:meth:`IngestPipeline._chunks_of`
and ``_text_to_embed``), so the chunk ids, texts and headers are the same.

Row layout out of :class:`LoadSplit` (one row per chunk; a file with no
chunks, or one that failed, gives one row with ``total`` 0 or -1):

- ``index``: the file's position in the driver's list;
- ``seq`` / ``total``: the chunk's position in its file and the file's chunk count;
- ``chunk``: the pickled :class:`~ragkit.schema.Chunk` (its header already in its metadata);
- ``text``: the text to embed (header + chunk text);
- ``error``: why the file failed (``total`` -1), else empty.

:class:`Embed` adds ``vector`` (float32, one row per chunk; zeros for a row without a chunk).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ragkit import registry
from ragkit.config import CollectionConfig
from ragkit.errors import LoaderError, RagkitError
from ragkit.ingest import IngestPipeline
from ragkit.loaders import LoaderSet, SourceFile
from ragkit.protocols import Embedder, VectorStore

Batch = Mapping[str, Sequence[Any]]
"""A batch of rows as columns."""

FAILED = -1
"""``total`` of a row that says its file failed."""


@dataclass(frozen=True)
class StageSpec:
    """What a node needs to rebuild the collection's components: its config and whether chunks record their URI."""

    config: CollectionConfig
    record_uri: bool = True


def _embedder(config: CollectionConfig) -> Embedder:
    embedder: Embedder = registry.build("embedder", config.embedder)
    return embedder


class LoadSplit:
    """Stage 1: files (``index``, pickled ``file``) to chunk rows; see the module docstring."""

    def __init__(self, spec: StageSpec) -> None:
        config = spec.config
        splitter = registry.build("splitter", config.splitter)
        bind = getattr(splitter, "bind_tokenizer", None)
        if bind is not None:
            embedder = _embedder(config)
            if hasattr(embedder, "count_tokens"):
                bind(embedder)  # a splitter measuring tokens counts them with the embedder's tokenizer
        # the in-process pipeline's own code makes the chunks; it needs no embedder or store for that
        self._pipeline = IngestPipeline(
            LoaderSet(config.loader),
            splitter,
            cast(Embedder, None),
            cast(VectorStore, None),
            chunk_headers=config.chunk_headers,
        )
        self._pipeline._record_uri = spec.record_uri

    def __call__(self, batch: Batch) -> dict[str, list[Any]]:
        """The chunk rows of the files in ``batch``."""
        out: dict[str, list[Any]] = {name: [] for name in ("index", "seq", "total", "chunk", "text", "error")}

        def row(index: int, seq: int, total: int, chunk: bytes, text: str, error: str) -> None:
            for name, value in zip(out, (index, seq, total, chunk, text, error), strict=True):
                out[name].append(value)

        for index, blob in zip(batch["index"], batch["file"], strict=True):
            file: SourceFile = pickle.loads(blob)
            try:
                chunks = [c for part in self._pipeline._chunks_of(file) for c in part]
            except LoaderError as exc:
                row(int(index), 0, FAILED, b"", "", exc.reason)
                continue
            except RagkitError as exc:
                row(int(index), 0, FAILED, b"", "", str(exc))
                continue
            if not chunks:
                row(int(index), 0, 0, b"", "", "")
            for seq, chunk in enumerate(chunks):
                text = self._pipeline._text_to_embed(chunk)  # sets the chunk's header in its metadata
                row(int(index), seq, len(chunks), pickle.dumps(chunk, protocol=5), text, "")
        return out


class Embed:
    """Stage 2, held by each actor of the pool: the collection's embedder, loaded once; adds ``vector``."""

    def __init__(self, spec: StageSpec) -> None:
        self._embedder = _embedder(spec.config)
        self._dimension = int(self._embedder.dimension)

    def __call__(self, batch: Batch) -> dict[str, Any]:
        """``batch`` with a ``vector`` column (the rows that carry a chunk embedded in one model call)."""
        totals = [int(t) for t in batch["total"]]
        wanted = [i for i, total in enumerate(totals) if total > 0]
        vectors = np.zeros((len(totals), self._dimension), dtype=np.float32)
        if wanted:
            texts = [str(batch["text"][i]) for i in wanted]
            vectors[wanted] = np.asarray(self._embedder.embed_documents(texts), dtype=np.float32)
        out: dict[str, Any] = {name: batch[name] for name in ("index", "seq", "total", "chunk", "error")}
        out["vector"] = vectors
        return out


__all__ = ["FAILED", "Embed", "LoadSplit", "StageSpec"]
