"""Evaluation: run a suite of questions over documents through pipelines, score them, write reports.

::

    from ragkit.evaluation import evaluate

    result, paths = evaluate("evaluation/suites/smoke.yaml", out_dir="eval-out/smoke")
    print(paths["html"])

The pieces: :func:`load_suite` (the YAML suite format), :func:`run_suite`
(ingest, answer, score), :func:`write_reports` (JSON, Markdown, HTML) and
:func:`compare_reports`. Metrics are components of the ``metric`` role
(:mod:`ragkit.evaluation.metrics`). Names are imported lazily, so
``import ragkit.evaluation`` costs nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.evaluation.compare import Comparison, compare_reports, format_comparison
    from ragkit.evaluation.metrics import BaseMetric, Metric, build_metrics, known_metrics
    from ragkit.evaluation.report import load_report, render_markdown, write_reports
    from ragkit.evaluation.results import EvalResult, PipelineResult
    from ragkit.evaluation.runner import EvaluationCancelled, ProgressCallback, run_suite
    from ragkit.evaluation.sample import EvalQuestion, EvalSample, GoldSpan, MetricResult
    from ragkit.evaluation.suite import Suite, load_suite

_EXPORTS = {
    "Comparison": "ragkit.evaluation.compare",
    "compare_reports": "ragkit.evaluation.compare",
    "format_comparison": "ragkit.evaluation.compare",
    "BaseMetric": "ragkit.evaluation.metrics",
    "Metric": "ragkit.evaluation.metrics",
    "build_metrics": "ragkit.evaluation.metrics",
    "known_metrics": "ragkit.evaluation.metrics",
    "load_report": "ragkit.evaluation.report",
    "render_markdown": "ragkit.evaluation.report",
    "write_reports": "ragkit.evaluation.report",
    "EvalResult": "ragkit.evaluation.results",
    "PipelineResult": "ragkit.evaluation.results",
    "EvaluationCancelled": "ragkit.evaluation.runner",
    "ProgressCallback": "ragkit.evaluation.runner",
    "run_suite": "ragkit.evaluation.runner",
    "EvalQuestion": "ragkit.evaluation.sample",
    "EvalSample": "ragkit.evaluation.sample",
    "GoldSpan": "ragkit.evaluation.sample",
    "MetricResult": "ragkit.evaluation.sample",
    "Suite": "ragkit.evaluation.suite",
    "load_suite": "ragkit.evaluation.suite",
}

__all__ = [
    "BaseMetric",
    "Comparison",
    "EvalQuestion",
    "EvalResult",
    "EvalSample",
    "EvaluationCancelled",
    "GoldSpan",
    "Metric",
    "MetricResult",
    "PipelineResult",
    "ProgressCallback",
    "Suite",
    "build_metrics",
    "compare_reports",
    "default_out_dir",
    "default_store_dir",
    "evaluate",
    "format_comparison",
    "known_metrics",
    "load_report",
    "load_suite",
    "render_markdown",
    "run_suite",
    "write_reports",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragkit.evaluation' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def default_out_dir(suite_name: str, root: str | Path = "eval-out") -> Path:
    """``eval-out/<suite>-<UTC timestamp>``: where a run's reports go unless told otherwise."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{suite_name}-{stamp}"


def default_store_dir(out_dir: str | Path) -> Path:
    """The eval store beside the run folders (``<out>/../.eval-store``), shared by runs so ingest is reused."""
    return Path(out_dir).expanduser().resolve().parent / ".eval-store"


def evaluate(
    suite: Suite | str | Path,
    out_dir: str | Path | None = None,
    store_dir: str | Path | None = None,
    sample: int | None = None,
    pipelines: list[str] | None = None,
    progress: ProgressCallback | None = None,
    answer_cache: bool | None = None,
) -> tuple[EvalResult, dict[str, Path]]:
    """Run ``suite`` and write its three reports; returns the result and the report paths.

    ``out_dir`` defaults to :func:`default_out_dir`; ``store_dir`` (where the
    documents are ingested) to :func:`default_store_dir` of ``out_dir``.
    ``answer_cache`` overrides the suite's option of that name.
    """
    from ragkit.evaluation.report import write_reports
    from ragkit.evaluation.runner import run_suite
    from ragkit.evaluation.suite import Suite, load_suite

    loaded = suite if isinstance(suite, Suite) else load_suite(suite)
    out = Path(out_dir) if out_dir is not None else default_out_dir(loaded.name)
    store = Path(store_dir) if store_dir is not None else default_store_dir(out)
    result = run_suite(
        loaded, store_dir=store, sample=sample, pipelines=pipelines, progress=progress, answer_cache=answer_cache
    )
    return result, write_reports(result, out)
