"""The embedding cache: unchanged text is never embedded twice.

The embedder is the real packaged all-MiniLM-L6-v2 built through the
registry (so the ``ragkit-sentence-transformers`` connector must be
installed); :class:`Counting` wraps it to record what reaches the model.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ragkit.embedders import CachedEmbedder, EmbeddingCache
from ragkit.hashing import content_hash
from ragkit.protocols import Embedder, TokenCounter
from ragkit.registry import build
from ragkit.testing.embedder_conformance import check_embedder

pytest.importorskip("ragkit_sentence_transformers")

TEXTS = [
    "The Normans gave their name to Normandy.",
    "Warsaw is the capital of Poland.",
    "Super Bowl 50 decided the NFL champion for the 2015 season.",
]


class Counting:
    """A real embedder wrapped to record every call and the texts it was given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.document_calls: list[list[str]] = []
        self.query_calls: list[list[str]] = []

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def embedded(self) -> int:
        return sum(len(call) for call in self.document_calls)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.document_calls.append(list(texts))
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.query_calls.append(list(texts))
        return self.inner.embed_queries(texts)

    async def aembed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.document_calls.append(list(texts))
        return await self.inner.aembed_documents(texts)

    async def aembed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.query_calls.append(list(texts))
        return await self.inner.aembed_queries(texts)


class CountingTokens(Counting):
    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


@pytest.fixture(scope="module")
def model():
    return build("embedder", {"type": "sentence-transformers"})


@pytest.fixture
def counting(model) -> Counting:
    return Counting(model)


@pytest.fixture
def cache(tmp_path) -> EmbeddingCache:
    with EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite") as cache:
        yield cache


def test_unchanged_text_is_never_embedded_twice(counting, cache, model):
    cached = CachedEmbedder(counting, cache)
    first = cached.embed_documents(TEXTS)
    assert counting.document_calls == [TEXTS]
    assert (cached.hits, cached.misses) == (0, 3)

    second = cached.embed_documents(TEXTS)
    assert counting.document_calls == [TEXTS]  # no second call
    assert (cached.hits, cached.misses) == (3, 3)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, model.embed_documents(TEXTS), atol=1e-6)


def test_only_new_texts_are_embedded_in_one_call_and_order_is_kept(counting, cache, model):
    cached = CachedEmbedder(counting, cache)
    cached.embed_documents(TEXTS[:2])
    mixed = ["a new sentence about rivers", TEXTS[1], "another new one", TEXTS[0]]
    vectors = cached.embed_documents(mixed)
    assert counting.document_calls[1] == ["a new sentence about rivers", "another new one"]
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, model.embed_documents(mixed), atol=1e-5)


def test_duplicates_in_one_batch_are_embedded_once(counting, cache):
    cached = CachedEmbedder(counting, cache)
    vectors = cached.embed_documents([TEXTS[0], TEXTS[1], TEXTS[0], TEXTS[0]])
    assert counting.document_calls == [[TEXTS[0], TEXTS[1]]]
    assert cached.misses == 2
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(vectors[0], vectors[3])


def test_the_cache_survives_reopening(tmp_path, model):
    path = tmp_path / "e.sqlite"
    first = Counting(model)
    with EmbeddingCache(path) as cache:
        expected = CachedEmbedder(first, cache).embed_documents(TEXTS)
    second = Counting(model)
    with EmbeddingCache(path) as cache:
        assert cache.count() == 3
        vectors = CachedEmbedder(second, cache).embed_documents(TEXTS)
    assert second.document_calls == []
    np.testing.assert_array_equal(vectors, expected)


def test_other_options_other_vectors(cache, model):
    # a fingerprint names the options that shape the vectors: a new prefix misses the cache
    plain = Counting(model)
    CachedEmbedder(plain, cache).embed_documents(TEXTS)
    prefixed = Counting(build("embedder", {"type": "sentence-transformers", "document_prefix": "passage: "}))
    vectors = CachedEmbedder(prefixed, cache).embed_documents(TEXTS)
    assert prefixed.document_calls == [TEXTS]
    assert cache.count() == 6
    assert cache.count(model.fingerprint) == 3
    np.testing.assert_allclose(vectors, prefixed.inner.embed_documents(TEXTS), atol=1e-6)


