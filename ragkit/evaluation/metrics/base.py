"""The metric role: score one sample (or a batch of them) and say why when it cannot.

A metric is a component registered for the ``metric`` role. Built-in ones
live in this package; a connector announces its own as entry points
``metric.<name>`` in the ``ragkit.components`` group (``ragkit-ragas`` does
so for the ragas metrics), so a suite names either kind the same way.

How the runner builds one (:func:`ragkit.evaluation.metrics.build_metrics`):
``registry.build("metric", {"type": NAME, **options})`` where ``options``
are the suite entry's own options plus

- ``k=<int>`` once per value of the suite's ``k`` when the class sets
  ``per_k = True`` (each instance is then named ``NAME@k``);
- ``judge=<generator config dict>`` when ``"judge"`` is in its ``needs``;
- ``embedder=<embedder config dict or None>`` when the class sets
  ``uses_embedder = True``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import ClassVar, Protocol, runtime_checkable

from ragkit.component import Component
from ragkit.evaluation.sample import EvalSample, MetricResult

MetricProgress = Callable[..., None]
"""``progress(finished)`` with the number of samples just finished (usually 1), or
``progress(done, total, errors)`` with running totals (a metric that knows which
samples failed reports them this way, and the progress bar shows the errors)."""

NEEDS = frozenset({"retrieval", "answer", "judge"})
"""What a metric can need: retrieved hits, a generated answer, an LLM judge."""


@runtime_checkable
class Metric(Protocol):
    """What the runner needs of a metric."""

    @property
    def name(self) -> str:
        """The name its values are reported under (``recall@5``, ``f1``)."""
        ...

    @property
    def needs(self) -> AbstractSet[str]:
        """Subset of ``{"retrieval", "answer", "judge"}``; answer metrics skip retrieval-only pipelines."""
        ...

    def score(self, sample: EvalSample) -> MetricResult:
        """Score one sample."""
        ...

    def score_many(self, samples: Sequence[EvalSample], progress: MetricProgress | None = None) -> list[MetricResult]:
        """Score a batch: one result per sample, in order."""
        ...


class BaseMetric(Component):
    """Base class of metrics: a name, what it needs, and a default batch loop over :meth:`score`.

    Subclasses set ``needs`` and implement :meth:`score`; a metric that is
    cheaper in bulk (one model call for many samples) overrides
    :meth:`score_many`. Set ``per_k = True`` and take a ``k`` argument to be
    built once per cut-off.
    """

    needs: ClassVar[frozenset[str]] = frozenset()
    per_k: ClassVar[bool] = False
    uses_embedder: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True

    k: int | None = None

    @property
    def name(self) -> str:
        """``type`` for a plain metric, ``type@k`` for one built per cut-off."""
        base = self.component_type or type(self).__name__
        return f"{base}@{self.k}" if self.per_k and self.k is not None else base

    def score(self, sample: EvalSample) -> MetricResult:
        """Score one sample (subclasses implement this)."""
        raise NotImplementedError

    def score_many(self, samples: Sequence[EvalSample], progress: MetricProgress | None = None) -> list[MetricResult]:
        """Score each sample in turn; an exception becomes that sample's failure, the others still score.

        The results are not checked here: the runner checks every result once.
        """
        results = []
        score = self.score
        for sample in samples:
            try:
                results.append(score(sample))
            except Exception as exc:
                results.append(MetricResult.failed(describe_error(exc)))
            if progress is not None:
                progress(1)
        return results


def safe_score(metric: Metric, sample: EvalSample) -> MetricResult:
    """``metric.score(sample)`` with exceptions and NaN turned into a failed result."""
    try:
        result = metric.score(sample)
    except Exception as exc:
        return MetricResult.failed(describe_error(exc))
    return checked(result)


def describe_error(exc: BaseException) -> str:
    """``Type: message`` (or just the type) for a failure reason."""
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def checked(result: object) -> MetricResult:
    """``result`` if it is a proper :class:`MetricResult`, else a failed one saying what was wrong.

    NaN and infinite values become ``None`` with an error; plain numbers and
    objects with ``value``/``error``/``details`` attributes are accepted and wrapped.
    """
    if type(result) is MetricResult and type(result.value) is float and math.isfinite(result.value):
        return result  # the common case, first and cheap
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        result = MetricResult(float(result))
    elif not isinstance(result, MetricResult) and hasattr(result, "value"):  # a look-alike (ragkit-ragas' MetricScore)
        details = getattr(result, "details", None)
        error = getattr(result, "error", None)
        result = MetricResult(
            getattr(result, "value", None),
            str(error) if error is not None else None,
            dict(details) if isinstance(details, dict) else {},
        )
    if not isinstance(result, MetricResult):
        return MetricResult.failed(f"the metric returned {type(result).__name__}, not a MetricResult")
    value = result.value
    if value is None:
        if result.error is None:
            result.error = "the metric gave no value and no reason"
        return result
    try:
        number = float(value)
    except (TypeError, ValueError):
        return MetricResult.failed(f"the metric returned a non-numeric value {value!r}")
    if math.isnan(number) or math.isinf(number):
        return MetricResult(None, f"the metric returned {number} (not a number)", result.details)
    result.value = number
    return result
