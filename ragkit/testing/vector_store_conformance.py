"""One conformance suite for the :class:`~ragkit.protocols.VectorStore` protocol.

Every store (the built-in FAISS store, ``ragkit-milvus``, a third party's)
runs the same tests by subclassing :class:`VectorStoreConformance` in a test
module and providing a ``make_store`` fixture::

    from ragkit.testing.vector_store_conformance import VectorStoreConformance

    class TestMyStore(VectorStoreConformance):
        @pytest.fixture
        def make_store(self):
            def make(path, dimension):
                return MyStore(path=path, dimension=dimension, name="test")
            return make

``make_store(path, dimension)`` builds a store in ``path`` (a folder that may
not exist yet) and is also called again with the same path to reopen a
closed store, which is how durability is tested. Stores the suite opens are
closed when each test ends.

The filter tests take :meth:`ragkit.filters.Filter.matches` over a chunk's
metadata plus its ``source`` and ``document_id`` as the reference: a store
must return exactly the chunks it accepts. The data is small (tens to a few
hundred vectors of dimension :attr:`VectorStoreConformance.dimension`), so
the whole suite takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pytest

from ragkit.errors import ConflictError
from ragkit.filters import FilterLike, parse_filter
from ragkit.hashing import content_hash
from ragkit.protocols import (
    STORE_CAPABILITIES,
    DocumentChunks,
    DroppableStore,
    RefreshableStore,
    StoreWithStats,
    VectorStore,
    capabilities_of,
)
from ragkit.schema import Chunk, Hit, SourceRecord
from ragkit.stores.base import StoreBase

StoreFactory = Callable[[Path, int], VectorStore]
Metadata = dict[str, Any]

TRICKY_STRING = 'it\'s "quoted" \\ back\\slashed\nnew line, ünïcode 漢字'
"""A metadata value that a store's filter translation must escape correctly."""


def unit_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    """``count`` seeded random float32 vectors of length 1."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def make_chunk(
    key: str,
    *,
    source: str = "docs/a.md",
    document_id: str | None = None,
    metadata: Metadata | None = None,
    text: str | None = None,
    start: int = 0,
) -> Chunk:
    """A chunk whose id, text and offsets derive from ``key``."""
    text = text if text is not None else f"chunk {key} of {source}"
    return Chunk(
        id=f"id-{key}",
        document_id=document_id if document_id is not None else f"doc-{source}",
        source=source,
        text=text,
        start=start,
        end=start + len(text),
        metadata=dict(metadata or {}),
        content_hash=content_hash(text),
    )


def filter_view(chunk: Chunk) -> Metadata:
    """What filters see of a chunk: its metadata plus ``source`` and ``document_id``."""
    return {**chunk.metadata, "source": chunk.source, "document_id": chunk.document_id}


def brute_force(vectors: np.ndarray, query: np.ndarray, top_k: int) -> tuple[list[int], list[float]]:
    """Indices and cosine scores of the ``top_k`` rows nearest ``query``, best first."""
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [int(i) for i in order], [float(scores[i]) for i in order]


class StoreOpener:
    """Opens stores through the module's factory and closes what is still open at the end."""

    def __init__(self, factory: StoreFactory, root: Path, dimension: int) -> None:
        self.factory = factory
        self.root = root
        self.dimension = dimension
        self.open_stores: list[tuple[VectorStore, Path]] = []

    def open(self, name: str = "store", dimension: int | None = None) -> VectorStore:
        """A store in ``root/name`` (reopened when it already holds one)."""
        path = self.root / name
        store = self.factory(path, dimension or self.dimension)
        self.open_stores.append((store, path))
        return store

    def close(self, store: VectorStore) -> Path:
        """Close ``store``; returns its folder."""
        for i, (opened, path) in enumerate(self.open_stores):
            if opened is store:
                del self.open_stores[i]
                store.close()
                return path
        raise AssertionError("store was not opened by this StoreOpener, or is already closed")

    def reopen(self, store: VectorStore) -> VectorStore:
        """Close ``store`` and open its folder again."""
        path = self.close(store)
        return self.open(path.name)

    def close_all(self) -> None:
        """Close every store still open."""
        while self.open_stores:
            self.close(self.open_stores[-1][0])


