"""Metric functions against hand-computed values, and ranx against the plain Python versions."""

from __future__ import annotations

import math
import random

import pytest

from ragkit import registry
from ragkit.errors import ConfigError
from ragkit.evaluation.metrics import BaseMetric, build_metric, build_metrics, checked, known_metrics
from ragkit.evaluation.metrics.ranking import (
    ndcg_at_k,
    precision_at_k,
    ranx_available,
    ranx_scores,
    recall_at_k,
    reciprocal_rank,
)
from ragkit.evaluation.metrics.text import exact_match, max_over_references, normalize_answer, token_f1
from ragkit.evaluation.sample import EvalQuestion, EvalSample, GoldSpan, MetricResult, Relevance
from ragkit.evaluation.suite import MetricSpec

from .helpers import hit, sample

# -- SQuAD exact match and F1 ---------------------------------------------------------------


def test_squad_normalisation_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("  The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("An apple, a pear; the end.") == "apple pear end"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Denver Broncos.", "Denver Broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # prediction {denver, broncos}, reference {denver, broncos, win}: P = 1, R = 2/3, F1 = 0.8
    assert token_f1("the Denver Broncos", "Denver Broncos win") == pytest.approx(0.8)
    # repeated tokens count with multiplicity: pred [a1 a1 b] vs ref [a1 b b]: common 2, P = R = 2/3
    assert token_f1("a1 a1 b", "a1 b b") == pytest.approx(2 / 3)
    assert token_f1("nothing shared", "Denver") == 0.0
    assert max_over_references("Santa Clara", ["Levi's Stadium", "Santa Clara, California"], f1=True) == (
        pytest.approx(0.8),
        "Santa Clara, California",
    )


def test_answer_metrics_score_the_best_reference_and_explain_missing_inputs():
    [em] = build_metric("exact_match")
    [f1] = build_metric("f1")
    s = sample([], answers=["Denver Broncos", "Broncos"], answer="The Broncos.")
    assert em.score(s).value == 1.0
    assert f1.score(s).details == {"reference": "Broncos"}
    assert em.score(sample([], answer="x")).error == "the question has no reference answers"
    assert f1.score(sample([], answers=["a"])).error == "the pipeline gave no answer"


def test_answer_contains_credits_a_correct_sentence_that_exact_match_and_f1_call_wrong():
    answer = "The Great Awakening swept through colonial America during the 1730s and 1740s."
    s = sample([], answers=["1730s and 1740s"], answer=answer)
    [em] = build_metric("exact_match")
    [f1] = build_metric("f1")
    [contains] = build_metric("answer_contains")
    assert em.score(s).value == 0.0 and f1.score(s).value < 0.5
    assert contains.score(s).value == 1.0 and contains.score(s).details == {"reference": "1730s and 1740s"}
    # whole words only, after SQuAD normalisation: "1730" is not inside "1730s", "Denver" not in "Denverite"
    assert contains.score(sample([], answers=["1730"], answer=answer)).value == 0.0
    assert contains.score(sample([], answers=["Denver"], answer="A Denverite won.")).value == 0.0
    assert contains.score(sample([], answers=["the Denver Broncos"], answer="Denver broncos!")).value == 1.0
    assert contains.score(sample([], answers=["a"])).error == "the pipeline gave no answer"


# -- answer-hit -----------------------------------------------------------------------------


def test_answer_hit_exact_and_normalised():
    hits = [hit("a.md", 0, 10, "nothing here"), hit("a.md", 10, 40, "won by the Denver\n  Broncos")]
    s = sample(hits, answers=["Denver Broncos"])
    exact = {m.name: m for m in build_metric("answer_hit", ks=[1, 2])}
    loose = {m.name: m for m in build_metric("answer_hit_normalised", ks=[1, 2])}
    assert exact["answer_hit@2"].score(s).value == 0.0  # the newline breaks the verbatim match
    assert loose["answer_hit_normalised@1"].score(s).value == 0.0
    result = loose["answer_hit_normalised@2"].score(s)
    assert result.value == 1.0 and result.details == {"rank": 2, "answer": "denver broncos"}
    s2 = sample([hit("a.md", 0, 20, "Denver Broncos won")], answers=["Denver Broncos"])
    assert exact["answer_hit@1"].score(s2).value == 1.0


# -- ranking ----------------------------------------------------------------------------------

# One gold span a.md[100, 200) and one gold document c.md; five hits, best first:
#   1 a.md[0, 100)    touches the span's start, shares no character  -> not relevant
#   2 a.md[150, 300)  overlaps the span                              -> relevant, covers the span
#   3 b.md[100, 200)  same offsets, other file                       -> not relevant
#   4 a.md[199, 250)  overlaps by one character                      -> relevant, span already covered
#   5 c.md[0, 50)     inside the gold document                       -> relevant, covers the document
HAND_HITS = [
    hit("a.md", 0, 100),
    hit("a.md", 150, 300),
    hit("b.md", 100, 200),
    hit("a.md", 199, 250),
    hit("c.md", 0, 50),
]


def hand_sample():
    return sample(HAND_HITS, spans=[("a.md", 100, 200)], documents=["c.md"])


def test_relevance_of_the_hand_example():
    rel = hand_sample().relevance()
    assert rel.relevant == [False, True, False, True, True]
    assert rel.first_cover == [None, 0, None, None, 1]
    assert rel.gold_count == 2


def test_a_gold_span_with_a_page_only_matches_chunks_of_that_page():
    # a PDF is loaded one page per document: offsets restart on every page
    on_page = [hit("doc.pdf", 0, 100), hit("doc.pdf", 0, 100)]
    on_page[0].chunk.metadata["page"] = 2
    on_page[1].chunk.metadata["page"] = 3
    paged = EvalSample(
        EvalQuestion("q", "?", gold_spans=[GoldSpan("doc.pdf", 10, 20, page=3)]), "p", hits=on_page
    ).relevance()
    assert paged.relevant == [False, True] and paged.first_cover == [None, 0]
    unpaged = sample(on_page, spans=[("doc.pdf", 10, 20)]).relevance()
    assert unpaged.relevant == [True, True]  # without a page, any page's offsets match


def test_ranking_metrics_by_hand():
    rel = hand_sample().relevance()
    assert [recall_at_k(rel, k) for k in (1, 2, 3, 5)] == [0.0, 0.5, 0.5, 1.0]
    assert [precision_at_k(rel, k) for k in (1, 2, 5, 10)] == [0.0, 0.5, 0.6, 0.3]
    assert reciprocal_rank(rel) == 0.5
    # DCG@5 = 1/log2(3) + 1/log2(6); ideal = 1 + 1/log2(3)
    assert ndcg_at_k(rel, 5) == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(rel, 5) == pytest.approx(0.62406, abs=1e-5)
    assert ndcg_at_k(rel, 3) == pytest.approx(0.38685, abs=1e-5)
    assert ndcg_at_k(rel, 1) == 0.0


def test_gold_metrics_through_the_registry_with_both_backends():
    for backend in ("python", "ranx") if ranx_available() else ("python",):
        metrics = build_metrics(
            [
                ("recall", {"backend": backend}),
                ("ndcg", {"backend": backend}),
                ("precision", {"backend": backend}),
                ("mrr", {"backend": backend}),
            ],
            ks=[1, 5],
        )
        s = hand_sample()
        no_gold = sample(HAND_HITS, id="q2")
        scored = {m.name: m.score_many([s, no_gold]) for m in metrics}
        assert scored["recall@5"][0].value == 1.0
        assert scored["precision@5"][0].value == pytest.approx(0.6)
        assert scored["mrr"][0].value == 0.5
        assert scored["mrr"][0].details == {"first_relevant_rank": 2}
        assert scored["ndcg@5"][0].value == pytest.approx(0.62406, abs=1e-5)
        assert all(r[1].value is None and "no gold" in (r[1].error or "") for r in scored.values())


def _random_relevance(rng: random.Random) -> Relevance:
    gold = rng.randint(1, 4)
    size = rng.randint(0, 12)
    relevant, first_cover, covered = [], [], set()
    for _ in range(size):
        items = [i for i in range(gold) if rng.random() < 0.25]
        relevant.append(bool(items))
        new = next((i for i in items if i not in covered), None)
        if new is not None:
            covered.add(new)
        first_cover.append(new)
    return Relevance(relevant, first_cover, gold)


@pytest.mark.skipif(not ranx_available(), reason="ranx is not installed (pip install ranx)")
def test_ranx_agrees_with_the_python_versions_on_random_rankings():
    rng = random.Random(7)
    relevances = [_random_relevance(rng) for _ in range(300)]
    for k in (1, 3, 5, 10):
        for name, plain in (("recall", recall_at_k), ("precision", precision_at_k), ("ndcg", ndcg_at_k)):
            got = ranx_scores(f"{name}@{k}", relevances)
            assert got == pytest.approx([plain(r, k) for r in relevances], abs=1e-9), f"{name}@{k}"
    assert ranx_scores("mrr", relevances) == pytest.approx([reciprocal_rank(r) for r in relevances], abs=1e-9)


# -- building metrics -------------------------------------------------------------------------


def test_builtin_metrics_are_registered():
    assert {"answer_hit", "answer_hit_normalised", "recall", "precision", "mrr", "ndcg", "exact_match", "f1"} <= set(
        known_metrics()
    )


def test_per_k_metrics_are_built_once_per_k():
    names = [m.name for m in build_metrics([("recall", {}), ("mrr", {}), ("f1", {})], ks=[1, 3])]
    assert names == ["recall@1", "recall@3", "mrr", "f1"]


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        build_metrics([("recal", {})], ks=[1])
    message = str(info.value)
    assert "metrics[0]: unknown metric 'recal'" in message and "recall" in message and "exact_match" in message


def test_bad_metric_options_name_the_entry():
    with pytest.raises(ConfigError, match=r"metrics\[1\].*backend must be python or ranx"):
        build_metrics([("mrr", {}), ("recall", {"backend": "fast"})], ks=[1])
    with pytest.raises(ConfigError, match=r"metrics\[0\].*unknown option"):
        build_metrics([("f1", {"k": 3})], ks=[1])


def test_checked_turns_nan_and_junk_into_failures():
    assert checked(MetricResult(float("nan"))).value is None
    assert "not a number" in (checked(MetricResult(float("nan"))).error or "")
    assert checked(MetricResult(float("inf"))).value is None
    assert checked(0.25).value == 0.25
    assert "not a MetricResult" in (checked("oops").error or "")
    assert checked(MetricResult(None)).error == "the metric gave no value and no reason"


def test_look_alike_results_are_accepted():
    class Score:  # the shape of ragkit-ragas' MetricScore
        def __init__(self, value, error=None):
            self.value, self.error, self.details = value, error, {"judge": "x"}

    assert checked(Score(0.5)).value == 0.5 and checked(Score(0.5)).details == {"judge": "x"}
    failed = checked(Score(None, "judge timed out"))
    assert failed.value is None and failed.error == "judge timed out"
    assert checked(Score(float("nan"))).value is None


class NeedsJudge(BaseMetric):
    needs = frozenset({"answer", "judge"})

    def __init__(self, judge: dict) -> None:
        self.judge = judge


class HasDefaultJudge(BaseMetric):
    needs = frozenset({"answer", "judge"})

    def __init__(self, judge: dict | None = None, strictness: int = 1) -> None:
        self.judge = judge or {"type": "local-default"}


def test_judged_metrics_get_the_suite_judge():
    registry.register("metric", "test_needs_judge")(NeedsJudge)
    registry.register("metric", "test_default_judge")(HasDefaultJudge)
    with pytest.raises(ConfigError, match=r"metrics\[0\]: metric 'test_needs_judge' is judged by an LLM: set 'judge'"):
        build_metrics([("test_needs_judge", {})], ks=[1])
    [metric] = build_metrics([("test_needs_judge", {})], ks=[1], judge={"type": "openai", "model": "m"})
    assert metric.judge == {"type": "openai", "model": "m"}
    [metric] = build_metrics([("test_default_judge", {"strictness": 2})], ks=[1])
    assert metric.judge == {"type": "local-default"}


def test_metric_entries_accept_type_when_an_option_is_called_name():
    spec = MetricSpec.model_validate({"type": "ragas", "name": "NoiseSensitivity", "mode": "strict"})
    assert spec.name == "ragas" and spec.options == {"name": "NoiseSensitivity", "mode": "strict"}
    spec = MetricSpec.model_validate({"name": "recall", "backend": "python"})
    assert spec.name == "recall" and spec.options == {"backend": "python"}
