"""Building a collection's components from its config, each on first use, and checking the embedder."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ragkit import registry
from ragkit.collection.layout import CollectionFolder
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError, ConflictError, NotFoundError, StorageError
from ragkit.protocols import Embedder, LexicalIndex, VectorStore
from ragkit.stores.base import build_store

if TYPE_CHECKING:
    from ragkit.embedders import EmbeddingCache

log = logging.getLogger(__name__)


def validate_components(config: CollectionConfig) -> None:
    """Build or look up every configured component once, so a bad config fails before anything is written."""
    for role in ("splitter", "embedder"):
        registry.build(role, getattr(config, role))
    registry.get("store", str(config.store["type"]))
    headers = config.chunk_headers
    if headers is not None and headers.context is not None:
        kind = str(headers.context.generator["type"])
        try:
            registry.get("generator", kind)
        except NotFoundError as exc:
            raise ConfigError(f"chunk_headers.context.generator: {exc}") from None
    if config.lexical is not None:
        registry.get("lexical", str(config.lexical["type"]))
    from ragkit.loaders import LoaderSet

    LoaderSet(config.loader)


def check_embedder(name: str, embedding: dict[str, Any], embedder: Embedder) -> None:
    """The configured embedder must be the one that made the stored vectors.

    The fingerprint (model and options) is compared at once; it costs
    nothing. The vector length is only compared here when there is no
    fingerprint to trust, because asking for it loads the model: an
    ingest with nothing new to embed, or a keyword search, should not
    pay seconds for that. The stores refuse vectors or queries of the
    wrong length with a :class:`ConflictError` of their own.
    """
    stored_dim = embedding.get("dimension")
    stored_fp = embedding.get("fingerprint")
    if stored_fp and embedder.fingerprint != stored_fp:
        raise ConflictError(
            f"collection {name!r} was embedded with {stored_fp} ({stored_dim}-d); the configured "
            f"embedder is {embedder.fingerprint}: re-ingest into a new collection to change models"
        )
    if not stored_fp and stored_dim and embedder.dimension != stored_dim:
        raise ConflictError(
            f"collection {name!r} holds {stored_dim}-dimensional vectors but the embedder "
            f"{embedder.fingerprint} makes {embedder.dimension}-dimensional ones"
        )


class Components:
    """One collection's embedder, store, splitter and keyword index, built lazily from its config."""

    def __init__(
        self, name: str, folder: CollectionFolder, config: CollectionConfig, embedding: dict[str, Any]
    ) -> None:
        self.name = name
        self.folder = folder
        self.config = config
        self.embedding = embedding
        """The embedder's ``dimension`` and ``fingerprint`` as recorded (empty until the collection is created)."""
        self._embedder: Embedder | None = None
        self._cache: EmbeddingCache | None = None
        self._store: VectorStore | None = None
        self._lexical: LexicalIndex | None = None
        self._splitter: Any = None

    @property
    def embedder(self) -> Embedder:
        """The embedder (wrapped in the embedding cache when enabled), checked against the recorded one."""
        if self._embedder is None:
            embedder: Embedder = registry.build("embedder", self.config.embedder)
            if self.embedding:
                check_embedder(self.name, self.embedding, embedder)
            if self.config.embedding_cache:
                embedder = self._with_cache(embedder)
            self._embedder = embedder
        return self._embedder

    def _with_cache(self, embedder: Embedder) -> Embedder:
        from ragkit.embedders import CachedEmbedder, EmbeddingCache

        cache_file = self.folder.home.embedding_cache
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            self._cache = EmbeddingCache(cache_file)
            return CachedEmbedder(embedder, self._cache)
        except (OSError, StorageError) as exc:
            log.warning("embedding cache disabled: %s", exc)
            return embedder

    @property
    def store(self) -> VectorStore:
        """The vector store, built through its ``from_config`` with the collection's folder, dimension and name."""
        if self._store is None:
            dimension = self.embedding.get("dimension")
            if not dimension:
                raise ConfigError(f"collection {self.name!r} has no recorded embedding dimension")
            self._store = build_store(
                self.config.store, path=self.folder.store, dimension=int(dimension), name=self.name
            )
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
    def lexical(self) -> LexicalIndex | None:
        """The keyword index, or ``None`` when the config has none."""
        if self._lexical is None and self.config.lexical is not None:
            cls = registry.get("lexical", str(self.config.lexical["type"]))
            params = {k: v for k, v in self.config.lexical.items() if k != "type"}
            self._lexical = cls(path=self.folder.lexical, **params)
        return self._lexical

    def close(self) -> None:
        """Flush and release the store, the keyword index and the embedding cache."""
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._lexical is not None:
            self._lexical.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None
            self._embedder = None
