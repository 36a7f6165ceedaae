"""A ragkit collection as a LangChain ``VectorStore``.

::

    from ragkit_langchain import RagkitVectorStore

    store = RagkitVectorStore("notes")                   # opens or creates collection "notes"
    store.add_texts(["Paris is the capital of France."], metadatas=[{"lang": "en"}], ids=["fr"])
    store.similarity_search("capital of France", k=1, filter="lang == 'en'")

Everything goes through the collection's own API
(:meth:`~ragkit.collection.Collection.add_texts`, ``search``,
``get_documents``, ``delete_documents``), so what LangChain adds is
chunked, embedded, deduplicated and indexed for keywords exactly as a
``ragkit ingest`` would, and ragkit's CLI, service and pipelines see it.

- A LangChain document id is the ragkit source id. Without one, the id is
  derived from the text and metadata (``text-<hash>``), so adding the same
  document twice stores it once.
- A document's metadata comes back as it went in (ragkit keeps its own keys
  apart). A text longer than the collection's chunk size is split: a search
  then returns the matching chunk under the text's id, with ``section`` /
  ``headings`` added where the text has Markdown headings.
- ``filter`` is ragkit's filter language: an expression
  (``"lang == 'en' and year >= 2020"``) or a dict (``{"lang": "en"}``,
  ``{"year": {"$gte": 2020}}``); ``source`` is the document id.
- Scores are cosine similarities (relevance scores map them onto 0..1).
- Given an ``embedding`` (any LangChain ``Embeddings``), a new collection
  embeds with it (through ``embedder.langchain``); without one it uses the
  collection's own embedder (the packaged model by default), which
  :attr:`RagkitVectorStore.embeddings` exposes as LangChain ``Embeddings``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ragkit.collection import Collection
from ragkit.collection.texts import RESERVED_KEYS
from ragkit.config import CollectionConfig
from ragkit.errors import ConfigError
from ragkit.filters import FilterLike
from ragkit.retrieval import prepare_filter
from ragkit.schema import Document, Hit
from ragkit_langchain.embeddings import LangChainEmbedder, RagkitEmbeddings


def _user_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A chunk's metadata without ragkit's bookkeeping keys."""
    return {k: v for k, v in metadata.items() if k not in RESERVED_KEYS}


def hit_document(hit: Hit) -> LCDocument:
    """A LangChain document of a stored chunk: its text, its document's metadata and id."""
    chunk = hit.chunk
    return LCDocument(page_content=chunk.text, metadata=_user_metadata(chunk.metadata), id=chunk.source)


