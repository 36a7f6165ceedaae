"""The :class:`Collection`: lifecycle, ingest and search over one collection's components.

The parts live beside it: the folder layout in :mod:`ragkit.collection.layout`,
``collection.yaml`` in :mod:`ragkit.collection.config_file`, component
building and the embedder check in :mod:`ragkit.collection.components`, the
writer lock in :mod:`ragkit.collection.writer_lock` and the keyword index's
upkeep in :mod:`ragkit.collection.keyword`.
"""

from __future__ import annotations

import enum
import logging
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ragkit.collection.components import Components, validate_components
from ragkit.collection.config_file import CollectionRecord, check_same_config, read_record, write_record
from ragkit.collection.keyword import KeywordUpkeep
from ragkit.collection.layout import CollectionFolder, HomeLayout
from ragkit.collection.writer_lock import writer_lock
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError, ConflictError, InputError, NotFoundError, StorageError
from ragkit.filters import FilterLike
from ragkit.ingest import IngestPipeline, IngestReport, ProgressCallback
from ragkit.protocols import DroppableStore, Embedder, LexicalIndex, VectorStore, capabilities_of
from ragkit.schema import Document, Hit
from ragkit.stores.base import store_stats

if TYPE_CHECKING:
    from ragkit.collection.reindex import ReindexReport
    from ragkit.collection.texts import DocumentLike
    from ragkit.retrieval import DenseRetriever, LexicalRetriever

log = logging.getLogger(__name__)
P = TypeVar("P", bound=IngestPipeline)
_RETRIEVER_CONNECTORS = {"langchain": "ragkit-langchain", "llamaindex": "ragkit-llamaindex"}
"""The distribution that gives :meth:`Collection.as_retriever` each framework."""

SearchMode = str
"""A retriever type: ``dense``, ``lexical``, or one a connector registers."""


class _Missing(enum.Enum):
    """The default of a deprecated keyword, told apart from an explicit ``None``."""

    MISSING = enum.auto()


_MISSING = _Missing.MISSING


def _renamed_filter(filters: FilterLike, old: FilterLike | _Missing, method: str) -> FilterLike:
    """``filters``, or the value given under the old keyword ``filter=`` (with a :class:`DeprecationWarning`)."""
    if old is _MISSING:
        return filters
    warnings.warn(
        f"Collection.{method}(filter=...) is deprecated: use filters=... (the name every ragkit API uses)",
        DeprecationWarning,
        stacklevel=3,
    )
    if filters is not None:
        raise InputError(f"Collection.{method}: give filters=... only (filter= is its deprecated old name), not both")
    return old


