"""The retriever stages over a collection: ``dense`` (vectors) and ``lexical`` (BM25).

Both search the collection the request names; filters are checked against
the collection's fields first, so a typo in a field name is an error, not
an empty result. A ``passage`` query (a HyDE answer) is embedded as a
document, a question as a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ragkit import tracing
from ragkit.errors import InputError, NotFoundError
from ragkit.filters import FilterLike
from ragkit.query.stages import RetrieverStage
from ragkit.registry import register
from ragkit.retrieval import prepare_filter
from ragkit.schema import Hit

if TYPE_CHECKING:
    from ragkit.collection import Collection
    from ragkit.query.state import Query

_plain: dict[str, RetrieverStage] = {}


def retriever_of(mode: str) -> RetrieverStage:
    """The retriever stage of type ``mode`` with default options (shared), else an :class:`InputError`.

    This is what a plain search (``Collection.search``, ``--mode``) runs: the registered retriever, no
    threshold. The error names the known retriever types.
    """
    retriever = _plain.get(mode)
    if retriever is None:
        from ragkit import registry

        try:
            cls = registry.get("retriever", mode) if isinstance(mode, str) else None
        except NotFoundError:
            cls = None
        if cls is None or not issubclass(cls, RetrieverStage):
            known = ", ".join(registry.available("retriever"))
            raise InputError(f"search mode must be one of {known}; got {mode!r}")
        retriever = _plain[mode] = cls()
        retriever.label = mode
    return retriever


@register("retriever", "dense")
class DenseRetrieverStage(RetrieverStage):
    """Nearest chunks by the collection's embedder and vector store (cosine scores)."""

    def retrieve_many(
        self, collection: Collection, queries: Sequence[Query], top_k: int, filters: FilterLike
    ) -> list[list[Hit]]:
        """One embedding call per query kind, one store search for all queries."""
        flt = prepare_filter(filters, collection.store, f"collection {collection.name!r}")
        if not queries:
            return []
        embedder = collection.embedder
        questions = [i for i, q in enumerate(queries) if q.kind == "question"]
        passages = [i for i, q in enumerate(queries) if q.kind == "passage"]
        with tracing.embeddings(embedder, queries):
            if not passages:
                vectors = embedder.embed_queries([q.text for q in queries])
            else:
                vectors = np.empty((len(queries), embedder.dimension), dtype=np.float32)
                if questions:
                    vectors[questions] = embedder.embed_queries([queries[i].text for i in questions])
                vectors[passages] = embedder.embed_documents([queries[i].text for i in passages])
        return collection.store.search(vectors, top_k, flt)


@register("retriever", "lexical")
class LexicalRetrieverStage(RetrieverStage):
    """BM25 keyword search over the collection's keyword index."""

    def retrieve_many(
        self, collection: Collection, queries: Sequence[Query], top_k: int, filters: FilterLike
    ) -> list[list[Hit]]:
        """One index call for all queries; chunks fetched by id."""
        return collection.lexical_retriever().retrieve_many([q.text for q in queries], top_k, filters)
