"""One conformance suite for the :class:`~ragkit.protocols.Embedder` protocol.

Two ways to run it. A plain function, for any test::

    from ragkit.testing.embedder_conformance import check_embedder

    def test_my_embedder_conforms():
        check_embedder(MyEmbedder())

or a base class whose tests pytest collects, given an ``embedder`` fixture::

    from ragkit.testing.embedder_conformance import EmbedderConformance

    class TestMyEmbedder(EmbedderConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def embedder(cls):
            return MyEmbedder()

Checked: vectors are float32 arrays of shape ``(n, dimension)``, finite and
of unit length; the same input gives the same vectors; a text embedded alone
gives the vector it gets inside a batch; row order follows input order;
repeated texts give equal rows; empty input gives shape ``(0, dimension)``;
the async twins agree with the sync methods; the fingerprint is a stable
non-empty string; and, for a :class:`~ragkit.protocols.TokenCounter`, token
counts are positive integers, one per text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from ragkit.protocols import Embedder

SAMPLE_TEXTS: tuple[str, ...] = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
    "Warsaw is the capital and largest city of Poland.",
    "Super Bowl 50 was an American football game to determine the champion of the NFL.",
    "short",
    "ünïcode, 漢字 and emoji 🙂 must embed too",
    "A much longer passage. " * 40,
)
"""Texts of varied length and script: batches mix padding lengths."""

SAMPLE_QUERIES: tuple[str, ...] = ("Who were the Normans?", "capital of Poland")

BATCH_COSINE = 0.999
"""Least cosine between a text's vector alone and in a batch (reduced precision pads differently)."""
NORM_TOLERANCE = 1e-3


def _fail(message: str) -> None:
    raise AssertionError(message)


def _check_matrix(name: str, vectors: object, rows: int, dimension: int) -> np.ndarray:
    if not isinstance(vectors, np.ndarray):
        _fail(f"{name} returned {type(vectors).__name__}, not a numpy array")
    assert isinstance(vectors, np.ndarray)
    if vectors.dtype != np.float32:
        _fail(f"{name} returned dtype {vectors.dtype}, not float32")
    if vectors.shape != (rows, dimension):
        _fail(f"{name} returned shape {vectors.shape}, expected {(rows, dimension)}")
    if not np.all(np.isfinite(vectors)):
        _fail(f"{name} returned NaN or infinite values")
    if rows:
        norms = np.linalg.norm(vectors, axis=1)
        if not np.allclose(norms, 1.0, atol=NORM_TOLERANCE):
            _fail(f"{name} returned vectors that are not unit length: norms {norms.min():.5f}..{norms.max():.5f}")
    return vectors


def check_dimension_and_fingerprint(embedder: Embedder) -> None:
    """``dimension`` is a positive int; ``fingerprint`` a non-empty string that does not change with use."""
    dimension = embedder.dimension
    if isinstance(dimension, bool) or not isinstance(dimension, int) or dimension < 1:
        _fail(f"dimension is {dimension!r}, expected a positive int")
    fingerprint = embedder.fingerprint
    if not isinstance(fingerprint, str) or not fingerprint:
        _fail(f"fingerprint is {fingerprint!r}, expected a non-empty string")
    embedder.embed_documents(list(SAMPLE_TEXTS[:2]))
    if embedder.fingerprint != fingerprint:
        _fail(f"fingerprint changed with use: {fingerprint!r} -> {embedder.fingerprint!r}")


def check_shape_dtype_norm(embedder: Embedder, texts: Sequence[str] = SAMPLE_TEXTS) -> None:
    """Documents and queries come back as unit-length float32 ``(n, dimension)`` arrays."""
    d = embedder.dimension
    _check_matrix("embed_documents", embedder.embed_documents(list(texts)), len(texts), d)
    _check_matrix("embed_queries", embedder.embed_queries(list(SAMPLE_QUERIES)), len(SAMPLE_QUERIES), d)


def check_empty_input(embedder: Embedder) -> None:
    """No texts give an empty ``(0, dimension)`` float32 array."""
    d = embedder.dimension
    _check_matrix("embed_documents([])", embedder.embed_documents([]), 0, d)
    _check_matrix("embed_queries([])", embedder.embed_queries([]), 0, d)


def check_deterministic(embedder: Embedder, texts: Sequence[str] = SAMPLE_TEXTS) -> None:
    """The same texts give the same vectors."""
    first = embedder.embed_documents(list(texts))
    second = embedder.embed_documents(list(texts))
    if not np.allclose(first, second, atol=1e-5):
        _fail(f"embed_documents is not deterministic: max difference {np.abs(first - second).max():.2e}")