# A corpus for the filter tests: each chunk's metadata varies so every
# operator has matches and non-matches, and `page` is missing on some chunks.
_LANGS = ("en", "de", "fr")
FILTER_CASES: list[FilterLike] = [
    'lang == "en"',
    "page == 3",
    "draft == true",
    "draft == false",
    "draft",
    "not draft",
    "rank == 2.5",
    'lang != "en"',
    "page != 3",
    "page < 3",
    "page <= 3",
    "page > 7",
    "page >= 7",
    "rank > 4",
    "rank <= 1.5",
    "2 <= page < 5",
    "page > 2 and page < 5",
    'lang in ["en", "fr"]',
    "page in [1, 2, 9]",
    'lang not in ["en"]',
    "page not in [1, 2]",
    'lang == "en" and page >= 5',
    'lang == "en" or page == 2',
    'not (lang == "en")',
    "not page == 3",
    "not (page in [1, 2])",
    "not (page not in [1, 2])",
    "not (page != 3)",
    "not (page < 5)",
    '(lang == "de" or draft) and not (page > 5)',
    'not (lang == "en" and (page < 5 or draft))',
    'not (not (lang == "fr") or page >= 4)',
    "page < 3 or page > 7 or rank == 0",
    f"tag == {TRICKY_STRING!r}",
    f"tag != {TRICKY_STRING!r}",
    f"tag in [{TRICKY_STRING!r}, 'plain']",
    'tag == "plain"',
    'source == "src1.md"',
    'source != "src1.md"',
    'source in ["src0.md", "src2.md"]',
    'source not in ["src0.md"]',
    'document_id == "doc-3"',
    'document_id in ["doc-1", "doc-4"] and lang == "de"',
    'not (source == "src0.md") and document_id != "doc-2"',
    {"$and": [{"lang": {"$in": ["en", "de"]}}, {"page": {"$gte": 4}}]},
    {"$or": [{"source": "src2.md"}, {"$not": {"draft": True}}]},
    {"page": {"$gt": 1, "$lt": 6}},
    {"lang": {"$nin": ["de", "fr"]}},
]


def filter_corpus(count: int, dimension: int, seed: int = 7) -> tuple[list[Chunk], np.ndarray]:
    """``count`` chunks with varied metadata, and their vectors."""
    chunks = []
    for i in range(count):
        metadata: Metadata = {"lang": _LANGS[i % 3], "draft": i % 2 == 0, "rank": (i % 9) * 0.5}
        if i % 4 != 3:
            metadata["page"] = i % 10  # missing on every fourth chunk
        if i % 5 == 0:
            metadata["tag"] = TRICKY_STRING if i % 10 == 0 else "plain"
        chunks.append(make_chunk(f"f{i:03d}", source=f"src{i % 3}.md", document_id=f"doc-{i % 5}", metadata=metadata))
    return chunks, unit_vectors(count, dimension, seed)


