"""Collections: a named folder holding one configured set of components and their data.

A collection remembers the configuration it was created with (loader
options, splitter, embedder, store, lexical index) in ``collection.yaml``,
together with the embedder's fingerprint and vector dimension, so every later
ingest and search uses the same components, and a different embedder is
refused instead of silently mixing vectors::

    from ragkit import Collection

    docs = Collection.open_or_create("docs")
    docs.ingest(["handbook/"])
    for hit in docs.search("How do I reset my password?", top_k=3):
        print(hit.score, hit.chunk.source, hit.chunk.text[:80])
"""

from __future__ import annotations

import fcntl
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ragkit import __version__, registry, yaml_io
from ragkit.config import CollectionConfig, Settings
from ragkit.errors import ConfigError, ConflictError, InputError, NotFoundError, StorageError
from ragkit.filters import FilterLike
from ragkit.ingest import IngestPipeline, IngestReport, ProgressCallback
from ragkit.protocols import Embedder, VectorStore
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.retrieval import DenseRetriever, LexicalRetriever

log = logging.getLogger(__name__)

SearchMode = str
"""A retriever type: ``dense``, ``lexical``, or one a connector registers."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CONFIG_FILE = "collection.yaml"
_LEXICAL_STALE = "lexical.stale"

__all__ = ["Collection", "IngestReport", "SearchMode"]


def _home(store_dir: str | Path | None) -> Path:
    return Path(store_dir).expanduser() if store_dir is not None else Settings.load().home


def _collections_dir(store_dir: str | Path | None) -> Path:
    return _home(store_dir) / "collections"


def _folder(name: str, store_dir: str | Path | None) -> Path:
    return _collections_dir(store_dir) / check_collection_name(name)


def check_collection_name(name: str) -> str:
    """``name`` if it is a valid collection name, else an :class:`InputError` saying what is allowed."""
    if not _NAME.match(name):
        raise InputError(
            f"collection name {name!r} is not valid: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


class Collection:
    """A named, persistent set of documents with their vectors and keyword index."""

    def __init__(self, name: str, folder: Path, config: CollectionConfig, embedding: dict[str, Any]) -> None:
        """Use :meth:`create`, :meth:`open` or :meth:`open_or_create` rather than this."""
        self.name = name
        self.folder = folder
        self.config = config
        self.embedding = embedding
        self._embedder: Embedder | None = None
        self._store: VectorStore | None = None
        self._lexical: Any = None
        self._splitter: Any = None

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        config: CollectionConfig | dict[str, Any] | None = None,
        store_dir: str | Path | None = None,
    ) -> Collection:
        """Create a new collection; :class:`ConflictError` if one of that name exists."""
        folder = _folder(name, store_dir)
        if (folder / _CONFIG_FILE).exists():
            raise ConflictError(f"collection {name!r} already exists in {folder.parent}")
        parsed = config if isinstance(config, CollectionConfig) else CollectionConfig.parse(config or {})
        collection = cls(name, folder, parsed, {})
        collection._validate_components()
        embedder = collection.embedder  # fixes the vector dimension before anything is stored
        collection.embedding = {"dimension": int(embedder.dimension), "fingerprint": embedder.fingerprint}
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create collection folder {folder}: {exc.strerror}") from None
        collection._save_config()
        return collection

    @classmethod
    def open(cls, name: str, store_dir: str | Path | None = None) -> Collection:
        """Open an existing collection; :class:`NotFoundError` lists the ones that exist."""
        folder = _folder(name, store_dir)
        config_file = folder / _CONFIG_FILE
        if not config_file.exists():
            existing = ", ".join(cls.names(store_dir)) or "none"
            raise NotFoundError(f"collection {name!r} does not exist in {folder.parent} (existing: {existing})")
        try:
            data = yaml_io.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise StorageError(f"cannot read {config_file}: {exc}") from None
        config = CollectionConfig.parse(data.get("config", {}), where=str(config_file))
        return cls(name, folder, config, dict(data.get("embedding", {})))

    @classmethod
    def open_or_create(
        cls,
        name: str,
        config: CollectionConfig | dict[str, Any] | None = None,
        store_dir: str | Path | None = None,
    ) -> Collection:
        """Open ``name`` if it exists (checking ``config``, if given, matches), else create it."""
        folder = _folder(name, store_dir)
        if not (folder / _CONFIG_FILE).exists():
            return cls.create(name, config, store_dir)
        collection = cls.open(name, store_dir)
        if config is not None:
            wanted = config if isinstance(config, CollectionConfig) else CollectionConfig.parse(config)
            collection._check_same_config(wanted)
        return collection

    @staticmethod
    def names(store_dir: str | Path | None = None) -> list[str]:
        """Names of the collections in the store folder."""
        root = _collections_dir(store_dir)
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / _CONFIG_FILE).is_file())

    @classmethod
    def delete(cls, name: str, store_dir: str | Path | None = None) -> None:
        """Delete a collection and all its data (in an outside store such as Milvus too)."""
        collection = cls.open(name, store_dir)
        folder = collection.folder
        drop = getattr(collection.store, "drop", None)
        if drop is not None:  # a store whose data lives outside the folder
            drop()
        collection.close()
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise StorageError(f"cannot delete {folder}: {exc.strerror}") from None

    def close(self) -> None:
        """Flush and release the store and the embedding cache."""
        if self._store is not None:
            self._store.close()
            self._store = None
        cache = getattr(self._embedder, "cache", None)
        if cache is not None:
            cache.close()
            self._embedder = None

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration -------------------------------------------------------------

    def _save_config(self) -> None:
        data = {
            "name": self.name,
            "ragkit_version": __version__,
            "embedding": self.embedding,
            "config": self.config.model_dump(mode="json"),
        }
        target = self.folder / _CONFIG_FILE
        tmp = target.with_suffix(".yaml.tmp")
        try:
            tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            tmp.replace(target)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror}") from None

    def _check_same_config(self, wanted: CollectionConfig) -> None:
        stored = self.config.model_dump(mode="json")
        given = wanted.model_dump(mode="json")
        differing = [key for key in stored if stored[key] != given.get(key)]
        if differing:
            details = "; ".join(f"{key}: stored {stored[key]!r}, given {given.get(key)!r}" for key in differing)
            raise ConflictError(
                f"collection {self.name!r} was created with a different configuration ({details}); "
                "open it without a config, or create a new collection"
            )

    def _validate_components(self) -> None:
        """Build every configured component once, so a bad config fails before anything is written."""
        for role in ("splitter", "embedder"):
            registry.build(role, getattr(self.config, role))
        registry.get("store", str(self.config.store["type"]))
        headers = self.config.chunk_headers
        if headers is not None and headers.context is not None:
            kind = str(headers.context.generator["type"])
            try:
                registry.get("generator", kind)
            except NotFoundError as exc:
                raise ConfigError(f"chunk_headers.context.generator: {exc}") from None
        if self.config.lexical is not None:
            registry.get("lexical", str(self.config.lexical["type"]))
        from ragkit.loaders import LoaderSet

        LoaderSet(self.config.loader)

    # -- components ------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        """The collection's embedder (wrapped in the embedding cache when enabled)."""
        if self._embedder is None:
            embedder: Embedder = registry.build("embedder", self.config.embedder)
            if self.embedding:
                self._check_embedder(embedder)
            if self.config.embedding_cache:
                embedder = self._with_cache(embedder)
            self._embedder = embedder
        return self._embedder

    def _check_embedder(self, embedder: Embedder) -> None:
        """The configured embedder must be the one that made the stored vectors.

        The fingerprint (model and options) is compared at once; it costs
        nothing. The vector length is only compared here when there is no
        fingerprint to trust, because asking for it loads the model: an
        ingest with nothing new to embed, or a keyword search, should not
        pay seconds for that. The stores refuse vectors or queries of the
        wrong length with a :class:`ConflictError` of their own.
        """
        stored_dim = self.embedding.get("dimension")
        stored_fp = self.embedding.get("fingerprint")
        if stored_fp and embedder.fingerprint != stored_fp:
            raise ConflictError(
                f"collection {self.name!r} was embedded with {stored_fp} ({stored_dim}-d); the configured "
                f"embedder is {embedder.fingerprint}: re-ingest into a new collection to change models"
            )
        if not stored_fp and stored_dim and embedder.dimension != stored_dim:
            raise ConflictError(
                f"collection {self.name!r} holds {stored_dim}-dimensional vectors but the embedder "
                f"{embedder.fingerprint} makes {embedder.dimension}-dimensional ones"
            )

    def _with_cache(self, embedder: Embedder) -> Embedder:
        from ragkit.embedders import CachedEmbedder, EmbeddingCache

        cache_file = self.folder.parent.parent / "cache" / "embeddings.sqlite"
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            return CachedEmbedder(embedder, EmbeddingCache(cache_file))
        except (OSError, StorageError) as exc:
            log.warning("embedding cache disabled: %s", exc)
            return embedder

    @property
    def store(self) -> VectorStore:
        """The collection's vector store, opened on first use."""
        if self._store is None:
            dimension = self.embedding.get("dimension")
            if not dimension:
                raise ConfigError(f"collection {self.name!r} has no recorded embedding dimension")
            cls = registry.get("store", str(self.config.store["type"]))
            params = {k: v for k, v in self.config.store.items() if k != "type"}
            try:
                self._store = cls(path=self.folder / "store", dimension=int(dimension), name=self.name, **params)
            except TypeError as exc:
                raise ConfigError(f"store {self.config.store['type']!r}: {exc}") from None
        return self._store

    @property
    def splitter(self) -> Any:
        """The splitter, bound to the embedder's tokenizer when it measures in tokens."""
        if self._splitter is None:
            splitter = registry.build("splitter", self.config.splitter)
            bind = getattr(splitter, "bind_tokenizer", None)
            if bind is not None and hasattr(self.embedder, "count_tokens"):
                bind(self.embedder)
            self._splitter = splitter
        return self._splitter

    @property
    def lexical(self) -> Any:
        """The BM25 index, or ``None`` when the collection has none."""
        if self._lexical is None and self.config.lexical is not None:
            cls = registry.get("lexical", str(self.config.lexical["type"]))
            params = {k: v for k, v in self.config.lexical.items() if k != "type"}
            self._lexical = cls(path=self.folder / "lexical", **params)
        return self._lexical

    # -- ingestion ---------------------------------------------------------------------

    def ingest(
        self,
        paths: str | Path | Sequence[str | Path],
        sync: bool = False,
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest files and folders incrementally; see :mod:`ragkit.ingest`.

        ``sync=True`` also deletes sources under ``paths`` that no longer exist.
        """
        from ragkit.loaders import LoaderSet

        if isinstance(paths, (str, Path)):
            paths = [paths]
        with self._writer_lock():
            pipeline = IngestPipeline(
                LoaderSet(self.config.loader),
                self.splitter,
                self.embedder,
                self.store,
                batch_size=self.config.embed_batch_size,
                progress=progress,
                chunk_headers=self.config.chunk_headers,
                context_cache=self.folder.parent.parent / "cache" / "chunk-context.sqlite",
            )
            stale_marker = self.folder / _LEXICAL_STALE
            if self.lexical is not None:
                stale_marker.touch()  # until the keyword index is rebuilt, it may lag the vectors
            report = pipeline.run(paths, sync=sync)
            if self.lexical is not None and (report.changed or not self.lexical.exists):
                report.stage_seconds["lexical"] = self._rebuild_lexical()
            stale_marker.unlink(missing_ok=True)
        return report

    def _rebuild_lexical(self) -> float:
        import time

        started = time.perf_counter()
        self.lexical.rebuild(self.store.iter_chunks(5000))
        return time.perf_counter() - started

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / ".ingest.lock", "w")  # noqa: SIM115 - held for the whole block
        except OSError as exc:
            raise StorageError(f"collection folder {self.folder} is not writable: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConflictError(f"another ingest into collection {self.name!r} is running") from None
            yield
        finally:
            handle.close()

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete sources (their chunks and records); returns the number of chunks deleted."""
        with self._writer_lock():
            deleted = self.store.delete_sources(list(sources))
            self.store.flush()
            if self.lexical is not None and deleted:
                self._rebuild_lexical()
        return deleted

    # -- search ---------------------------------------------------------------------------

    def search(self, query: str, top_k: int = 5, filter: FilterLike = None, mode: SearchMode = "dense") -> list[Hit]:
        """The ``top_k`` best chunks for ``query``; ``filter`` restricts by metadata."""
        return self.search_many([query], top_k, filter, mode)[0]

    def search_many(
        self, queries: Sequence[str], top_k: int = 5, filter: FilterLike = None, mode: SearchMode = "dense"
    ) -> list[list[Hit]]:
        """Batch form of :meth:`search` (one embedding call for all queries).

        ``mode`` is a registered retriever type (``dense``, ``lexical``, or one a connector adds).
        """
        if top_k < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        from ragkit.query.retrievers import retriever_of
        from ragkit.query.state import Query

        return retriever_of(mode).retrieve_many(self, [Query(q) for q in queries], top_k, filter)

    def dense_retriever(self) -> DenseRetriever:
        """A :class:`~ragkit.retrieval.DenseRetriever` over this collection."""
        from ragkit.retrieval import DenseRetriever

        return DenseRetriever(self.embedder, self.store, self.name)

    def lexical_retriever(self) -> LexicalRetriever:
        """A :class:`~ragkit.retrieval.LexicalRetriever` over this collection."""
        from ragkit.retrieval import LexicalRetriever

        if self.lexical is None:
            raise ConfigError(f"collection {self.name!r} has no lexical index (its config sets lexical: null)")
        stale = (self.folder / _LEXICAL_STALE).exists() or not self.lexical.exists
        if stale and self.store.count():
            try:
                with self._writer_lock():
                    self._rebuild_lexical()
                    (self.folder / _LEXICAL_STALE).unlink(missing_ok=True)
            except (StorageError, ConflictError) as exc:
                log.warning("keyword index of %r may be out of date: %s", self.name, exc)
        return LexicalRetriever(self.lexical, self.store, self.name)

    # -- information -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Name, configuration, embedding and counts, as a JSON-ready dict."""
        store = self.store
        stats = store.stats() if hasattr(store, "stats") else {"chunks": store.count()}
        return {
            "name": self.name,
            "folder": str(self.folder),
            "embedding": self.embedding,
            "config": self.config.model_dump(mode="json"),
            "stats": stats,
        }
