"""Retrieval metrics (no LLM): answer-hit@k, recall@k, precision@k, MRR, nDCG@k.

``answer_hit``: 1 when one of the top ``k`` chunks contains a reference
answer as a substring (case-sensitive, as in open-domain QA);
``answer_hit_normalised``: the same after lower-casing and collapsing
whitespace. The others compare hits with the question's gold spans or gold
documents; see :mod:`ragkit.evaluation.metrics.ranking` for the definitions.
Those four take ``backend: python`` (the default) or ``backend: ranx``; both
give the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

from ragkit.errors import ConfigError
from ragkit.evaluation.metrics.base import BaseMetric, MetricProgress
from ragkit.evaluation.metrics.ranking import (
    first_relevant_rank,
    ndcg_at_k,
    precision_at_k,
    ranx_scores,
    recall_at_k,
    reciprocal_rank,
)
from ragkit.evaluation.metrics.text import collapse
from ragkit.evaluation.sample import EvalSample, MetricResult, Relevance
from ragkit.registry import register

Backend = Literal["python", "ranx"]
_NO_GOLD = "the question has no gold_spans or gold_documents"
_NO_REFERENCES = "the question has no reference answers"


def _check_k(k: int, name: str) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"metric {name!r}: k must be an integer >= 1, got {k!r}")
    return k


@register("metric", "answer_hit")
class AnswerHit(BaseMetric):
    """1.0 when a top-``k`` chunk contains a reference answer verbatim, else 0.0."""

    needs: ClassVar[frozenset[str]] = frozenset({"retrieval"})
    per_k: ClassVar[bool] = True
    normalised: ClassVar[bool] = False

    def __init__(self, k: int = 5) -> None:
        self.k = _check_k(k, self.component_type or "answer_hit")

    def score(self, sample: EvalSample) -> MetricResult:
        """Score one sample."""
        if not sample.references:
            return MetricResult.failed(_NO_REFERENCES)
        key = "answer_hit_normalised" if self.normalised else "answer_hit"
        if key not in sample.cache:  # the first rank holding an answer serves every k
            sample.cache[key] = _first_answer(sample, collapse if self.normalised else _same)
        found: tuple[int, str] | None = sample.cache[key]
        assert self.k is not None
        if found is not None and found[0] <= self.k:
            return MetricResult(1.0, details={"rank": found[0], "answer": found[1]})
        return MetricResult(0.0)


def _same(text: str) -> str:
    return text


def _first_answer(sample: EvalSample, prepare: Callable[[str], str]) -> tuple[int, str] | None:
    """``(rank, reference)`` of the first hit containing a reference answer, or ``None``."""
    wanted = [prepare(ref) for ref in sample.references if ref.strip()]
    for rank, hit in enumerate(sample.hits, 1):
        text = prepare(hit.chunk.text)
        for reference in wanted:
            if reference in text:
                return rank, reference
    return None


@register("metric", "answer_hit_normalised")
class AnswerHitNormalised(AnswerHit):
    """:class:`AnswerHit` after lower-casing and collapsing whitespace in both texts."""

    normalised: ClassVar[bool] = True


class _GoldMetric(BaseMetric):
    """A metric of the hits against the gold, computed in Python or in one batch through ranx."""

    needs: ClassVar[frozenset[str]] = frozenset({"retrieval"})

    def __init__(self, backend: Backend = "python") -> None:
        if backend not in ("python", "ranx"):
            raise ConfigError(f"metric {self.component_type!r}: backend must be python or ranx, got {backend!r}")
        self.backend: Backend = backend

    def compute(self, relevance: Relevance) -> float:
        """The value for one question (plain Python)."""
        raise NotImplementedError

    def ranx_metric(self) -> str:
        """The name ranx knows this metric by (``mrr``, ``recall@5``)."""
        return self.component_type

    def explain(self, relevance: Relevance) -> dict[str, Any]:
        """Details stored beside the value."""
        rank = first_relevant_rank(relevance)
        return {"first_relevant_rank": rank} if rank is not None else {}

    def _score_fast(self, samples: Sequence[EvalSample]) -> list[MetricResult]:
        """:meth:`score` for each sample, as one tight loop (retrieval-only suites score thousands)."""
        compute, explain = self.compute, self.explain
        results = []
        for sample in samples:
            question = sample.question
            if question.gold_spans or question.gold_documents:
                relevance = sample.relevance()
                results.append(MetricResult(compute(relevance), None, explain(relevance)))
            else:
                results.append(MetricResult(None, _NO_GOLD))
        return results

    def score(self, sample: EvalSample) -> MetricResult:
        """Score one sample."""
        if not sample.question.has_gold:
            return MetricResult.failed(_NO_GOLD)
        relevance = sample.relevance()
        return MetricResult(self.compute(relevance), details=self.explain(relevance))

    def score_many(self, samples: Sequence[EvalSample], progress: MetricProgress | None = None) -> list[MetricResult]:
        """Score all samples; with the ranx backend, in one ranx call for the whole batch."""
        if self.backend != "ranx":
            try:
                scored = self._score_fast(samples)
            except Exception:  # one bad sample: score one by one, so only it fails
                scored = super().score_many(samples)
            if progress is not None:
                progress(len(samples))
            return scored
        results: list[MetricResult] = [MetricResult.failed(_NO_GOLD) for _ in samples]
        scorable = [i for i, sample in enumerate(samples) if sample.question.has_gold]
        relevances = [samples[i].relevance() for i in scorable]
        values = ranx_scores(self.ranx_metric(), relevances)
        for i, relevance, value in zip(scorable, relevances, values, strict=True):
            results[i] = MetricResult(value, details=self.explain(relevance))
        if progress is not None:
            progress(len(samples))
        return results


class _GoldMetricAtK(_GoldMetric):
    per_k: ClassVar[bool] = True

    def __init__(self, k: int = 5, backend: Backend = "python") -> None:
        super().__init__(backend)
        self.k = _check_k(k, self.component_type)

    def ranx_metric(self) -> str:
        """The ranx metric name, ``recall@5``."""
        return f"{self.component_type}@{self.k}"

    def explain(self, relevance: Relevance) -> dict[str, Any]:
        """Nothing: ``mrr`` records the first relevant rank once, not once per k."""
        return {}


@register("metric", "recall")
class Recall(_GoldMetricAtK):
    """Share of the gold spans (or documents) that a top-``k`` chunk overlaps."""

    def compute(self, relevance: Relevance) -> float:
        """recall@k."""
        assert self.k is not None
        return recall_at_k(relevance, self.k)


@register("metric", "precision")
class Precision(_GoldMetricAtK):
    """Share of the top ``k`` ranks holding a chunk that overlaps a gold span (or lies in a gold document)."""

    def compute(self, relevance: Relevance) -> float:
        """precision@k."""
        assert self.k is not None
        return precision_at_k(relevance, self.k)


@register("metric", "ndcg")
class NDCG(_GoldMetricAtK):
    """Normalised discounted cumulative gain at ``k`` (binary gains, each gold item counted once)."""

    def compute(self, relevance: Relevance) -> float:
        """ndcg@k."""
        assert self.k is not None
        return ndcg_at_k(relevance, self.k)


@register("metric", "mrr")
class MRR(_GoldMetric):
    """Reciprocal rank of the first relevant chunk among all retrieved (0 when none is)."""

    def compute(self, relevance: Relevance) -> float:
        """The reciprocal rank."""
        return reciprocal_rank(relevance)
