"""Keeping a collection's keyword index in step with its vectors.

The index is an ingest destination, updated with each change. It is rebuilt
in full from the chunk store only when it cannot be trusted: it is missing or
in an older format while the store holds chunks, or the ``lexical.stale``
marker says a write stopped half-way (it is present from the start of a write
until both the store and the index have taken it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ragkit.collection.layout import CollectionFolder
from ragkit.protocols import ChunkStore, LexicalIndex, VectorStore

log = logging.getLogger(__name__)

REBUILD_BATCH = 5000
"""Chunks read from the store per batch when the index is rebuilt."""


class KeywordUpkeep:
    """The rules above, for one collection's keyword index and chunk store."""

    def __init__(self, folder: CollectionFolder, index: LexicalIndex, store: VectorStore) -> None:
        self.folder = folder
        self.index = index
        self.store = store

    @property
    def needs_rebuild(self) -> bool:
        """Whether the index may not match the store (see the module docstring)."""
        if self.folder.lexical_stale.exists():
            return True
        return not self.index.exists and self.store.count() > 0

    def catch_up(self) -> float | None:
        """Rebuild the index from the store if it needs it (under the writer lock); the seconds taken, else ``None``."""
        if not self.needs_rebuild:
            return None
        if self.folder.lexical_stale.exists():
            log.info("keyword index of %r may lag its vectors; rebuilding it", self.folder.name)
        elif self.index.outdated:
            log.info("keyword index of %r is in an older format; rebuilding it once", self.folder.name)
        seconds = rebuild_from(self.index, self.store)
        self.folder.lexical_stale.unlink(missing_ok=True)
        return seconds

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Mark the index as possibly stale for the block; the mark stays if the block fails."""
        self.folder.lexical_stale.touch()
        yield
        self.folder.lexical_stale.unlink(missing_ok=True)


def rebuild_from(index: LexicalIndex, chunks: ChunkStore) -> float:
    """Index every chunk of ``chunks`` from scratch; returns the seconds it took."""
    started = time.perf_counter()
    index.rebuild(chunks.iter_chunks(REBUILD_BATCH))
    return time.perf_counter() - started
