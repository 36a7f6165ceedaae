"""Evaluation metrics: the :class:`Metric` protocol, the built-in metrics, and building them by name.

Built in (no LLM): ``answer_hit``, ``answer_hit_normalised``, ``recall``,
``precision``, ``ndcg`` (each per cut-off ``k``), ``mrr``, ``exact_match``,
``f1``, ``answer_contains`` and ``attack_success`` (prompt injection). Other
metrics come from connectors through the ``metric`` role
of :mod:`ragkit.registry` (entry points ``metric.<name>``), e.g. the ragas
metrics of ``ragkit-ragas``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ragkit import registry
from ragkit.errors import ConfigError, NotFoundError, RagkitError
from ragkit.evaluation.metrics.answer import AnswerContains, ExactMatch, TokenF1
from ragkit.evaluation.metrics.base import NEEDS, BaseMetric, Metric, MetricProgress, checked, safe_score
from ragkit.evaluation.metrics.injection import AttackSuccess
from ragkit.evaluation.metrics.retrieval import (
    MRR,
    NDCG,
    AnswerHit,
    AnswerHitNormalised,
    Precision,
    Recall,
)
from ragkit.evaluation.sample import MetricResult

__all__ = [
    "MRR",
    "NDCG",
    "NEEDS",
    "AnswerContains",
    "AnswerHit",
    "AnswerHitNormalised",
    "AttackSuccess",
    "BaseMetric",
    "ExactMatch",
    "Metric",
    "MetricProgress",
    "MetricResult",
    "Precision",
    "Recall",
    "TokenF1",
    "build_metric",
    "build_metrics",
    "checked",
    "known_metrics",
    "safe_score",
]


def known_metrics() -> list[str]:
    """Names of every metric available: built in and from installed connectors."""
    return registry.available("metric")


def _required_argument(cls: Any, name: str) -> bool:
    """Whether ``cls(...)`` must be given ``name`` (it has no default)."""
    try:
        parameter = inspect.signature(cls).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty


def _takes_argument(cls: Any, name: str) -> bool:
    """Whether ``cls(...)`` has a parameter ``name``."""
    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def build_metric(
    name: str,
    options: Mapping[str, Any] | None = None,
    ks: Sequence[int] = (5,),
    judge: Mapping[str, Any] | None = None,
    embedder: Mapping[str, Any] | None = None,
    where: str = "metrics",
    judge_cache_dir: str | None = None,
) -> list[Metric]:
    """The metric instances a suite entry stands for: one, or one per ``k`` for a per-cut-off metric.

    A metric whose class ``needs`` a judge gets the suite's ``judge`` (when the
    suite has none, the metric's own default judge, if it has one), and
    ``judge_cache_dir`` as its ``cache_dir`` unless the entry sets one. Raises
    :class:`ConfigError` naming ``where`` for an unknown name (listing the
    known ones), a judged metric that requires a ``judge`` the suite lacks,
    or bad options.
    """
    try:
        cls: Any = registry.get("metric", name)
    except NotFoundError:
        known = ", ".join(known_metrics()) or "none"
        raise ConfigError(f"{where}: unknown metric {name!r}; known metrics: {known}") from None
    params = dict(options or {})
    needs = frozenset(getattr(cls, "needs", ()))
    if "judge" in needs:
        if judge is not None:
            params["judge"] = dict(judge)
        elif _required_argument(cls, "judge"):
            raise ConfigError(
                f"{where}: metric {name!r} is judged by an LLM: set 'judge' in the suite "
                "(a generator config such as {type: openai, model: ..., base_url: ...})"
            )
        if judge_cache_dir is not None and "cache_dir" not in params and _takes_argument(cls, "cache_dir"):
            params["cache_dir"] = judge_cache_dir
    if getattr(cls, "uses_embedder", False):
        params["embedder"] = dict(embedder) if embedder is not None else None
    configs = (
        [{"type": name, **params, "k": k} for k in ks] if getattr(cls, "per_k", False) else [{"type": name, **params}]
    )
    metrics: list[Metric] = []
    for config in configs:
        try:
            metric = registry.build("metric", config)
        except RagkitError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except Exception as exc:
            raise ConfigError(f"{where}: cannot build metric {name!r}: {type(exc).__name__}: {exc}") from None
        if not isinstance(metric, Metric):
            raise ConfigError(f"{where}: {name!r} is not a metric (it needs name, needs, score and score_many)")
        unknown = set(metric.needs) - NEEDS
        if unknown:
            raise ConfigError(f"{where}: metric {name!r} needs unknown things: {', '.join(sorted(unknown))}")
        metrics.append(metric)
    return metrics


def build_metrics(
    entries: Sequence[tuple[str, Mapping[str, Any]]],
    ks: Sequence[int],
    judge: Mapping[str, Any] | None = None,
    embedder: Mapping[str, Any] | None = None,
    judge_cache_dir: str | None = None,
) -> list[Metric]:
    """Every metric instance of a suite's ``metrics`` list (``(name, options)`` pairs), names unique."""
    metrics: list[Metric] = []
    seen: set[str] = set()
    for index, (name, options) in enumerate(entries):
        where = f"metrics[{index}]"
        for metric in build_metric(name, options, ks, judge, embedder, where, judge_cache_dir):
            if metric.name in seen:
                raise ConfigError(f"metrics[{index}]: metric {metric.name!r} is listed twice")
            seen.add(metric.name)
            metrics.append(metric)
    return metrics