class VectorStoreConformance:
    """The tests every :class:`~ragkit.protocols.VectorStore` must pass.

    Subclass it in a test module whose name starts with ``Test`` and provide a
    ``make_store`` fixture returning a factory ``(path, dimension) -> store``.
    """

    dimension: ClassVar[int] = 16
    """Vector length of the stores under test."""
    score_tolerance: ClassVar[float] = 1e-4
    """Allowed difference between a hit's score and the exact cosine similarity."""

    # -- fixtures -------------------------------------------------------------------------

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        """Provided by the subclass: ``(path, dimension) -> VectorStore``."""
        raise NotImplementedError("a VectorStoreConformance subclass must define the make_store fixture")

    @pytest.fixture
    def stores(self, make_store: StoreFactory, tmp_path: Path) -> Iterator[StoreOpener]:
        """Opens stores under ``tmp_path`` and closes them after the test."""
        opener = StoreOpener(make_store, tmp_path, self.dimension)
        yield opener
        opener.close_all()

    @pytest.fixture
    def store(self, stores: StoreOpener) -> VectorStore:
        """A fresh, empty store."""
        return stores.open()

    # -- helpers ----------------------------------------------------------------------------

    def corpus(self, count: int, seed: int = 1, source: str = "docs/a.md") -> tuple[list[Chunk], np.ndarray]:
        """``count`` chunks of one source, each with a little metadata, and their vectors."""
        chunks = [
            make_chunk(
                f"{source}-{i:03d}",
                source=source,
                metadata={"n": i, "parity": "even" if i % 2 == 0 else "odd"},
                start=i * 100,
            )
            for i in range(count)
        ]
        return chunks, unit_vectors(count, self.dimension, seed)

    def queries(self, count: int, seed: int = 99) -> np.ndarray:
        """Query vectors unrelated to the stored ones."""
        return unit_vectors(count, self.dimension, seed)

    def all_matching(self, store: VectorStore, flt: FilterLike, seed: int = 5) -> list[Hit]:
        """Every hit the store returns for a filtered search with a top_k larger than the store."""
        parsed = parse_filter(flt)
        [hits] = store.search(self.queries(1, seed), top_k=store.count() + 10, filter=parsed)
        return hits

    def assert_same_chunk(self, actual: Chunk, expected: Chunk) -> None:
        """Every field of the chunk came back as it was stored."""
        assert actual.to_dict() == expected.to_dict()

    def assert_best_first(self, hits: Sequence[Hit]) -> None:
        """Scores do not increase along the list."""
        scores = [hit.score for hit in hits]
        assert scores == sorted(scores, reverse=True), f"hits are not best first: {scores}"

    # -- search -------------------------------------------------------------------------

    def test_search_returns_nearest_by_cosine_best_first(self, store: VectorStore) -> None:
        """Hits are the exact cosine nearest neighbours, best first, each with its whole stored chunk."""
        chunks, vectors = self.corpus(80)
        store.upsert(chunks, vectors)
        for query in self.queries(4):
            expected_ids, expected_scores = brute_force(vectors, query, 10)
            [hits] = store.search(query[None, :], top_k=10)
            assert [hit.chunk.id for hit in hits] == [chunks[i].id for i in expected_ids]
            for hit, index, score in zip(hits, expected_ids, expected_scores, strict=True):
                assert hit.origin == "dense"
                assert isinstance(hit.score, float)
                assert hit.score == pytest.approx(score, abs=self.score_tolerance)
                self.assert_same_chunk(hit.chunk, chunks[index])

    def test_stored_vector_is_its_own_best_match(self, store: VectorStore) -> None:
        """A stored vector finds its own chunk first, with a score of 1."""
        chunks, vectors = self.corpus(30)
        store.upsert(chunks, vectors)
        results = store.search(vectors[[3, 17]], top_k=1)
        assert [hits[0].chunk.id for hits in results] == [chunks[3].id, chunks[17].id]
        assert all(hits[0].score == pytest.approx(1.0, abs=self.score_tolerance) for hits in results)

    def test_hit_carries_the_whole_chunk(self, store: VectorStore) -> None:
        """Text (long, non-ASCII), offsets, ids and nested metadata come back unchanged."""
        long_text = "Ünïcödé text, 漢字 and emoji 🙂. " * 200  # several thousand characters
        chunk = make_chunk(
            "whole",
            source="guides/intro.md",
            document_id="doc-intro",
            text=long_text,
            start=1234,
            metadata={"page": 3, "headings": ["Intro", "Über"], "score": 0.25, "draft": False, "author": "Ann"},
        )
        vector = unit_vectors(1, self.dimension, 3)
        store.upsert([chunk], vector)
        [[hit]] = store.search(vector, top_k=5)
        self.assert_same_chunk(hit.chunk, chunk)
        [got] = store.get([chunk.id])
        self.assert_same_chunk(got, chunk)

    def test_top_k_bounds_the_hits(self, store: VectorStore) -> None:
        """``top_k`` caps the hits; a ``top_k`` beyond the store's size returns everything."""
        chunks, vectors = self.corpus(25)
        store.upsert(chunks, vectors)
        query = self.queries(1)
        assert len(store.search(query, top_k=1)[0]) == 1
        assert len(store.search(query, top_k=7)[0]) == 7
        everything = store.search(query, top_k=100)[0]
        assert sorted(hit.chunk.id for hit in everything) == sorted(c.id for c in chunks)
        self.assert_best_first(everything)

    def test_top_k_zero_gives_no_hits(self, store: VectorStore) -> None:
        """``top_k=0`` returns one empty list per query."""
        chunks, vectors = self.corpus(5)
        store.upsert(chunks, vectors)
        assert store.search(self.queries(2), top_k=0) == [[], []]

    def test_several_queries_at_once(self, store: VectorStore) -> None:
        """A batch of queries gives the same hits as asking one at a time."""
        chunks, vectors = self.corpus(60)
        store.upsert(chunks, vectors)
        queries = self.queries(5)
        together = store.search(queries, top_k=6)
        assert len(together) == 5
        for query, hits in zip(queries, together, strict=True):
            alone = store.search(query[None, :], top_k=6)[0]
            assert [hit.chunk.id for hit in hits] == [hit.chunk.id for hit in alone]
            expected_ids, _ = brute_force(vectors, query, 6)
            assert [hit.chunk.id for hit in hits] == [chunks[i].id for i in expected_ids]

    def test_empty_store_searches_to_empty_lists(self, store: VectorStore) -> None:
        """An empty store answers every read with nothing rather than an error."""
        queries = self.queries(3)
        assert store.search(queries, top_k=5) == [[], [], []]
        assert store.search(queries, top_k=5, filter=parse_filter('lang == "en"')) == [[], [], []]
        assert store.count() == 0
        assert store.get(["id-nothing"]) == []
        assert [c for batch in store.iter_chunks() for c in batch] == []
        assert store.sources() == {}

    # -- writes -------------------------------------------------------------------------

    def test_upsert_nothing_is_a_no_op(self, store: VectorStore) -> None:
        """Upserting no chunks writes nothing and raises nothing."""
        store.upsert([], np.zeros((0, self.dimension), dtype=np.float32))
        assert store.count() == 0

    def test_upsert_of_an_existing_id_replaces_it(self, store: VectorStore) -> None:
        """Upserting an existing id replaces its text, metadata and vector; the count is unchanged."""
        chunks, vectors = self.corpus(20)
        store.upsert(chunks, vectors)
        old = chunks[4]
        new = make_chunk("replacement", source=old.source, metadata={"n": 1000, "parity": "none"}, text="new text")
        new.id = old.id
        new_vector = self.queries(1, seed=123)
        store.upsert([new], new_vector)
        assert store.count() == 20
        [got] = store.get([old.id])
        self.assert_same_chunk(got, new)
        [[best]] = store.search(new_vector, top_k=1)
        assert best.chunk.id == old.id
        assert best.score == pytest.approx(1.0, abs=self.score_tolerance)
        self.assert_same_chunk(best.chunk, new)
        # the old vector and metadata are gone with the old version
        [old_hits] = store.search(vectors[4][None, :], top_k=20)
        assert all(hit.score < 1.0 - 1e-3 for hit in old_hits if hit.chunk.id == old.id)
        assert old.id not in {hit.chunk.id for hit in self.all_matching(store, "n == 4")}
        assert old.id in {hit.chunk.id for hit in self.all_matching(store, "n == 1000")}

    def test_upsert_same_batch_twice_is_idempotent(self, store: VectorStore) -> None:
        """Writing the same batch twice (a re-run after a crash) stores it once."""
        chunks, vectors = self.corpus(15)
        store.upsert(chunks, vectors)
        store.upsert(chunks, vectors)
        assert store.count() == 15
        ids = [c.id for batch in store.iter_chunks() for c in batch]
        assert sorted(ids) == sorted(c.id for c in chunks)

    def test_upsert_of_wrong_dimension_is_a_conflict(self, store: VectorStore) -> None:
        """Vectors of another length are refused with a ConflictError naming both lengths."""
        chunks, _ = self.corpus(3)
        wrong = unit_vectors(3, self.dimension + 3, 1)
        with pytest.raises(ConflictError) as info:
            store.upsert(chunks, wrong)
        message = str(info.value)
        assert str(self.dimension) in message and str(self.dimension + 3) in message
        assert store.count() == 0

    def test_query_of_wrong_dimension_is_a_conflict(self, store: VectorStore) -> None:
        """Query vectors of another length are refused with a ConflictError naming both lengths."""
        chunks, vectors = self.corpus(3)
        store.upsert(chunks, vectors)
        with pytest.raises(ConflictError) as info:
            store.search(unit_vectors(1, self.dimension - 1, 1), top_k=3)
        assert str(self.dimension) in str(info.value) and str(self.dimension - 1) in str(info.value)

    def test_reopening_with_another_dimension_is_a_conflict(self, stores: StoreOpener) -> None:
        """Reopening a store with another dimension is refused with a ConflictError."""
        store = stores.open("dims")
        chunks, vectors = self.corpus(3)
        store.upsert(chunks, vectors)
        stores.close(store)
        with pytest.raises(ConflictError) as info:
            stores.open("dims", dimension=self.dimension * 2)
        assert str(self.dimension) in str(info.value) and str(self.dimension * 2) in str(info.value)

    # -- sources ----------------------------------------------------------------------------

    def test_commit_sources_deletes_stale_chunks_of_that_source_only(self, store: VectorStore) -> None:
        """Committing a source deletes its chunks not in ``chunk_ids``; until then they stay readable."""
        a_chunks, a_vectors = self.corpus(6, seed=1, source="a.md")
        b_chunks, b_vectors = self.corpus(4, seed=2, source="b.md")
        store.upsert(a_chunks + b_chunks, np.vstack([a_vectors, b_vectors]))
        store.commit_sources(
            [
                SourceRecord("a.md", "hash-a1", chunk_ids=[c.id for c in a_chunks], chunk_count=6),
                SourceRecord("b.md", "hash-b1", chunk_ids=[c.id for c in b_chunks], chunk_count=4),
            ]
        )
        assert store.count() == 10

        # a.md changes: chunks 0-1 stay, one new chunk, chunks 2-5 are stale
        fresh, fresh_vector = self.corpus(1, seed=3, source="a.md")
        fresh[0].id = "id-a-fresh"
        store.upsert(fresh, fresh_vector)
        assert store.count() == 11  # until the commit, the old chunks stay readable
        assert len(store.get([c.id for c in a_chunks])) == 6

        keep = [a_chunks[0].id, a_chunks[1].id, "id-a-fresh"]
        store.commit_sources([SourceRecord("a.md", "hash-a2", chunk_ids=keep, chunk_count=3)])
        assert store.count() == 7
        assert [c.id for c in store.get(keep)] == keep
        assert store.get([c.id for c in a_chunks[2:]]) == []
        assert len(store.get([c.id for c in b_chunks])) == 4
        hit_ids = {hit.chunk.id for hit in store.search(self.queries(1), top_k=50)[0]}
        assert hit_ids == set(keep) | {c.id for c in b_chunks}
        assert store.sources()["a.md"].content_hash == "hash-a2"
        assert store.sources()["b.md"].content_hash == "hash-b1"

    def test_commit_of_a_source_with_no_chunks_left(self, store: VectorStore) -> None:
        """A source committed with no chunk ids loses all its chunks but keeps its record."""
        chunks, vectors = self.corpus(3, source="gone.md")
        store.upsert(chunks, vectors)
        store.commit_sources([SourceRecord("gone.md", "h1", chunk_ids=[c.id for c in chunks], chunk_count=3)])
        store.commit_sources([SourceRecord("gone.md", "h2", chunk_ids=[], chunk_count=0)])
        assert store.count() == 0
        assert store.sources()["gone.md"].chunk_count == 0

    def test_sources_returns_committed_records(self, store: VectorStore) -> None:
        """``sources()`` returns every committed record field; committing again replaces it."""
        records = [
            SourceRecord("notes/a.md", "hash-a", size=120, mtime=1_700_000_000.25, document_ids=["d1"], chunk_count=2),
            SourceRecord(
                "https://example.org/b?x=1&y='2'",
                "hash-b",
                size=99_999_999_999,
                mtime=0.5,
                document_ids=[f"d-{i}" for i in range(3)],
                chunk_count=0,
            ),
        ]
        store.commit_sources(records)
        got = store.sources()
        assert set(got) == {"notes/a.md", "https://example.org/b?x=1&y='2'"}
        for record in records:
            assert got[record.source].to_dict() == record.to_dict()
        # committing again replaces the record
        store.commit_sources([SourceRecord("notes/a.md", "hash-a2", size=1, mtime=2.0, document_ids=[], chunk_count=0)])
        assert store.sources()["notes/a.md"].to_dict() == {
            "source": "notes/a.md",
            "content_hash": "hash-a2",
            "size": 1,
            "mtime": 2.0,
            "document_ids": [],
            "chunk_count": 0,
        }

    def test_a_source_with_many_documents(self, store: VectorStore) -> None:
        """A source with thousands of documents (a big JSONL file) keeps every document id."""
        document_ids = [content_hash(f"doc {i}") for i in range(3000)]  # e.g. a big JSONL file
        store.commit_sources([SourceRecord("big.jsonl", "h", document_ids=document_ids, chunk_count=3000)])
        assert store.sources()["big.jsonl"].document_ids == document_ids

    def test_sources_survive_reopen(self, stores: StoreOpener) -> None:
        """Source records survive close and reopen."""
        store = stores.open()
        chunks, vectors = self.corpus(4, source="kept.md")
        store.upsert(chunks, vectors)
        record = SourceRecord(
            "kept.md",
            "hash-k",
            size=42,
            mtime=12.5,
            document_ids=["doc-kept.md"],
            chunk_count=4,
            chunk_ids=[c.id for c in chunks],
        )
        store.commit_sources([record])
        store = stores.reopen(store)
        assert {s: r.to_dict() for s, r in store.sources().items()} == {"kept.md": record.to_dict()}

    # -- durability -----------------------------------------------------------------------

    def test_chunks_and_vectors_survive_reopen(self, stores: StoreOpener) -> None:
        """Chunks and vectors survive close and reopen: counts, gets and searches are unchanged."""
        store = stores.open()
        chunks, vectors = self.corpus(40)
        store.upsert(chunks, vectors)
        query = self.queries(1)
        before = store.search(query, top_k=5)
        store = stores.reopen(store)
        assert store.count() == 40
        assert store.dimension == self.dimension
        after = store.search(query, top_k=5)
        assert [h.chunk.id for h in after[0]] == [h.chunk.id for h in before[0]]
        assert [h.score for h in after[0]] == pytest.approx([h.score for h in before[0]], abs=self.score_tolerance)
        for got, expected in zip(store.get([c.id for c in chunks]), chunks, strict=True):
            self.assert_same_chunk(got, expected)

    def test_flushed_writes_are_kept_after_more_writes_and_reopen(self, stores: StoreOpener) -> None:
        """Writes and deletes after a flush are kept by close and reopen too."""
        store = stores.open()
        first, first_vectors = self.corpus(10, seed=1, source="one.md")
        store.upsert(first, first_vectors)
        store.flush()
        second, second_vectors = self.corpus(10, seed=2, source="two.md")
        store.upsert(second, second_vectors)
        store.delete_sources(["one.md"])
        store = stores.reopen(store)
        assert sorted(c.id for batch in store.iter_chunks() for c in batch) == sorted(c.id for c in second)
        [[best]] = store.search(second_vectors[[2]], top_k=1)
        assert best.chunk.id == second[2].id

    # -- deletes ----------------------------------------------------------------------------

    def test_delete_sources_returns_count_and_removes_chunks(self, store: VectorStore) -> None:
        """``delete_sources`` returns the chunks deleted and removes them from search, get and sources."""
        sizes = [("a", 5), ("b", 3), ("c", 4)]
        groups = {name: self.corpus(n, seed=i, source=name) for i, (name, n) in enumerate(sizes)}
        for chunks, vectors in groups.values():
            store.upsert(chunks, vectors)
        store.commit_sources(
            [
                SourceRecord(name, f"h-{name}", chunk_ids=[c.id for c in chunks], chunk_count=len(chunks))
                for name, (chunks, _) in groups.items()
            ]
        )
        assert store.count() == 12
        assert store.delete_sources(["a", "c", "never-ingested"]) == 9
        assert store.count() == 3
        assert set(store.sources()) == {"b"}
        gone = [c.id for name in ("a", "c") for c in groups[name][0]]
        assert store.get(gone) == []
        hit_ids = {hit.chunk.id for hit in store.search(self.queries(1), top_k=50)[0]}
        assert hit_ids == {c.id for c in groups["b"][0]}
        assert store.delete_sources(["a"]) == 0
        assert store.delete_sources([]) == 0

    def test_delete_documents_returns_count_and_removes_chunks(self, store: VectorStore) -> None:
        """``delete_documents`` returns the chunks deleted and leaves other documents of the source."""
        chunks = [make_chunk(f"d{i}", source="multi.jsonl", document_id=f"doc-{i % 4}") for i in range(12)]
        vectors = unit_vectors(12, self.dimension, 8)
        store.upsert(chunks, vectors)
        assert store.delete_documents(["doc-1", "doc-3", "doc-unknown"]) == 6
        left = {c.id for batch in store.iter_chunks() for c in batch}
        assert left == {c.id for c in chunks if c.document_id in ("doc-0", "doc-2")}
        assert store.count() == 6
        assert store.get([c.id for c in chunks if c.document_id == "doc-1"]) == []
        hits = store.search(vectors, top_k=12)
        assert all(hit.chunk.document_id in ("doc-0", "doc-2") for row in hits for hit in row)
        assert store.delete_documents(["doc-1"]) == 0

    # -- reading ----------------------------------------------------------------------------

    def test_get_keeps_the_given_order_and_skips_unknown_ids(self, store: VectorStore) -> None:
        """``get`` answers in the order asked and leaves unknown ids out."""
        chunks, vectors = self.corpus(10)
        store.upsert(chunks, vectors)
        wanted = [chunks[7].id, "id-unknown", chunks[2].id, chunks[9].id, "another-unknown", chunks[0].id]
        got = store.get(wanted)
        assert [c.id for c in got] == [chunks[7].id, chunks[2].id, chunks[9].id, chunks[0].id]
        for chunk in got:
            self.assert_same_chunk(chunk, next(c for c in chunks if c.id == chunk.id))
        assert store.get([]) == []

    def test_chunks_of_documents_by_document_then_start(self, store: VectorStore) -> None:
        """``chunks_of_documents`` returns every chunk of the documents asked, by document as asked, then ``start``.

        The method is optional (context shapers scan ``iter_chunks`` without it);
        a store that has it must pass this test.
        """
        fetch = getattr(store, "chunks_of_documents", None)
        if fetch is None:
            pytest.skip(f"{type(store).__name__} has no chunks_of_documents (optional)")
        chunks = [
            make_chunk(f"{doc}-{i}", source=f"{doc}.md", document_id=f"doc-{doc}", start=start, metadata={"i": i})
            for doc in ("a", "b", "c")
            for i, start in enumerate((900, 0, 450, 1350, 30))
        ]
        order = [7, 0, 14, 3, 11, 5, 9, 1, 12, 2, 8, 13, 4, 6, 10]  # insertion order unrelated to offsets
        store.upsert([chunks[i] for i in order], unit_vectors(len(order), self.dimension, 12))
        got = fetch(["doc-c", "doc-unknown", "doc-a", "doc-c"])
        expected = sorted(
            (c for c in chunks if c.document_id in ("doc-a", "doc-c")),
            key=lambda c: (c.document_id != "doc-c", c.start),
        )
        assert [c.id for c in got] == [c.id for c in expected]
        for actual, wanted in zip(got, expected, strict=True):
            self.assert_same_chunk(actual, wanted)
        assert fetch([]) == []
        assert fetch(["doc-unknown"]) == []
        store.delete_documents(["doc-c"])
        assert [c.document_id for c in fetch(["doc-c", "doc-b"])] == ["doc-b"] * 5

    def test_iter_chunks_yields_every_chunk_once(self, store: VectorStore) -> None:
        """``iter_chunks`` yields every chunk exactly once, in batches no larger than asked."""
        chunks, vectors = self.corpus(53)
        store.upsert(chunks, vectors)
        batches = list(store.iter_chunks(batch_size=10))
        assert all(0 < len(batch) <= 10 for batch in batches)
        seen = [c for batch in batches for c in batch]
        assert sorted(c.id for c in seen) == sorted(c.id for c in chunks)
        by_id = {c.id: c for c in chunks}
        for chunk in seen:
            self.assert_same_chunk(chunk, by_id[chunk.id])

    def test_count(self, store: VectorStore) -> None:
        """``count`` follows writes and deletes."""
        assert store.count() == 0
        chunks, vectors = self.corpus(17)
        store.upsert(chunks, vectors)
        assert store.count() == 17
        store.delete_documents([chunks[0].document_id])
        assert store.count() == 0

    def test_metadata_fields(self, stores: StoreOpener) -> None:
        """``metadata_fields`` names every metadata key plus ``source`` and ``document_id``, after reopen too."""
        store = stores.open()
        assert {"source", "document_id"} <= store.metadata_fields()
        chunks, vectors = filter_corpus(30, self.dimension)
        store.upsert(chunks, vectors)
        expected = {"source", "document_id", "lang", "draft", "rank", "page", "tag"}
        assert expected <= store.metadata_fields()
        store = stores.reopen(store)
        assert expected <= store.metadata_fields()

    # -- filters ----------------------------------------------------------------------------

    @pytest.fixture
    def filter_store(self, store: VectorStore) -> tuple[VectorStore, list[Chunk]]:
        """A store holding :func:`filter_corpus`."""
        chunks, vectors = filter_corpus(60, self.dimension)
        store.upsert(chunks, vectors)
        return store, chunks

    @pytest.mark.parametrize("flt", FILTER_CASES, ids=lambda f: str(f))
    def test_filter_selects_what_the_filter_language_says(
        self, filter_store: tuple[VectorStore, list[Chunk]], flt: FilterLike
    ) -> None:
        """A filtered search returns exactly the chunks :meth:`Filter.matches` accepts, best first."""
        store, chunks = filter_store
        parsed = parse_filter(flt)
        assert parsed is not None
        expected = {c.id for c in chunks if parsed.matches(filter_view(c))}
        hits = self.all_matching(store, parsed)
        assert {hit.chunk.id for hit in hits} == expected
        assert len(hits) == len(expected)
        self.assert_best_first(hits)

    def test_filter_on_a_field_some_chunks_lack(self, filter_store: tuple[VectorStore, list[Chunk]]) -> None:
        """A comparison on a missing field is false whatever the operator, and its ``not`` true."""
        store, chunks = filter_store
        without_page = {c.id for c in chunks if "page" not in c.metadata}
        assert without_page  # the corpus leaves `page` out of every fourth chunk

        def ids(flt: str) -> set[str]:
            return {hit.chunk.id for hit in self.all_matching(store, flt)}

        # a comparison on a missing field is false, whatever the operator ...
        for flt in (
            "page == 3",
            "page != 3",
            "page < 100",
            "page >= 0",
            "page in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]",
            "page not in [42]",
        ):
            assert not ids(flt) & without_page, flt
        assert ids("page >= 0") == {c.id for c in chunks} - without_page
        # ... so its negation is true
        for flt in (
            "not (page == 3)",
            "not (page != 3)",
            "not (page >= 0)",
            "not (page in [1, 2])",
            "not (page not in [42])",
        ):
            assert without_page <= ids(flt), flt
        assert ids("not (page >= 0)") == without_page
        assert ids("nonexistent == 1") == set()
        assert ids("not (nonexistent == 1)") == {c.id for c in chunks}

    def test_filter_and_top_k_give_the_best_matching_chunks(self, store: VectorStore) -> None:
        """A filter is applied before ranking: the ``top_k`` best matches, even far from the query."""
        # 200 chunks near the query, 5 "rare" ones far from it: a store that
        # filtered a fixed number of nearest neighbours would find none of them
        query = self.queries(1)[0]
        rng = np.random.default_rng(11)
        near = query + 0.3 * rng.normal(size=(200, self.dimension)).astype(np.float32)
        far = -query + 0.3 * rng.normal(size=(5, self.dimension)).astype(np.float32)
        vectors = np.vstack([near, far]).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = [make_chunk(f"common-{i}", metadata={"kind": "common"}) for i in range(200)]
        chunks += [make_chunk(f"rare-{i}", source="rare.md", metadata={"kind": "rare"}) for i in range(5)]
        store.upsert(chunks, vectors)

        rare = np.arange(200, 205)
        expected_order, expected_scores = brute_force(vectors[rare], query, 3)
        for flt in ('kind == "rare"', 'source == "rare.md"'):
            [hits] = store.search(query[None, :], top_k=3, filter=parse_filter(flt))
            assert [hit.chunk.id for hit in hits] == [chunks[200 + i].id for i in expected_order], flt
            assert [hit.score for hit in hits] == pytest.approx(expected_scores, abs=self.score_tolerance)
        [hits] = store.search(query[None, :], top_k=10, filter=parse_filter('kind == "rare"'))
        assert len(hits) == 5

    def test_filter_with_several_queries(self, filter_store: tuple[VectorStore, list[Chunk]]) -> None:
        """A filter applies to every query of a batch."""
        store, chunks = filter_store
        parsed = parse_filter('lang == "de" and page >= 2')
        assert parsed is not None
        allowed = {c.id for c in chunks if parsed.matches(filter_view(c))}
        results = store.search(self.queries(3), top_k=4, filter=parsed)
        assert len(results) == 3
        for hits in results:
            assert len(hits) == min(4, len(allowed))
            assert {hit.chunk.id for hit in hits} <= allowed
            self.assert_best_first(hits)

    def test_filter_matching_nothing(self, filter_store: tuple[VectorStore, list[Chunk]]) -> None:
        """A filter that matches nothing gives empty lists."""
        store, _ = filter_store
        assert store.search(self.queries(2), top_k=5, filter=parse_filter('lang == "xx"')) == [[], []]

    # -- the contract: construction and capabilities ---------------------------------------

    def test_config_leaves_out_what_the_collection_injects(self, store: VectorStore) -> None:
        """``to_config()`` holds only the store's own options: no path, dimension or name."""
        config = store.to_config()
        assert not {"path", "dimension", "name"} & set(config), config

    def test_from_config_with_injected_values_builds_the_same_store(self, store: VectorStore, tmp_path: Path) -> None:
        """A collection builds the store as ``cls.from_config(options, path=, dimension=, name=)``."""
        if not isinstance(store, StoreBase):
            pytest.skip("the store does not derive from ragkit.stores.base.StoreBase")
        config = store.to_config()
        again = type(store).from_config(config, path=tmp_path / "again", dimension=self.dimension, name="again")
        try:
            assert again.dimension == self.dimension
            assert again.to_config() == config
        finally:
            again.close()

    def test_declared_capabilities_are_implemented(self, store: VectorStore) -> None:
        """Each capability the class declares is one ragkit knows, with its method present."""
        protocols: dict[str, type] = {
            "drop": DroppableStore,
            "stats": StoreWithStats,
            "chunks_of_documents": DocumentChunks,
            "refresh": RefreshableStore,
        }
        declared = capabilities_of(store)
        assert declared <= set(STORE_CAPABILITIES), declared
        for capability in declared:
            assert isinstance(store, protocols[capability]), f"declares {capability!r} but lacks its method"
        if "stats" in declared:
            chunks, vectors = self.corpus(3)
            store.upsert(chunks, vectors)
            assert cast(StoreWithStats, store).stats()["chunks"] == 3
        if "chunks_of_documents" in declared:
            chunks, vectors = self.corpus(3)
            store.upsert(chunks, vectors)
            found = cast(DocumentChunks, store).chunks_of_documents([chunks[0].document_id])
            assert {chunk.id for chunk in found} == {chunk.id for chunk in chunks}

    def test_a_refreshable_store_catches_up_with_another_writer(self, stores: StoreOpener) -> None:
        """``refresh``: a second instance on the same folder (another process) writes; the first then finds it."""
        reader = stores.open("shared")
        if "refresh" not in capabilities_of(reader):
            return  # the capability is optional; nothing to check
        chunks, vectors = self.corpus(4)
        reader.upsert(chunks[:2], vectors[:2])
        assert cast(RefreshableStore, reader).refresh() is False, "its own writes keep it current"
        writer = stores.open("shared")  # a second instance: what another process would hold
        writer.upsert(chunks[2:], vectors[2:])
        writer.flush()
        assert cast(RefreshableStore, reader).refresh() is True
        assert reader.count() == 4
        [hits] = reader.search(vectors[3:4], 1)
        assert hits and hits[0].chunk.id == chunks[3].id, "the other writer's chunk is found after refresh"
        assert cast(RefreshableStore, reader).refresh() is False


def expected_filter_ids(chunks: Sequence[Chunk], flt: FilterLike) -> set[str]:
    """Ids of the chunks the reference semantics accept (for stores' own extra tests)."""
    parsed = parse_filter(flt)
    if parsed is None:
        return {c.id for c in chunks}
    return {c.id for c in chunks if parsed.matches(filter_view(c))}


__all__ = [
    "FILTER_CASES",
    "TRICKY_STRING",
    "StoreOpener",
    "VectorStoreConformance",
    "brute_force",
    "expected_filter_ids",
    "filter_corpus",
    "filter_view",
    "make_chunk",
    "unit_vectors",
]
