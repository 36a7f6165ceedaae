"""Answer metrics without an LLM: SQuAD exact match and token F1, best over the references."""

from __future__ import annotations

from typing import ClassVar

from ragkit.evaluation.metrics.base import BaseMetric
from ragkit.evaluation.metrics.text import max_over_references
from ragkit.evaluation.sample import EvalSample, MetricResult
from ragkit.registry import register


class _AnswerMetric(BaseMetric):
    needs: ClassVar[frozenset[str]] = frozenset({"answer"})
    uses_f1: ClassVar[bool] = False

    def __init__(self) -> None:
        """No options."""

    def score(self, sample: EvalSample) -> MetricResult:
        """Score one sample."""
        if sample.answer is None:
            return MetricResult.failed("the pipeline gave no answer")
        if not sample.references:
            return MetricResult.failed("the question has no reference answers")
        value, reference = max_over_references(sample.answer, sample.references, f1=self.uses_f1)
        return MetricResult(value, details={"reference": reference})


@register("metric", "exact_match")
class ExactMatch(_AnswerMetric):
    """1.0 when the SQuAD-normalised answer equals a normalised reference answer."""


@register("metric", "f1")
class TokenF1(_AnswerMetric):
    """SQuAD token F1 between the normalised answer and the best reference answer."""

    uses_f1: ClassVar[bool] = True
