"""The ragas metrics that need no judge, against values worked out by hand."""

from __future__ import annotations

import pytest
from ragkit_ragas import (
    BleuMetric,
    NonLLMContextPrecisionMetric,
    NonLLMContextRecallMetric,
    RagasSample,
    RougeMetric,
    StringSimilarityMetric,
)

from ragkit.errors import ConfigError
from ragkit.registry import build


def sample(**fields):
    return {"question": "q?", "answers": ["x"], **fields}


def test_string_similarity_is_one_minus_normalised_levenshtein():
    metric = build("metric", {"type": "string_similarity"})
    assert isinstance(metric, StringSimilarityMetric)
    assert metric.needs == {"answer"}
    # kitten -> sitting: 3 edits over max length 7
    result = metric.score(sample(answers=["kitten"], response="sitting"))
    assert result.value == pytest.approx(1 - 3 / 7)
    assert result.error is None


def test_string_similarity_keeps_the_best_reference():
    metric = StringSimilarityMetric()
    result = metric.score(sample(answers=["completely different", "sitting"], response="sitting"))
    assert result.value == pytest.approx(1.0)
    assert result.details["reference_index"] == 1
    first_only = StringSimilarityMetric(references="first").score(
        sample(answers=["kitten", "sitting"], response="sitting")
    )
    assert first_only.value == pytest.approx(1 - 3 / 7)


def test_rouge_l_and_rouge_1():
    # "the cat sat" vs "the cat sat on the mat": LCS 3 -> precision 3/3, recall 3/6, F = 2/3
    reference, response = "the cat sat on the mat", "the cat sat"
    assert build("metric", {"type": "rouge"}).score(sample(answers=[reference], response=response)).value == (
        pytest.approx(2 / 3)
    )
    recall = RougeMetric(rouge_type="rouge1", mode="recall").score(sample(answers=[reference], response=response))
    assert recall.value == pytest.approx(0.5)
    precision = RougeMetric(mode="precision").score(sample(answers=[reference], response=response))
    assert precision.value == pytest.approx(1.0)


def test_bleu():
    metric = build("metric", {"type": "bleu"})
    assert isinstance(metric, BleuMetric)
    same = "the cat sat on the mat"
    assert metric.score(sample(answers=[same], response=same)).value == pytest.approx(1.0)
    # one extra word: precisions 6/7, 5/6, 4/5, 3/4, no brevity penalty -> (3/7) ** (1/4)
    longer = metric.score(sample(answers=[same], response="the cat sat on the mat today"))
    assert longer.value == pytest.approx((3 / 7) ** 0.25, abs=1e-4)
    assert metric.score(sample(answers=[same], response="dogs bark loudly at night")).value == pytest.approx(0.0)


def test_non_llm_context_recall():
    metric = build("metric", {"type": "non_llm_context_recall"})
    assert isinstance(metric, NonLLMContextRecallMetric)
    assert metric.needs == {"retrieval"}
    gold = ["The cat sat on the mat.", "zzzz zzzz zzzz zzzz"]
    retrieved = ["The cat sat on the mat.", "Paris is the capital of France."]
    # the first gold passage is retrieved verbatim (similarity 1 > 0.5); the second resembles nothing
    result = metric.score(sample(contexts=retrieved, reference_contexts=gold))
    assert result.value == pytest.approx(0.5)
    assert metric.score(sample(contexts=retrieved, reference_contexts=gold[:1])).value == pytest.approx(1.0)


def test_non_llm_context_precision_is_average_precision():
    metric = build("metric", {"type": "non_llm_context_precision"})
    assert isinstance(metric, NonLLMContextPrecisionMetric)
    gold = ["The cat sat on the mat."]
    relevant, irrelevant = "The cat sat on the mat.", "zzzz zzzz zzzz zzzz"
    # verdicts [0, 1]: precision@2 = 1/2, one relevant -> 0.5
    assert metric.score(sample(contexts=[irrelevant, relevant], reference_contexts=gold)).value == pytest.approx(0.5)
    # verdicts [1, 0]: precision@1 = 1 -> 1.0
    assert metric.score(sample(contexts=[relevant, irrelevant], reference_contexts=gold)).value == pytest.approx(1.0)


def test_missing_gold_passages_fail_the_sample_with_the_reason():
    result = NonLLMContextRecallMetric().score(sample(contexts=["a passage"]))
    assert result.value is None
    assert "reference_contexts" in result.error
    assert result.details["failure"] == "missing_input"


def test_reference_contexts_may_come_from_the_question_metadata():
    record = RagasSample.coerce(
        sample(contexts=["The cat sat on the mat."], metadata={"reference_contexts": ["The cat sat on the mat."]})
    )
    assert record.reference_contexts == ["The cat sat on the mat."]
    assert NonLLMContextRecallMetric().score(record).value == pytest.approx(1.0)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="distance_measure"):
        StringSimilarityMetric(distance_measure="euclid")
    with pytest.raises(ConfigError, match="threshold"):
        NonLLMContextRecallMetric(threshold=2)
    with pytest.raises(ConfigError, match="rouge_type"):
        RougeMetric(rouge_type="rouge3")
    with pytest.raises(ConfigError, match="unknown option"):
        build("metric", {"type": "bleu", "judge": {"type": "transformers"}})


def test_other_distance_measures():
    jaro = StringSimilarityMetric(distance_measure="jaro_winkler").score(sample(answers=["martha"], response="marhta"))
    # Jaro-Winkler(martha, marhta) = 0.9611
    assert jaro.value == pytest.approx(0.9611, abs=1e-4)


def test_scores_come_back_in_order_with_progress():
    metric = StringSimilarityMetric()
    counts: list[int] = []
    results = metric.score_many(
        [sample(answers=["abc"], response="abc"), sample(answers=["abc"], response="xyz"), sample(answers=["abc"])],
        progress=counts.append,
    )
    assert [r.value for r in results] == [pytest.approx(1.0), pytest.approx(0.0), None]
    assert "response" in results[2].error
    assert counts == [1, 1, 1]
