"""The component roles as small typed protocols.

Each role has a batch-first method and, where it does I/O, an async twin.
Implementations usually subclass :class:`~ragkit.component.Component` for
``to_config`` / ``from_config``; the protocols only say what a pipeline
calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ragkit.filters import Filter
from ragkit.schema import Chunk, Document, Hit, SourceRecord

Vectors = npt.NDArray[np.float32]
"""A 2-D float32 array, one row per text."""


@runtime_checkable
class Loader(Protocol):
    """Turns a file into documents."""

    extensions: tuple[str, ...]
    """Lower-case file suffixes it reads, with the dot (``.md``)."""

    def load(self, path: Path, source: str) -> Iterable[Document]:
        """Parse ``path``; ``source`` is the name documents will carry.

        May yield lazily (a huge text file comes out in parts, so memory
        stays bounded). Raises :class:`~ragkit.errors.LoaderError` naming the
        file and the reason.
        """
        ...

    async def aload(self, path: Path, source: str) -> list[Document]:
        """Async twin of :meth:`load` (runs in a worker thread)."""
        ...


@runtime_checkable
class Splitter(Protocol):
    """Cuts documents into chunks that keep their character offsets."""

    def split(self, documents: Sequence[Document]) -> list[Chunk]:
        """Chunks of all ``documents``, in order; ``doc.text[c.start:c.end] == c.text``."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to normalised float32 vectors."""

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    @property
    def fingerprint(self) -> str:
        """Identifies the model and options that shape the vectors (cache key, mismatch check)."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors for passages to be stored."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors for search queries (may add a query instruction prefix)."""
        ...

    async def aembed_documents(self, texts: Sequence[str]) -> Vectors:
        """Async twin of :meth:`embed_documents`."""
        ...

    async def aembed_queries(self, texts: Sequence[str]) -> Vectors:
        """Async twin of :meth:`embed_queries`."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """An embedder that can count tokens with its own tokenizer."""

    @property
    def max_tokens(self) -> int:
        """The longest input, in tokens, the model reads without truncating."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, special tokens included."""
        ...