class RagkitVectorStore(VectorStore):
    """A ragkit :class:`~ragkit.collection.Collection` as a LangChain ``VectorStore`` (see the module docstring).

    Args:
        collection: An open collection, or the name of one to open (created when missing).
        embedding: LangChain ``Embeddings`` for a collection created here; for one that exists,
            it must be the embedder it was created with.
        store_dir: The ragkit store folder (default: ``RAGKIT_HOME``).
        config: The collection config for one created here (its embedder is replaced by ``embedding``).

    """

    def __init__(
        self,
        collection: Collection | str,
        embedding: Embeddings | None = None,
        *,
        store_dir: str | Path | None = None,
        config: CollectionConfig | dict[str, Any] | None = None,
    ) -> None:
        wrapped = LangChainEmbedder.wrap(embedding) if embedding is not None else None
        if isinstance(collection, Collection):
            self.collection = collection
        else:
            exists = collection in Collection.names(store_dir)
            if exists:
                self.collection = Collection.open(collection, store_dir)
            else:
                wanted = dict(config.model_dump() if isinstance(config, CollectionConfig) else config or {})
                if wrapped is not None:
                    wanted["embedder"] = wrapped.to_config()
                self.collection = Collection.create(collection, wanted, store_dir)
        recorded = self.collection.embedding.get("fingerprint")
        if wrapped is not None and recorded != wrapped.fingerprint:
            raise ConfigError(
                f"collection {self.collection.name!r} embeds with {recorded}, not with the given "
                f"{type(embedding).__name__} ({wrapped.fingerprint}); open it without embedding= or use another name"
            )
        self._embedding = embedding
        self._writing = threading.Lock()
        """Writes from this process's threads (LangChain's async twins run in an executor) take turns."""

    # -- what LangChain asks of a store ---------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        """The ``Embeddings`` given, else the collection's embedder as LangChain ``Embeddings``."""
        return self._embedding if self._embedding is not None else RagkitEmbeddings(self.collection.embedder)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add texts (chunked, embedded and indexed by the collection); returns their ids.

        An id of ``None`` in ``ids`` (a document without one) gets one derived from its text and metadata.
        """
        given: list[str | None] | None = list(ids) if ids is not None else None
        with self._writing:
            return self.collection.add_texts(list(texts), metadatas=metadatas, ids=given)

    def add_documents(self, documents: list[LCDocument], **kwargs: Any) -> list[str]:
        """Add LangChain documents; a document's ``id`` (or ``ids=``) names it."""
        ids = kwargs.pop("ids", None)
        if ids is None:
            ids = [doc.id for doc in documents]
        return self.add_texts(
            [doc.page_content for doc in documents], [dict(doc.metadata) for doc in documents], ids=ids
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents ``ids`` (unknown ones ignored); ``ids=None`` deletes nothing and returns ``None``."""
        if ids is None:
            return None
        with self._writing:
            self.collection.delete_documents(list(ids))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[LCDocument]:
        """The documents stored under ``ids`` (missing ones left out), each as it was added."""
        found: dict[str, Document] = {}
        for doc in self.collection.get_documents(list(ids)):
            found.setdefault(doc.source, doc)
        return [
            LCDocument(page_content=doc.text or "", metadata=_user_metadata(doc.metadata), id=source)
            for source, doc in found.items()
        ]

    # -- search ----------------------------------------------------------------------------

    def _empty(self) -> bool:
        return self.collection.store.count() == 0

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: FilterLike = None, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        """The ``k`` chunks most similar to ``query`` with their cosine scores, best first."""
        if self._empty():
            return []
        hits = self.collection.search(query, top_k=k, filters=filter)
        return [(hit_document(hit), float(hit.score)) for hit in hits]

    def similarity_search(self, query: str, k: int = 4, filter: FilterLike = None, **kwargs: Any) -> list[LCDocument]:
        """The ``k`` chunks most similar to ``query``, best first; ``filter`` in ragkit's filter language."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def _search_vector(self, embedding: Sequence[float], k: int, filter: FilterLike) -> list[Hit]:
        if self._empty():
            return []
        store = self.collection.store
        flt = prepare_filter(filter, store, f"collection {self.collection.name!r}")
        vector = np.asarray([embedding], dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return store.search(vector / (norm or 1.0), k, flt)[0]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: FilterLike = None, **kwargs: Any
    ) -> list[LCDocument]:
        """The ``k`` chunks nearest to ``embedding`` (normalised first), best first."""
        return [hit_document(hit) for hit in self._search_vector(embedding, k, filter)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: FilterLike = None, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        """The ``k`` chunks nearest to ``embedding`` with their cosine scores."""
        return [(hit_document(hit), float(hit.score)) for hit in self._search_vector(embedding, k, filter)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity (-1..1) onto LangChain's relevance scale (0..1)."""
        return lambda score: max(0.0, min(1.0, (score + 1.0) / 2.0))

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: FilterLike = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        """``k`` chunks chosen among the ``fetch_k`` nearest for relevance and diversity (MMR).

        The candidates' vectors are their texts embedded again by the collection's
        embedder (read from its embedding cache when it has them).
        """
        hits = self._search_vector(embedding, fetch_k, filter)
        if not hits:
            return []
        vectors = self.collection.embedder.embed_documents([hit.chunk.text for hit in hits])
        query = np.asarray(embedding, dtype=np.float32)
        chosen = maximal_marginal_relevance(query, list(vectors), lambda_mult=lambda_mult, k=k)
        return [hit_document(hits[i]) for i in chosen]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: FilterLike = None,
        **kwargs: Any,
    ) -> list[LCDocument]:
        """MMR over the ``fetch_k`` chunks nearest to ``query`` (see the ``_by_vector`` form)."""
        vector = self.collection.embedder.embed_queries([query])[0]
        return self.max_marginal_relevance_search_by_vector(vector.tolist(), k, fetch_k, lambda_mult, filter)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection_name: str = "langchain",
        store_dir: str | Path | None = None,
        config: CollectionConfig | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> RagkitVectorStore:
        """A store over ``collection_name`` (created when missing, embedding with ``embedding``) holding ``texts``."""
        store = cls(collection_name, embedding, store_dir=store_dir, config=config)
        store.add_texts(texts, metadatas, ids=list(ids) if ids is not None else None)
        return store

    @classmethod
    def from_documents(
        cls, documents: list[LCDocument], embedding: Embeddings | None = None, **kwargs: Any
    ) -> RagkitVectorStore:  # type: ignore[override]
        """:meth:`from_texts` with LangChain documents (their ids kept)."""
        if "ids" not in kwargs and any(doc.id for doc in documents):
            kwargs["ids"] = [doc.id for doc in documents]
        return cls.from_texts(
            [doc.page_content for doc in documents], embedding, [dict(doc.metadata) for doc in documents], **kwargs
        )