class Collection:
    """A named, persistent set of documents with their vectors and keyword index."""

    def __init__(self, name: str, folder: Path, config: CollectionConfig, embedding: dict[str, Any]) -> None:
        """Use :meth:`create`, :meth:`open` or :meth:`open_or_create` rather than this."""
        self.name = name
        self.folder = folder
        self.config = config
        self.files = CollectionFolder(folder)
        """Where this collection's files are (see :mod:`ragkit.collection.layout`)."""
        self._parts = Components(name, self.files, config, embedding)

    @property
    def embedding(self) -> dict[str, Any]:
        """The embedder's ``dimension`` and ``fingerprint`` recorded when the collection was created."""
        return self._parts.embedding

    @embedding.setter
    def embedding(self, value: dict[str, Any]) -> None:
        self._parts.embedding = value

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        config: CollectionConfig | dict[str, Any] | None = None,
        store_dir: str | Path | None = None,
    ) -> Collection:
        """Create a new collection; :class:`ConflictError` if one of that name exists."""
        files = HomeLayout.of(store_dir).collection(name)
        if files.config_file.exists():
            raise ConflictError(f"collection {name!r} already exists in {files.path.parent}")
        parsed = config if isinstance(config, CollectionConfig) else CollectionConfig.parse(config or {})
        collection = cls(name, files.path, parsed, {})
        validate_components(parsed)
        embedder = collection.embedder  # fixes the vector dimension before anything is stored
        collection.embedding = {"dimension": int(embedder.dimension), "fingerprint": embedder.fingerprint}
        try:
            files.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create collection folder {files.path}: {exc.strerror}") from None
        write_record(files, CollectionRecord(parsed, collection.embedding))
        return collection

    @classmethod
    def open(cls, name: str, store_dir: str | Path | None = None) -> Collection:
        """Open an existing collection; :class:`NotFoundError` lists the ones that exist."""
        files = HomeLayout.of(store_dir).collection(name)
        if not files.config_file.exists():
            existing = ", ".join(cls.names(store_dir)) or "none"
            raise NotFoundError(f"collection {name!r} does not exist in {files.path.parent} (existing: {existing})")
        record = read_record(files)
        return cls(name, files.path, record.config, record.embedding)

    @classmethod
    def open_or_create(
        cls,
        name: str,
        config: CollectionConfig | dict[str, Any] | None = None,
        store_dir: str | Path | None = None,
    ) -> Collection:
        """Open ``name`` if it exists (checking ``config``, if given, matches), else create it."""
        if not HomeLayout.of(store_dir).collection(name).config_file.exists():
            return cls.create(name, config, store_dir)
        collection = cls.open(name, store_dir)
        if config is not None:
            wanted = config if isinstance(config, CollectionConfig) else CollectionConfig.parse(config)
            check_same_config(name, collection.config, wanted)
        return collection

    @staticmethod
    def names(store_dir: str | Path | None = None) -> list[str]:
        """Names of the collections in the store folder."""
        return HomeLayout.of(store_dir).collection_names()

    @classmethod
    def delete(cls, name: str, store_dir: str | Path | None = None) -> None:
        """Delete a collection and all its data (in an outside store such as Milvus too)."""
        collection = cls.open(name, store_dir)
        folder = collection.folder
        store = collection.store
        if "drop" in capabilities_of(store):  # a store whose data lives outside the folder
            cast(DroppableStore, store).drop()
        collection.close()
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise StorageError(f"cannot delete {folder}: {exc.strerror}") from None

    @property
    def exists(self) -> bool:
        """Whether the collection is still on disk (another process may have deleted it)."""
        return self.files.config_file.exists()

    def close(self) -> None:
        """Flush and release the store, the keyword index and the embedding cache."""
        self._parts.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- components ------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The collection's embedder (wrapped in the embedding cache when enabled)."""
        return self._parts.embedder

    @property
    def store(self) -> VectorStore:
        """The collection's vector store, opened on first use."""
        return self._parts.store

    @property
    def splitter(self) -> Any:
        """The splitter, bound to the embedder's tokenizer when it measures in tokens."""
        return self._parts.splitter

    @property
    def lexical(self) -> LexicalIndex | None:
        """The BM25 index, or ``None`` when the collection has none."""
        return self._parts.lexical

    def _keyword_upkeep(self) -> KeywordUpkeep | None:
        lexical = self.lexical
        return None if lexical is None else KeywordUpkeep(self.files, lexical, self.store)

    # -- ingestion ---------------------------------------------------------------------

    def ingest(
        self,
        paths: str | Path | Sequence[str | Path],
        sync: bool = False,
        progress: ProgressCallback | None = None,
        source_prefix: str = "",
        *,
        record_uri: bool = True,
    ) -> IngestReport:
        """Ingest files and folders incrementally; see :mod:`ragkit.ingest`.

        Each file's source id is its path relative to the folder given
        (``hr/a.docx``; a file given directly: its name), after
        ``source_prefix`` (``team/`` gives ``team/hr/a.docx``); its chunks
        carry the file's ``file:`` URI in ``metadata["uri"]`` unless
        ``record_uri`` is off (the service's uploads). ``sync=True`` also
        deletes the sources that came from ``paths`` and no longer exist.
        The keyword index is updated with the same chunks (only those).
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        chosen = list(paths)
        return self._run_ingest(
            IngestPipeline, lambda pipeline: pipeline.run(chosen, sync, source_prefix, record_uri), progress
        )

    def _run_ingest(
        self,
        kind: type[P],
        run: Callable[[P], IngestReport],
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Build an ingest pipeline of ``kind`` over this collection's parts and ``run`` it under the writer lock.

        The keyword index first catches up and then receives the same chunks
        (its seconds are reported as the ``lexical`` stage). Files and texts
        held in memory (:mod:`ragkit.collection.texts`) both come through here.
        """
        from ragkit.loaders import LoaderSet

        with writer_lock(self.files):
            upkeep = self._keyword_upkeep()
            caught_up = upkeep.catch_up() if upkeep is not None else None
            pipeline = kind(
                LoaderSet(self.config.loader),
                self.splitter,
                self.embedder,
                self.store,
                batch_size=self.config.embed_batch_size,
                progress=progress,
                chunk_headers=self.config.chunk_headers,
                context_cache=self.files.home.context_cache,
                destinations=[upkeep.index] if upkeep is not None else [],
            )
            if upkeep is None:
                return run(pipeline)
            with upkeep.writing():
                report = run(pipeline)
            if caught_up is not None:
                report.stage_seconds["lexical"] = report.stage_seconds.get("lexical", 0.0) + caught_up
        return report

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[str | None] | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        """Ingest text held in memory; returns each text's id (its source id); see :mod:`ragkit.collection.texts`.

        Each text goes through the same splitter, embedder, store and keyword
        index as files; ``metadatas`` land in its chunks' metadata (filterable).
        The same id with the same text and metadata costs nothing; with a
        changed text it replaces that text's chunks. Without ``ids``, each
        id is derived from the text and metadata (``text-<hash>``).
        """
        from ragkit.collection.texts import ingest_sources, text_sources

        out, sources = text_sources(texts, metadatas, ids)
        ingest_sources(self, sources, progress)
        return out

    def add_documents(
        self, documents: Iterable[DocumentLike], *, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Ingest ragkit :class:`~ragkit.schema.Document` objects or dicts (``text``, ``metadata``, ``id``).

        Returns each one's source id. Documents sharing a ``source`` form one
        source (replaced together); see :func:`ragkit.collection.texts.document_sources`.
        """
        from ragkit.collection.texts import document_sources, ingest_sources

        out, sources = document_sources(documents)
        ingest_sources(self, sources, progress)
        return out

    def get_documents(self, ids: Sequence[str]) -> list[Document]:
        """The documents stored under the source ids ``ids`` (unknown ones left out), texts rebuilt from chunks."""
        from ragkit.collection.texts import documents_by_id

        return documents_by_id(self, ids)

    def delete_documents(self, ids: Sequence[str]) -> int:
        """Delete what :meth:`add_texts` / :meth:`add_documents` stored under ``ids`` (source ids; unknown: ignored).

        The same as :meth:`delete_sources`; returns the number of chunks deleted.
        """
        return self.delete_sources(ids)

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete sources (their chunks and records); returns the number of chunks deleted."""
        with writer_lock(self.files):
            upkeep = self._keyword_upkeep()
            if upkeep is None:
                deleted = self.store.delete_sources(list(sources))
                self.store.flush()
                return deleted
            upkeep.catch_up()
            with upkeep.writing():
                deleted = self.store.delete_sources(list(sources))
                self.store.flush()
                upkeep.index.delete_sources(list(sources))
                upkeep.index.flush()
        return deleted

    def reindex(
        self,
        config: CollectionConfig | dict[str, Any],
        drop_missing: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ReindexReport:
        """Rebuild the collection from its recorded sources with a new ``config``; see :mod:`ragkit.collection.reindex`.

        The new generation is built beside this one and swapped in atomically;
        until then searches are answered from the old one, and a failure leaves
        it untouched. Afterwards this object serves the new generation.
        """
        from ragkit.collection.reindex import reindex_collection

        report = reindex_collection(self, config, drop_missing=drop_missing, progress=progress)
        self.close()
        record = read_record(self.files)
        self.config = record.config
        self._parts = Components(self.name, self.files, record.config, record.embedding)
        return report

    # -- search ---------------------------------------------------------------------------

    def as_retriever(self, pipeline: Any = "basic", *, framework: str = "langchain", **options: Any) -> Any:
        """The collection, searched by ``pipeline``, as another framework's retriever.

        ``framework="langchain"`` gives a LangChain ``BaseRetriever`` (the
        ``ragkit-langchain`` connector), ``"llamaindex"`` a LlamaIndex one
        (``ragkit-llamaindex``); ``options`` go to it (``k`` / ``top_k``,
        ``filters``, ``mode``). A connector provides it as the
        ``as_retriever.<framework>`` entry point; the core imports neither.
        """
        from ragkit.plugins import connector_entry

        distribution = _RETRIEVER_CONNECTORS.get(framework, f"a connector providing 'as_retriever.{framework}'")
        retriever = connector_entry("as_retriever", framework, distribution)
        return retriever(collection=self, pipeline=pipeline, **options)

    def search(
        self,
        query: str,
        top_k: int = 5,
        filters: FilterLike = None,
        mode: SearchMode = "dense",
        *,
        filter: FilterLike | _Missing = _MISSING,
    ) -> list[Hit]:
        """The ``top_k`` best chunks for ``query``; ``filters`` restricts by metadata.

        ``filter=`` is the deprecated old name of ``filters=`` (a :class:`DeprecationWarning`).
        """
        filters = _renamed_filter(filters, filter, "search")
        return self.search_many([query], top_k, filters, mode)[0]

    def search_many(
        self,
        queries: Sequence[str],
        top_k: int = 5,
        filters: FilterLike = None,
        mode: SearchMode = "dense",
        *,
        filter: FilterLike | _Missing = _MISSING,
    ) -> list[list[Hit]]:
        """Batch form of :meth:`search` (one embedding call for all queries).

        ``mode`` is a registered retriever type (``dense``, ``lexical``, or one a connector adds).
        ``filter=`` is the deprecated old name of ``filters=``.
        """
        filters = _renamed_filter(filters, filter, "search_many")
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        from ragkit import tracing
        from ragkit.query.retrievers import retriever_of
        from ragkit.query.state import Query

        with tracing.search(self.name, mode, queries, top_k):
            return retriever_of(mode).retrieve_many(self, [Query(q) for q in queries], top_k, filters)

    def dense_retriever(self) -> DenseRetriever:
        """A :class:`~ragkit.retrieval.DenseRetriever` over this collection."""
        from ragkit.retrieval import DenseRetriever

        return DenseRetriever(self.embedder, self.store, self.name)

    def lexical_retriever(self) -> LexicalRetriever:
        """A :class:`~ragkit.retrieval.LexicalRetriever` over this collection's keyword index.

        An index that may not match the vectors (missing, in an older format,
        or left stale by a crash) is rebuilt from the chunk store first.
        """
        from ragkit.retrieval import LexicalRetriever

        upkeep = self._keyword_upkeep()
        if upkeep is None:
            raise ConfigError(f"collection {self.name!r} has no lexical index (its config sets lexical: null)")
        if upkeep.needs_rebuild:
            try:
                with writer_lock(self.files):
                    upkeep.catch_up()
            except (StorageError, ConflictError) as exc:
                log.warning("keyword index of %r may be out of date: %s", self.name, exc)
        return LexicalRetriever(upkeep.index, self.name)

    # -- information -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Name, configuration, embedding and counts, as a JSON-ready dict."""
        return {
            "name": self.name,
            "folder": str(self.folder),
            "embedding": self.embedding,
            "config": self.config.model_dump(mode="json"),
            "stats": store_stats(self.store),
        }