@runtime_checkable
class Preloadable(Protocol):
    """A model-backed component that loads on first use and can be loaded ahead of it.

    The RAG pipeline loads such components before it starts timing retrieval,
    so an answer's ``timings`` show the load as ``load`` (not hidden inside
    ``retrieve`` or ``generate``), and the CLI can say "loading…" first.
    """

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory already (constructing the component loads nothing)."""
        ...

    def load(self) -> Any:
        """Load the model now if it is not loaded (idempotent)."""
        ...


def counts_tokens(obj: object) -> bool:
    """Whether ``obj`` is a :class:`TokenCounter`, judged without reading ``max_tokens``.

    ``isinstance(obj, TokenCounter)`` reads every protocol member, and an
    embedder's ``max_tokens`` property loads its model (seconds, and torch):
    this looks at the class instead (or at an instance attribute).
    """
    kind = type(obj)
    has_limit = hasattr(kind, "max_tokens") or "max_tokens" in getattr(obj, "__dict__", {})
    return has_limit and callable(getattr(obj, "count_tokens", None))


@runtime_checkable
class VectorIndex(Protocol):
    """The small contract of a vector backend: chunks in with their vectors, nearest chunks out.

    Built through ``from_config(options, path=..., dimension=..., name=...)``
    (see :class:`ragkit.stores.base.StoreBase`): the collection injects
    ``path`` (a folder the store may use), ``dimension`` (the embedder's vector
    length) and ``name`` (the collection's name); only ``options`` are saved in
    the collection's config.
    """

    @property
    def dimension(self) -> int:
        """Vector length the store holds."""
        ...

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or replace ``chunks`` (by id) with one vector each."""
        ...

    def search(self, vectors: Vectors, top_k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The ``top_k`` nearest chunks (cosine) for each query vector, best first."""
        ...

    def delete_documents(self, document_ids: Sequence[str]) -> int:
        """Delete the documents' chunks; returns the number of chunks deleted."""
        ...

    def count(self) -> int:
        """Number of stored chunks."""
        ...

    def metadata_fields(self) -> set[str]:
        """Names of the metadata fields found on stored chunks (for filter checks)."""
        ...

    def flush(self) -> None:
        """Make everything written so far durable."""
        ...

    def close(self) -> None:
        """Flush and release files and connections."""
        ...

    def to_config(self) -> dict[str, Any]:
        """The options that reopen this store (without the injected path, dimension and name)."""
        ...


@runtime_checkable
class ChunkStore(Protocol):
    """Reads stored chunks back by id or all of them (rebuilding a keyword index, tools, exports)."""

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the given order (unknown ids are left out)."""
        ...

    def iter_chunks(self, batch_size: int = 1000) -> Iterator[list[Chunk]]:
        """Every stored chunk, in batches."""
        ...


@runtime_checkable
class SourceBook(Protocol):
    """Ingest bookkeeping: which sources are in, with which content hash and chunks."""

    def commit_sources(self, records: Sequence[SourceRecord]) -> None:
        """Mark sources as fully ingested.

        For each record, chunks of that source whose ids are not in
        ``record.chunk_ids`` are deleted, and the record (with its content
        hash) is saved. Until this call, a source's old chunks stay readable.
        """
        ...

    def sources(self) -> dict[str, SourceRecord]:
        """Every committed source record, by source."""
        ...

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete the sources' chunks and records; returns the number of chunks deleted."""
        ...


@runtime_checkable
class VectorStore(VectorIndex, ChunkStore, SourceBook, Protocol):
    """What a collection opens as its store: a vector index that also keeps its chunks and source records.

    The built-in FAISS store keeps chunks and records in SQLite beside the
    index, ``ragkit-milvus`` in Milvus itself; :class:`ragkit.stores.base.StoreBase`
    is the base class both share. Optional features are declared in the
    class's ``capabilities`` (see :data:`STORE_CAPABILITIES`), never probed for.
    """


STORE_CAPABILITIES = ("drop", "stats", "chunks_of_documents", "refresh")
"""Optional store features a store class declares in ``capabilities``.

- ``drop``: its data lives outside the collection folder; :meth:`DroppableStore.drop` deletes it.
- ``stats``: :meth:`StoreWithStats.stats` gives counts and index details beyond ``count()``.
- ``chunks_of_documents``: :meth:`DocumentChunks.chunks_of_documents` fetches whole documents in one query.
- ``refresh``: :meth:`RefreshableStore.refresh` catches up with writes another process committed.
"""


@runtime_checkable
class RefreshableStore(Protocol):
    """A store holding in-memory state (an index) that can catch up with another process's writes."""

    def refresh(self) -> bool:
        """Reload what changed on disk since this process last read or wrote it; whether anything did."""
        ...


@runtime_checkable
class DroppableStore(Protocol):
    """A store whose data lives outside the collection folder (capability ``drop``)."""

    def drop(self) -> None:
        """Delete everything the store holds (outside the folder too) and close it."""
        ...


@runtime_checkable
class StoreWithStats(Protocol):
    """A store that reports more than its chunk count (capability ``stats``)."""

    def stats(self) -> dict[str, Any]:
        """Counts and index details, JSON-ready (``chunks`` at least)."""
        ...


@runtime_checkable
class DocumentChunks(Protocol):
    """A store that fetches every chunk of some documents in one query (capability ``chunks_of_documents``)."""

    def chunks_of_documents(self, document_ids: Sequence[str]) -> list[Chunk]:
        """Every chunk of these documents: by document in the order given, then by ``start``."""
        ...


def capabilities_of(component: object) -> frozenset[str]:
    """The optional features ``component``'s class declares in its ``capabilities`` attribute (none if absent)."""
    declared: frozenset[str] = getattr(type(component), "capabilities", frozenset())
    return frozenset(declared)


@runtime_checkable
class IngestDestination(Protocol):
    """Where an ingest writes chunks besides the vector store (the keyword index is one).

    The ingest pipeline calls it with the very chunks, source commits and
    deletions it gives the store, so a destination is updated incrementally,
    never rebuilt after every change.
    """

    label: str
    """Names its stage in the ingest report's ``stage_seconds`` (``lexical`` for the keyword index)."""

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Insert or replace ``chunks`` (by id)."""
        ...

    def commit_sources(self, records: Sequence[SourceRecord]) -> None:
        """Drop each record's source chunks whose ids are not in ``record.chunk_ids``."""
        ...

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete the chunks of these sources; returns how many were deleted."""
        ...

    def flush(self) -> None:
        """Make everything written so far durable."""
        ...


@runtime_checkable
class LexicalIndex(IngestDestination, Protocol):
    """A keyword (BM25) index that keeps the chunks it indexes, so keyword search needs no other store."""

    @property
    def exists(self) -> bool:
        """Whether an index has been built and saved (in the current format)."""
        ...

    @property
    def outdated(self) -> bool:
        """Whether its folder holds an index in an older format, to be rebuilt from the chunk store."""
        ...

    def rebuild(self, chunks: Iterator[list[Chunk]]) -> int:
        """Index these chunks from scratch; returns how many were indexed."""
        ...

    def search(self, queries: Sequence[str], top_k: int, filter: Filter | None = None) -> list[list[tuple[str, float]]]:
        """``(chunk id, score)`` of the ``top_k`` best matches for each query, best first."""
        ...

    def search_hits(self, queries: Sequence[str], top_k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """The ``top_k`` best matches for each query as lexical hits, with the chunks the index keeps."""
        ...

    def metadata_fields(self) -> set[str]:
        """Names of the metadata fields on indexed chunks (for filter checks)."""
        ...

    def close(self) -> None:
        """Release files and connections (the index reopens on next use)."""
        ...


@runtime_checkable
class Retriever(Protocol):
    """Finds the chunks that answer a query."""

    def retrieve(self, query: str, top_k: int = 5, filters: Any = None) -> list[Hit]:
        """Best ``top_k`` hits for ``query``, optionally restricted by a metadata filter."""
        ...

    async def aretrieve(self, query: str, top_k: int = 5, filters: Any = None) -> list[Hit]:
        """Async twin of :meth:`retrieve`."""
        ...
