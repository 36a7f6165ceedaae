"""The query pipeline's engine: stage order, fusion, modes, traces, failure policy, adaptive transforms, sync = async.

Everything runs on the real sample collection (packaged MiniLM, FAISS, BM25).
The stages registered here are small test stages that provoke the engine's
paths (a crash, a counting transform); they are named as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

import pytest

from ragkit.errors import ConfigError, InputError, RagkitError
from ragkit.query import QueryPipeline, QueryTransformStage, RerankerStage, build_stage
from ragkit.query.fusion import DistributionBasedScoreFusion, ReciprocalRankFusion, WeightedScoreFusion
from ragkit.query.state import CandidateList, Query, QueryState
from ragkit.rag import PipelineConfig, RagPipeline
from ragkit.registry import register
from ragkit.schema import Chunk, Hit

SUPER_BOWL = "Where was Super Bowl 50 played?"
HYBRID = [{"type": "dense", "top_k": 10}, {"type": "lexical", "top_k": 10}, "rrf"]


@register("reranker", "test-crashing")
class CrashingReranker(RerankerStage):
    """A test stage that always raises, like a reranker whose model server is down."""

    def score_many(self, questions: Sequence[str], hit_lists: Sequence[list[Hit]]) -> list[list[float]]:
        raise ConnectionError("reranker server refused the connection")


@register("query_transform", "test-counting")
class CountingTransform(QueryTransformStage):
    """A test transform that adds one fixed query and counts the questions it was asked for."""

    seen: ClassVar[list[str]] = []

    def transform_many(self, states: Sequence[QueryState]) -> list[list[Query]]:
        type(self).seen.extend(s.question for s in states)
        return [[Query("Levi's Stadium Santa Clara", origin=self.label)] for _ in states]


def test_hybrid_fuses_both_lists_and_keeps_each_rank(sample_collection):
    result = QueryPipeline.from_configs(HYBRID).search(SUPER_BOWL, sample_collection, top_k=3)
    best = result.hits[0]
    assert "Levi" in best.chunk.text
    assert best.origin == "fused"
    assert set(best.ranks) == {"dense", "lexical", "rrf"} and best.ranks["rrf"] == 1
    assert best.score == pytest.approx(1 / (60 + best.ranks["dense"]) + 1 / (60 + best.ranks["lexical"]))
    assert [entry.stage for entry in result.trace] == ["dense", "lexical", "rrf"]
    assert len(result.trace[0].candidates["dense"]) == 10
    assert result.trace[2].hits[0]["chunk_id"] == best.chunk.id
    assert len(result.hits) == 3


def test_bad_pipelines_are_refused_when_built():
    with pytest.raises(ConfigError, match="unknown stage type 'rerank-me'; known types - query_transform"):
        QueryPipeline.from_configs(["dense", "rerank-me"])
    with pytest.raises(ConfigError, match=r"stages\[1\] \(dense\): a retrieve stage cannot come after the fuse"):
        QueryPipeline.from_configs(["rrf", "dense"])
    with pytest.raises(ConfigError, match="needs at least one retriever"):
        QueryPipeline.from_configs(["rrf"])
    with pytest.raises(ConfigError, match="two stages are named 'dense'"):
        QueryPipeline.from_configs(["dense", "dense"])
    with pytest.raises(ConfigError, match="only one fusion stage"):
        QueryPipeline.from_configs(["dense", {"type": "lexical"}, "rrf", "dbsf"])
    with pytest.raises(ConfigError, match=r"stages\[0\]: .*top_k must be at least 1"):
        QueryPipeline.from_configs([{"type": "dense", "top_k": 0}])
    with pytest.raises(ConfigError, match="unknown option"):
        build_stage({"type": "rrf", "kk": 3})


def test_recipe_stage_errors_name_the_pipeline(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("pipeline:\n  stages: [dense, {type: reranker-x}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pipeline 'broken': stages\[1\]: unknown stage type 'reranker-x'"):
        RagPipeline.load(str(recipe))
    with pytest.raises(ConfigError, match="retrieval.min_score applies to a pipeline without stages"):
        PipelineConfig.parse({"stages": ["dense"], "retrieval": {"min_score": 0.5}})


def test_two_lists_without_a_fuser_are_fused_by_rrf_and_the_trace_says_so(sample_collection):
    result = QueryPipeline.from_configs(["dense", "lexical"]).search(SUPER_BOWL, sample_collection, top_k=3)
    assert result.trace[-1].stage == "rrf" and "no fusion stage" in result.trace[-1].notes[0]
    assert result.hits[0].origin == "fused"


def test_mode_runs_one_retriever_of_the_pipeline_alone(sample_collection):
    pipeline = QueryPipeline.from_configs([{"type": "dense", "top_k": 10}, {"type": "lexical", "top_k": 7}, "rrf"])
    result = pipeline.search(SUPER_BOWL, sample_collection, top_k=10, mode="lexical")
    assert [entry.stage for entry in result.trace] == ["lexical"]
    assert all(hit.origin == "lexical" for hit in result.hits) and len(result.hits) == 7
    with pytest.raises(InputError, match="search mode must be one of dense, lexical"):
        pipeline.search(SUPER_BOWL, sample_collection, mode="fuzzy")


def test_a_failing_reranker_keeps_its_input_and_records_the_error(sample_collection):
    pipeline = QueryPipeline.from_configs([*HYBRID, {"type": "test-crashing", "name": "ce"}])
    result = pipeline.search(SUPER_BOWL, sample_collection, top_k=3)
    plain = QueryPipeline.from_configs(HYBRID).search(SUPER_BOWL, sample_collection, top_k=3)
    assert [h.chunk.id for h in result.hits] == [h.chunk.id for h in plain.hits]
    assert "ConnectionError: reranker server refused" in result.trace[-1].error


def test_a_failing_retriever_is_an_error(sample_collection, monkeypatch):
    pipeline = QueryPipeline.from_configs(["dense"])
    monkeypatch.setattr(type(pipeline.stages[0]), "retrieve_many", lambda *a: 1 / 0)
    with pytest.raises(RagkitError, match="stage 'dense' failed: ZeroDivisionError"):
        pipeline.search(SUPER_BOWL, sample_collection)


def test_a_filter_on_a_missing_field_is_an_error_from_every_retriever(sample_collection):
    with pytest.raises(InputError, match="colour"):
        QueryPipeline.from_configs(HYBRID).search(SUPER_BOWL, sample_collection, filters="colour == 'red'")


def test_adaptive_transform_runs_only_for_weak_questions(sample_collection):
    CountingTransform.seen = []
    pipeline = QueryPipeline.from_configs(
        [{"type": "test-counting", "adaptive": {"min_score": 0.45}}, {"type": "dense", "top_k": 5}]
    )
    strong, weak = pipeline.search_many([SUPER_BOWL, "which venue hosted it?"], sample_collection, top_k=5)
    assert CountingTransform.seen == ["which venue hosted it?"]
    assert strong.trace[-1].skipped and "looked strong enough" in strong.trace[-1].notes[0]
    assert [q.text for q in weak.queries] == ["which venue hosted it?", "Levi's Stadium Santa Clara"]
    assert "weak first retrieval: best dense score" in next(t for t in weak.trace if t.kind == "transform").notes[0]
    labels = {label for entry in weak.trace for label in (entry.candidates or {})}
    assert {"dense", "dense#2"} <= labels  # the new query was retrieved, the first not again
    assert weak.hits[0].origin == "fused"


def test_sync_async_and_batch_give_the_same_hits(sample_collection):
    pipeline = QueryPipeline.from_configs(HYBRID)
    questions = [SUPER_BOWL, "Who won Super Bowl 50?", "What is the Black Death?"]
    one_by_one = [pipeline.search(q, sample_collection).hits for q in questions]
    batched = [r.hits for r in pipeline.search_many(questions, sample_collection)]
    awaited = [asyncio.run(pipeline.asearch(q, sample_collection)).hits for q in questions]
    ids = [[h.chunk.id for h in hits] for hits in one_by_one]
    assert ids == [[h.chunk.id for h in hits] for hits in batched] == [[h.chunk.id for h in hits] for hits in awaited]


def test_stage_configs_round_trip():
    configs = [
        {"type": "dense", "top_k": 20, "min_score": 0.1},
        {"type": "lexical", "top_k": 15, "min_score": None, "name": "bm25"},
        {"type": "weighted", "top_k": None, "weights": {"dense": 0.7, "bm25": 0.3}},
        {"type": "threshold", "min_score": None, "relative": 0.5, "min_hits": 1, "top_k": None},
    ]
    assert QueryPipeline.from_configs(configs).to_config() == configs


def _lists() -> list[CandidateList]:
    def ranked(label: str, scored: list[tuple[str, float]]) -> CandidateList:
        hits = [
            Hit(Chunk(chunk_id, "d", "s.md", chunk_id, 0, 1), score, scores={label: score}, ranks={label: rank})
            for rank, (chunk_id, score) in enumerate(scored, 1)
        ]
        return CandidateList(label, label, 0, hits)

    return [ranked("dense", [("a", 0.9), ("b", 0.5), ("c", 0.1)]), ranked("lexical", [("c", 12.0), ("a", 6.0)])]


def test_fusion_scores():
    rrf = ReciprocalRankFusion(k=60)
    rrf.label = "rrf"
    fused = {h.chunk.id: h.score for h in rrf.fuse(_lists())}
    assert fused == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61})

    weighted = WeightedScoreFusion(weights={"dense": 2.0})
    weighted.label = "weighted"
    fused = {h.chunk.id: h.score for h in weighted.fuse(_lists())}
    assert fused == pytest.approx({"a": 2.0 + 0.0, "b": 2.0 * 0.5, "c": 0.0 + 1.0})

    dbsf = DistributionBasedScoreFusion()
    dbsf.label = "dbsf"
    ranked = dbsf.fuse(_lists())
    assert ranked[0].chunk.id == "a" and all(0 <= h.score <= 2 for h in ranked)
    assert ranked[0].scores["dense"] == 0.9 and ranked[0].ranks == {"dense": 1, "lexical": 2, "dbsf": 1}


def test_threshold_relative_and_min_hits(sample_collection):
    pipeline = QueryPipeline.from_configs([{"type": "dense", "top_k": 10}, {"type": "threshold", "relative": 0.9}])
    hits = pipeline.search(SUPER_BOWL, sample_collection, top_k=10).hits
    assert hits and all(h.score >= 0.9 * hits[0].score for h in hits) and len(hits) < 10
    floor = QueryPipeline.from_configs([{"type": "dense"}, {"type": "threshold", "min_score": 2.0, "min_hits": 1}])
    assert len(floor.search(SUPER_BOWL, sample_collection).hits) == 1
    with pytest.raises(ConfigError, match="give min_score, relative, or both"):
        build_stage({"type": "threshold"})


def test_an_empty_candidate_list_flows_through_every_stage(sample_collection):
    stages = [
        *HYBRID,
        {"type": "threshold", "relative": 0.5},
        {"type": "mmr", "lambda_mult": 0.5},
        "lost-in-the-middle",
        "dedupe",
        "parent-document",
    ]
    nothing = "file_type == 'nonexistent-type'"
    result = QueryPipeline.from_configs(stages).search(SUPER_BOWL, sample_collection, filters=nothing)
    assert result.hits == []
    assert [entry.stage for entry in result.trace][-5:] == [
        "threshold",
        "mmr",
        "lost-in-the-middle",
        "dedupe",
        "parent-document",
    ]
    assert not any(entry.error for entry in result.trace)
    answer = RagPipeline(PipelineConfig.parse({"stages": stages})).ask(SUPER_BOWL, sample_collection, filters=nothing)
    assert not answer.grounded and answer.citations == [] and answer.model == ""
