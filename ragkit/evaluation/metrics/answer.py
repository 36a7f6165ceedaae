"""Answer metrics without an LLM: SQuAD exact match, token F1 and answer-contains, best over the references."""

from __future__ import annotations

from typing import ClassVar

from ragkit.evaluation.metrics.base import BaseMetric
from ragkit.evaluation.metrics.text import answer_contains, exact_match, max_over_references, token_f1
from ragkit.evaluation.sample import EvalSample, MetricResult
from ragkit.registry import register


class _AnswerMetric(BaseMetric):
    needs: ClassVar[frozenset[str]] = frozenset({"answer"})

    @staticmethod
    def scorer(prediction: str, reference: str) -> float:
        """Exact match of one answer against one reference."""
        return exact_match(prediction, reference)

    def __init__(self) -> None:
        """No options."""

    def score(self, sample: EvalSample) -> MetricResult:
        """Score one sample."""
        if sample.answer is None:
            return MetricResult.failed("the pipeline gave no answer")
        if not sample.references:
            return MetricResult.failed("the question has no reference answers")
        value, reference = max_over_references(sample.answer, sample.references, scorer=type(self).scorer)
        return MetricResult(value, details={"reference": reference})


@register("metric", "exact_match")
class ExactMatch(_AnswerMetric):
    """1.0 when the SQuAD-normalised answer equals a normalised reference answer."""


@register("metric", "f1")
class TokenF1(_AnswerMetric):
    """SQuAD token F1 between the normalised answer and the best reference answer."""

    @staticmethod
    def scorer(prediction: str, reference: str) -> float:
        """Token F1 of one answer against one reference."""
        return token_f1(prediction, reference)


@register("metric", "answer_contains")
class AnswerContains(_AnswerMetric):
    """1.0 when a normalised reference answer appears, as whole words, in the normalised answer.

    Exact match and F1 score a correct sentence answer as wrong ("The Great
    Awakening swept through colonial America during the 1730s and 1740s"
    against the gold "1730s and 1740s": 0 and 0.24); this metric credits it.
    """

    @staticmethod
    def scorer(prediction: str, reference: str) -> float:
        """1.0 when the reference's words appear in the answer."""
        return answer_contains(prediction, reference)