def test_queries_are_not_cached_by_default(counting, cache):
    cached = CachedEmbedder(counting, cache)
    cached.embed_queries(["what is the capital of Poland?"])
    cached.embed_queries(["what is the capital of Poland?"])
    assert len(counting.query_calls) == 2
    assert cache.count() == 0


def test_queries_cached_when_asked_apart_from_documents(counting, cache, model):
    cached = CachedEmbedder(counting, cache, cache_queries=True)
    text = ["Warsaw is the capital of Poland."]
    cached.embed_documents(text)
    query = cached.embed_queries(text)  # same text as a query: its own entry
    again = cached.embed_queries(text)
    assert counting.query_calls == [text]
    np.testing.assert_array_equal(query, again)
    np.testing.assert_allclose(query, model.embed_queries(text), atol=1e-6)


def test_empty_input(counting, cache):
    cached = CachedEmbedder(counting, cache)
    assert cached.embed_documents([]).shape == (0, 384)
    assert counting.embedded == 0


def test_async_twins_use_the_cache(counting, cache, model):
    cached = CachedEmbedder(counting, cache)

    async def main():
        first = await cached.aembed_documents(TEXTS)
        second = await cached.aembed_documents([*TEXTS, "one more"])
        queries = await cached.aembed_queries(["a question"])
        return first, second, queries

    first, second, queries = asyncio.run(main())
    assert counting.document_calls == [TEXTS, ["one more"]]
    np.testing.assert_array_equal(second[:3], first)
    np.testing.assert_allclose(queries, model.embed_queries(["a question"]), atol=1e-6)


def test_conforms_to_the_embedder_protocol(counting, cache):
    cached = CachedEmbedder(counting, cache)
    assert isinstance(cached, Embedder)
    check_embedder(cached)


def test_token_counter_passes_through_when_the_inner_one_counts(model, cache):
    assert isinstance(CachedEmbedder(model, cache), TokenCounter)
    counting = CachedEmbedder(CountingTokens(model), cache)
    assert isinstance(counting, TokenCounter)
    assert counting.max_tokens == model.max_tokens
    assert counting.count_tokens(TEXTS) == model.count_tokens(TEXTS)
    plain = CachedEmbedder(Counting(model), cache)
    assert not isinstance(plain, TokenCounter)
    assert not hasattr(plain, "count_tokens")


def test_fingerprint_and_config_are_the_inner_ones(model, cache):
    cached = CachedEmbedder(model, cache)
    assert cached.fingerprint == model.fingerprint
    assert cached.dimension == model.dimension
    assert cached.to_config() == model.to_config()


def test_threads_share_one_cache(tmp_path, model):
    counting = Counting(model)
    with EmbeddingCache(tmp_path / "e.sqlite") as cache:
        cached = CachedEmbedder(counting, cache)
        expected = model.embed_documents(TEXTS)
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for _ in range(5):
                    np.testing.assert_allclose(cached.embed_documents(TEXTS), expected, atol=1e-5)
                    cached.embed_documents([f"thread {i} text"])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert cache.count() == 3 + 4
        # each distinct text reached the model at most a few times (racing first lookups), never per call
        assert counting.embedded <= 3 * 4 + 4


def test_a_corrupt_file_is_replaced_with_a_warning(tmp_path, counting, caplog):
    path = tmp_path / "e.sqlite"
    path.write_bytes(b"this is not a database, just garbage bytes" * 100)
    with caplog.at_level(logging.WARNING, logger="ragkit.embedders.cache"):
        cache = EmbeddingCache(path)
    assert "corrupt" in caplog.text
    assert cache.enabled
    assert list(tmp_path.glob("e.sqlite.corrupt-*"))  # the bad file is kept aside
    cached = CachedEmbedder(counting, cache)
    cached.embed_documents(TEXTS)
    cached.embed_documents(TEXTS)
    assert counting.document_calls == [TEXTS]
    cache.close()


