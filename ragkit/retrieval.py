"""Retrievers over a collection's indexes: dense (vectors) and lexical (BM25).

Both implement :class:`ragkit.protocols.Retriever`. Filters are parsed and
checked against the fields the collection actually has before any search,
so a typo in a field name is an error, not an empty result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ragkit.filters import Filter, FilterLike, check_fields, parse_filter
from ragkit.protocols import Embedder, LexicalIndex, VectorIndex
from ragkit.schema import Hit


def prepare_filter(spec: FilterLike, index: VectorIndex | LexicalIndex, where: str) -> Filter | None:
    """Parse a filter and refuse it if it names a field no chunk in ``index`` has."""
    flt = parse_filter(spec)
    check_fields(flt, index.metadata_fields(), where)
    return flt


class _BatchRetriever:
    """A retriever whose single-query methods are its batch method with one query."""

    def retrieve_many(self, queries: Sequence[str], top_k: int = 5, filters: FilterLike = None) -> list[list[Hit]]:
        """Best ``top_k`` hits for each of ``queries``."""
        raise NotImplementedError

    def retrieve(self, query: str, top_k: int = 5, filters: FilterLike = None) -> list[Hit]:
        """Best ``top_k`` hits for ``query``, optionally restricted by a metadata filter."""
        return self.retrieve_many([query], top_k, filters)[0]

    async def aretrieve(self, query: str, top_k: int = 5, filters: FilterLike = None) -> list[Hit]:
        """Async twin of :meth:`retrieve` (runs in a worker thread)."""
        return await asyncio.to_thread(self.retrieve, query, top_k, filters)


class DenseRetriever(_BatchRetriever):
    """Embeds the query and searches the vector store."""

    def __init__(self, embedder: Embedder, store: VectorIndex, name: str = "collection") -> None:
        self.embedder = embedder
        self.store = store
        self.name = name

    def retrieve_many(self, queries: Sequence[str], top_k: int = 5, filters: FilterLike = None) -> list[list[Hit]]:
        """Batch form of :meth:`retrieve`: one embedding call for all queries."""
        flt = prepare_filter(filters, self.store, f"collection {self.name!r}")
        if not queries:
            return []
        vectors = self.embedder.embed_queries(list(queries))
        return self.store.search(vectors, top_k, flt)


class LexicalRetriever(_BatchRetriever):
    """BM25 keyword search; the index keeps the chunks it returns, so no other store is asked."""

    def __init__(self, index: LexicalIndex, name: str = "collection") -> None:
        self.index = index
        self.name = name

    def retrieve_many(self, queries: Sequence[str], top_k: int = 5, filters: FilterLike = None) -> list[list[Hit]]:
        """Batch form of :meth:`retrieve`."""
        flt = prepare_filter(filters, self.index, f"collection {self.name!r}")
        return self.index.search_hits(list(queries), top_k, flt)
