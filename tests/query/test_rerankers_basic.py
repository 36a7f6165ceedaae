"""Rerankers without an LLM: mmr, lost-in-the-middle, embedding-rerank (real MiniLM embedder, real FAISS)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragkit import Collection
from ragkit.errors import ConfigError
from ragkit.query import QueryPipeline, build_stage
from ragkit.query.rerankers.diversity import middle_order

SAMPLE_DOCS = Path(__file__).resolve().parent.parent.parent / "evaluation" / "datasets" / "sample-docs"
QUESTION = "Who developed packet switching and where?"


@pytest.fixture(scope="module")
def duplicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    """Two copies of the packet-switching article (so every chunk has a twin) and the Amazon article."""
    docs = tmp_path_factory.mktemp("dup-docs")
    shutil.copy(SAMPLE_DOCS / "packet-switching.md", docs / "a.md")
    shutil.copy(SAMPLE_DOCS / "packet-switching.md", docs / "b.md")
    shutil.copy(SAMPLE_DOCS / "amazon-rainforest.md", docs / "amazon.md")
    store = tmp_path_factory.mktemp("dup-store")
    with Collection.create("dup", store_dir=store) as collection:
        report = collection.ingest([docs])
        assert not report.failed and report.added == 3
        yield collection


def search(collection: Collection, stages: list[Any], top_k: int = 5, question: str = QUESTION) -> Any:
    return QueryPipeline.from_configs(stages).search(question, collection, top_k=top_k)


def texts(result: Any) -> list[str]:
    return [h.chunk.text for h in result.hits]


# -- mmr ------------------------------------------------------------------------------------


def test_mmr_with_lambda_one_is_the_relevance_order(duplicated: Collection) -> None:
    dense = search(duplicated, [{"type": "dense", "top_k": 20}], top_k=20)
    mmr = search(duplicated, [{"type": "dense", "top_k": 20}, {"type": "mmr", "lambda_mult": 1}], top_k=20)
    assert texts(mmr) == texts(dense)
    # its score is the relevance: the cosine the dense retriever found, recorded beside it
    for hit, before in zip(mmr.hits, dense.hits, strict=True):
        assert hit.score == pytest.approx(before.score, abs=1e-4)
        assert hit.scores["dense"] == pytest.approx(hit.scores["mmr"], abs=1e-4)
        assert hit.origin == "reranked"
    assert [h.ranks["mmr"] for h in mmr.hits] == list(range(1, 21))


def test_mmr_with_a_low_lambda_drops_the_near_duplicates(duplicated: Collection) -> None:
    dense = search(duplicated, [{"type": "dense", "top_k": 20}], top_k=4)
    assert len(set(texts(dense))) < 4, "the plain top 4 should hold a chunk and its twin"
    mmr = search(duplicated, [{"type": "dense", "top_k": 20}, {"type": "mmr", "lambda_mult": 0.3, "top_k": 4}])
    assert len(mmr.hits) == 4
    assert len(set(texts(mmr))) == 4, "mmr should pick four different texts"
    assert mmr.hits[0].chunk.text == dense.hits[0].chunk.text  # the first pick is the most relevant
    scores = [h.scores["mmr"] for h in mmr.hits]
    assert scores == sorted(scores, reverse=True)  # an MMR value only falls as the chosen set grows


def test_mmr_embeds_all_candidates_of_a_batch_in_one_call(duplicated: Collection, monkeypatch: Any) -> None:
    embedder = duplicated.embedder
    calls: list[int] = []
    real = embedder.embed_documents

    def spy(batch: Any) -> Any:
        calls.append(len(batch))
        return real(batch)

    monkeypatch.setattr(embedder, "embed_documents", spy)
    pipeline = QueryPipeline.from_configs([{"type": "dense", "top_k": 10}, {"type": "mmr", "lambda_mult": 0.5}])
    results = pipeline.search_many([QUESTION, "What is the Amazon rainforest?"], duplicated, top_k=3)
    assert len(calls) == 1 and calls[0] <= 20
    assert all(len(r.hits) == 3 for r in results)


# -- lost in the middle -----------------------------------------------------------------------


def test_middle_order_puts_the_best_at_both_ends() -> None:
    assert middle_order(0) == []
    assert middle_order(1) == [0]
    assert middle_order(5) == [0, 2, 4, 3, 1]
    assert middle_order(6) == [0, 2, 4, 5, 3, 1]


def test_lost_in_the_middle_reorders_the_final_hits(duplicated: Collection) -> None:
    dense = search(duplicated, [{"type": "dense", "top_k": 20}], top_k=5)
    result = search(duplicated, [{"type": "dense", "top_k": 20}, "lost-in-the-middle"], top_k=5)
    before = [h.chunk.id for h in dense.hits]
    assert [h.chunk.id for h in result.hits] == [before[i] for i in (0, 2, 4, 3, 1)]
    # scores unchanged; the position is recorded under the stage's label, the dense rank kept
    assert [h.score for h in result.hits] == [dense.hits[i].score for i in (0, 2, 4, 3, 1)]
    assert [h.ranks["lost-in-the-middle"] for h in result.hits] == [1, 2, 3, 4, 5]
    assert [h.ranks["dense"] for h in result.hits] == [1, 3, 5, 4, 2]
    assert "lost-in-the-middle" not in result.hits[0].scores
    trace = next(t for t in result.trace if t.stage == "lost-in-the-middle")
    assert any("middle" in note for note in trace.notes)


# -- embedding-rerank ---------------------------------------------------------------------------


def test_embedding_rerank_orders_keyword_hits_by_cosine(duplicated: Collection) -> None:
    question = "rainforest covering most of the Amazon basin"
    lexical = search(duplicated, [{"type": "lexical", "top_k": 10}], top_k=10, question=question)
    result = search(
        duplicated, [{"type": "lexical", "top_k": 10}, {"type": "embedding-rerank"}], top_k=10, question=question
    )
    assert {h.chunk.id for h in result.hits} == {h.chunk.id for h in lexical.hits}
    cosines = [h.score for h in result.hits]
    assert cosines == sorted(cosines, reverse=True)
    assert [h.chunk.id for h in result.hits] != [h.chunk.id for h in lexical.hits], "cosine should reorder BM25"
    for hit in result.hits:  # earlier scores are kept beside the new one
        assert set(hit.scores) == {"lexical", "embedding-rerank"}
        assert hit.scores["embedding-rerank"] == hit.score and hit.origin == "reranked"
    # the score is the cosine of the question and the chunk under the collection's embedder
    embedder = duplicated.embedder
    q = embedder.embed_queries([question])[0]
    d = embedder.embed_documents([result.hits[0].chunk.text])[0]
    assert result.hits[0].score == pytest.approx(float(np.dot(q, d)), abs=1e-4)


def test_embedding_rerank_with_its_own_embedder_respects_batch_size(duplicated: Collection) -> None:
    config = {
        "type": "embedding-rerank",
        "embedder": {"type": "sentence-transformers", "max_tokens": 64},
        "batch_size": 4,
        "min_score": 0.2,
    }
    stage = build_stage(config)
    assert stage.to_config() == {
        "type": "embedding-rerank",
        "embedder": {"type": "sentence-transformers", "max_tokens": 64},
        "top_k": None,
        "min_score": 0.2,
        "candidates": None,
        "batch_size": 4,
    }
    assert build_stage(stage.to_config()).to_config() == stage.to_config()
    sizes: list[int] = []
    real = stage._embedder  # type: ignore[attr-defined]

    class Spy:  # the real model, with its batch sizes recorded
        dimension = real.dimension
        fingerprint = real.fingerprint

        def embed_documents(self, batch: list[str]) -> Any:
            sizes.append(len(batch))
            return real.embed_documents(batch)

        def embed_queries(self, batch: list[str]) -> Any:
            return real.embed_queries(batch)

    stage._embedder = Spy()  # type: ignore[attr-defined]
    pipeline = QueryPipeline([build_stage({"type": "dense", "top_k": 10}), stage])
    result = pipeline.search(QUESTION, duplicated, top_k=10)
    assert sizes and max(sizes) <= 4 and sum(sizes) == 10
    assert result.hits and all(h.score >= 0.2 for h in result.hits)
    assert all("dense" in h.scores and "embedding-rerank" in h.scores for h in result.hits)


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "mmr", "lambda_mult": 1.5}, "lambda_mult"),
        ({"type": "mmr", "lambda_mult": "high"}, "lambda_mult"),
        ({"type": "mmr", "top_k": 0}, "top_k"),
        ({"type": "mmr", "diversity": 0.2}, "diversity"),
        ({"type": "lost-in-the-middle", "top_k": 0}, "top_k"),
        ({"type": "lost-in-the-middle", "candidates": 5}, "candidates"),
        ({"type": "embedding-rerank", "embedder": {"type": "no-such-embedder"}}, "no-such-embedder"),
        ({"type": "embedding-rerank", "embedder": {"model": "x"}}, "type"),
        ({"type": "embedding-rerank", "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_options_are_refused_when_built(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_stage(config)


def test_configs_round_trip() -> None:
    for config in ({"type": "mmr", "lambda_mult": 0.7, "top_k": 8, "candidates": 30}, {"type": "lost-in-the-middle"}):
        stage = build_stage(config)
        again = build_stage(stage.to_config())
        assert again.to_config() == stage.to_config()
        assert {k: v for k, v in stage.to_config().items() if k in config} == config