def test_corruption_found_while_running_does_not_fail_the_embedding(tmp_path, counting, caplog):
    path = tmp_path / "e.sqlite"
    cache = EmbeddingCache(path)
    cached = CachedEmbedder(counting, cache)
    cached.embed_documents(TEXTS)
    # break the table under the open connection
    raw = sqlite3.connect(path)
    raw.execute("DROP TABLE embeddings")
    raw.commit()
    raw.close()
    with caplog.at_level(logging.WARNING, logger="ragkit.embedders.cache"):
        vectors = cached.embed_documents(TEXTS)  # the lookup fails: everything is embedded again
    assert vectors.shape == (3, 384)
    assert "recreating" in caplog.text
    cached.embed_documents(TEXTS)  # the table is back: cached again
    assert len(counting.document_calls) == 2
    cache.close()


def test_an_unopenable_cache_embeds_everything(tmp_path, counting, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="ragkit.embedders.cache"):
        cache = EmbeddingCache(blocker / "sub" / "e.sqlite")  # a parent is a file
    assert not cache.enabled
    assert "disabled" in caplog.text
    cached = CachedEmbedder(counting, cache)
    cached.embed_documents(TEXTS)
    cached.embed_documents(TEXTS)
    assert len(counting.document_calls) == 2


def test_vectors_of_another_length_under_one_fingerprint_are_re_embedded(cache, counting, model):
    # an entry written by something else with the same fingerprint but a different length
    cache.put_many(model.fingerprint, [content_hash(TEXTS[0])], np.ones((1, 8), dtype=np.float32))
    vectors = CachedEmbedder(counting, cache).embed_documents(TEXTS)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, model.embed_documents(TEXTS), atol=1e-6)
    assert len(cache.get_many(model.fingerprint, [content_hash(TEXTS[0])])[0]) == 384


def test_cache_get_and_put_many(tmp_path):
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
        keys = ["h1", "h2", "h3"]
        cache.put_many("fp", keys, vectors)
        got = cache.get_many("fp", ["h3", "missing", "h1", "h3"])
        np.testing.assert_array_equal(got[0], vectors[2])
        assert got[1] is None
        np.testing.assert_array_equal(got[2], vectors[0])
        np.testing.assert_array_equal(got[3], vectors[2])
        assert cache.get_many("other", keys) == [None, None, None]
        # more keys than SQLite takes parameters in one statement
        many = [f"k{i}" for i in range(2500)]
        cache.put_many("fp", many, np.zeros((2500, 4), dtype=np.float32))
        assert sum(v is not None for v in cache.get_many("fp", many)) == 2500
        with pytest.raises(ValueError, match="hashes"):
            cache.put_many("fp", ["a"], np.zeros((2, 4), dtype=np.float32))
        assert cache.clear("other") == 0
        assert cache.clear() == 2503
    assert cache.get_many("fp", keys) == [None, None, None]  # closed: misses, no error


def test_cache_uses_wal(tmp_path):
    path = tmp_path / "c.sqlite"
    EmbeddingCache(path).close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_read_only_cache_never_fails_an_embedding(tmp_path, counting, caplog):
    from .readonly import read_only_folder

    path = tmp_path / "ro" / "e.sqlite"
    with EmbeddingCache(path) as cache:
        expected = CachedEmbedder(counting, cache).embed_documents(TEXTS)
    with read_only_folder(path.parent), caplog.at_level(logging.WARNING), EmbeddingCache(path) as cache:
        vectors = CachedEmbedder(counting, cache).embed_documents(TEXTS)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    assert "cache" in caplog.text.lower()


def test_cache_file_lies_where_told(tmp_path):
    path = Path(tmp_path) / "deep" / "er" / "cache.sqlite"
    EmbeddingCache(path).close()
    assert path.exists()