def check_batch_equals_single(embedder: Embedder, texts: Sequence[str] = SAMPLE_TEXTS) -> None:
    """A text embedded alone gets (nearly) the vector it gets in a batch; order follows the input."""
    batch = embedder.embed_documents(list(texts))
    for i, text in enumerate(texts):
        single = embedder.embed_documents([text])[0]
        cosine = float(single @ batch[i])
        if cosine < BATCH_COSINE:
            _fail(f"text {i} alone vs in a batch: cosine {cosine:.5f} < {BATCH_COSINE}")
    reversed_rows = embedder.embed_documents(list(reversed(texts)))
    cosines = np.sum(reversed_rows[::-1] * batch, axis=1)
    if cosines.min() < BATCH_COSINE:
        _fail(f"reversed input did not give reversed rows (least cosine {cosines.min():.5f})")


def check_distinct_and_duplicates(embedder: Embedder) -> None:
    """Different texts give different vectors; a repeated text gives equal rows."""
    a, b = SAMPLE_TEXTS[0], SAMPLE_TEXTS[1]
    vectors = embedder.embed_documents([a, b, a])
    if float(vectors[0] @ vectors[1]) > 0.999:
        _fail("two unrelated texts got the same vector")
    if float(vectors[0] @ vectors[2]) < BATCH_COSINE:
        _fail("a text repeated in one batch got two different vectors")


def check_async_twins(embedder: Embedder, texts: Sequence[str] = SAMPLE_TEXTS[:3]) -> None:
    """``aembed_documents`` / ``aembed_queries`` agree with the sync methods."""

    async def both() -> tuple[np.ndarray, np.ndarray]:
        return await embedder.aembed_documents(list(texts)), await embedder.aembed_queries(list(SAMPLE_QUERIES))

    docs, queries = asyncio.run(both())
    d = embedder.dimension
    _check_matrix("aembed_documents", docs, len(texts), d)
    _check_matrix("aembed_queries", queries, len(SAMPLE_QUERIES), d)
    if not np.allclose(docs, embedder.embed_documents(list(texts)), atol=1e-4):
        _fail("aembed_documents disagrees with embed_documents")
    if not np.allclose(queries, embedder.embed_queries(list(SAMPLE_QUERIES)), atol=1e-4):
        _fail("aembed_queries disagrees with embed_queries")


def check_token_counter(embedder: object, texts: Sequence[str] = SAMPLE_TEXTS) -> None:
    """If the embedder counts tokens: one positive int per text, longer text no fewer tokens, positive limit."""
    count_tokens = getattr(type(embedder), "count_tokens", None)
    if count_tokens is None:
        return
    counts = embedder.count_tokens(list(texts))  # type: ignore[attr-defined]
    if not isinstance(counts, list) or len(counts) != len(texts):
        _fail(f"count_tokens returned {counts!r} for {len(texts)} texts")
    if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts):
        _fail(f"count_tokens returned non-positive or non-int counts: {counts}")
    short, long = embedder.count_tokens(["word", "word " * 50])  # type: ignore[attr-defined]
    if long <= short:
        _fail(f"count_tokens: 50 words ({long}) not more than one word ({short})")
    if embedder.count_tokens([]) != []:  # type: ignore[attr-defined]
        _fail("count_tokens([]) is not []")
    max_tokens = embedder.max_tokens  # type: ignore[attr-defined]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        _fail(f"max_tokens is {max_tokens!r}, expected a positive int")


CHECKS = (
    check_dimension_and_fingerprint,
    check_shape_dtype_norm,
    check_empty_input,
    check_deterministic,
    check_batch_equals_single,
    check_distinct_and_duplicates,
    check_async_twins,
    check_token_counter,
)


def check_embedder(embedder: Embedder) -> None:
    """Run every check on ``embedder``; raises :class:`AssertionError` naming the first failure."""
    for check in CHECKS:
        check(embedder)


class EmbedderConformance:
    """Base test class: subclass it and provide an ``embedder`` fixture (class scope is cheapest)."""

    def test_dimension_and_fingerprint(self, embedder: Embedder) -> None:
        """See :func:`check_dimension_and_fingerprint`."""
        check_dimension_and_fingerprint(embedder)

    def test_shape_dtype_norm(self, embedder: Embedder) -> None:
        """See :func:`check_shape_dtype_norm`."""
        check_shape_dtype_norm(embedder)

    def test_empty_input(self, embedder: Embedder) -> None:
        """See :func:`check_empty_input`."""
        check_empty_input(embedder)

    def test_deterministic(self, embedder: Embedder) -> None:
        """See :func:`check_deterministic`."""
        check_deterministic(embedder)

    def test_batch_equals_single(self, embedder: Embedder) -> None:
        """See :func:`check_batch_equals_single`."""
        check_batch_equals_single(embedder)

    def test_distinct_and_duplicates(self, embedder: Embedder) -> None:
        """See :func:`check_distinct_and_duplicates`."""
        check_distinct_and_duplicates(embedder)

    def test_async_twins(self, embedder: Embedder) -> None:
        """See :func:`check_async_twins`."""
        check_async_twins(embedder)

    def test_token_counter(self, embedder: Embedder) -> None:
        """See :func:`check_token_counter`."""
        check_token_counter(embedder)
