"""The outcome of a suite run: per-pipeline samples, aggregates, and the report data they make.

:meth:`EvalResult.to_dict` is the content of ``report.json`` (format
``ragkit-eval/1``); the Markdown and HTML reports and ``ragkit eval compare``
read only that dict, so they work as well on a report loaded from disk.

Each retrieved chunk is stored once, in the top-level ``chunks`` table
(source, span in the whole file, text) keyed by chunk id. A sample's ``hits``
list, best first, holds each hit in its one JSON shape
(:meth:`ragkit.schema.Hit.to_dict`: rank, score, origin, chunk and document
ids, source, uri, start, end, page, section, row, title, scores, ranks; the
score rounded to 6 digits) less its ``text`` and ``metadata``, which the
``chunks`` table holds once; its ``citations`` are
:meth:`ragkit.rag.Citation.to_dict`. A sample's ``metrics`` maps each
metric to its value (``null`` when it could not score), ``metric_errors`` the
failed ones to the reason, ``metric_details`` to whatever explains a value.
"""

from __future__ import annotations

import gc
import math
import platform
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from ragkit.evaluation.sample import EvalQuestion, EvalSample, chunk_span
from ragkit.evaluation.suite import PipelineRun, Suite

REPORT_FORMAT = "ragkit-eval/1"
_VERSIONED = ("ragkit", "numpy", "torch", "transformers", "sentence-transformers", "ragas", "ranx", "faiss-cpu")


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (then back as it was).

    Scoring and report writing make hundreds of thousands of small, acyclic
    objects; with the collector on, its full passes over the run's samples
    and hits cost more than the work itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (``None`` when absent), and Python's."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) with linear interpolation, ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def split_k(name: str) -> tuple[str, int | None]:
    """``("recall", 5)`` for ``recall@5``; ``(name, None)`` for a metric without a cut-off."""
    base, sep, k = name.rpartition("@")
    if sep and base and k.isdigit():
        return base, int(k)
    return name, None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


STAGE_PREFIX = "stage:"


def stage_timings(samples: Sequence[EvalSample]) -> dict[str, dict[str, float | None]]:
    """p50 and mean seconds per pipeline stage (``stage:<name>`` timings, then assemble and generate), in order."""
    values: dict[str, list[float]] = {}
    for sample in samples:
        for key, seconds in sample.timings.items():
            if key.startswith(STAGE_PREFIX):
                values.setdefault(key.removeprefix(STAGE_PREFIX), []).append(seconds)
    for key in ("assemble", "generate"):
        found = [s.timings[key] for s in samples if key in s.timings]
        if found:
            values[key] = found
    return {
        name: {"p50": _round(percentile(seconds, 0.5)), "mean": _round(statistics.fmean(seconds))}
        for name, seconds in values.items()
    }


def aggregate(samples: Sequence[EvalSample], metric_names: Sequence[str]) -> dict[str, Any]:
    """Means over scored samples, failure counts, metric per k, latency percentiles, tokens per question."""
    metrics: dict[str, dict[str, Any]] = {}
    by_k: dict[str, dict[str, float | None]] = {}
    for name in metric_names:
        results = [s.metrics[name] for s in samples if name in s.metrics]
        if not results:
            continue
        values = [r.value for r in results if r.value is not None]
        mean = statistics.fmean(values) if values else None
        metrics[name] = {"mean": _round(mean), "scored": len(values), "failed": len(results) - len(values)}
        base, k = split_k(name)
        if k is not None:
            by_k.setdefault(base, {})[str(k)] = _round(mean)
    answered = [s for s in samples if s.error is None]
    latencies = [s.latency for s in answered]
    with_usage = [s.usage for s in answered if s.usage]
    tokens: dict[str, float | None] = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        counts = [u.get(key, 0) for u in with_usage]
        tokens[key] = _round(statistics.fmean(counts), 2) if counts else None
    return {
        "samples": len(samples),
        "errors": len(samples) - len(answered),
        "answers_cached": sum(s.answer_cached for s in samples),
        "metrics": metrics,
        "by_k": by_k,
        "latency_s": {
            "p50": _round(percentile(latencies, 0.5)),
            "p95": _round(percentile(latencies, 0.95)),
            "mean": _round(statistics.fmean(latencies)) if latencies else None,
        },
        "stages_s": stage_timings(answered),
        "tokens": tokens,
    }


@dataclass(slots=True)
class PipelineResult:
    """One pipeline's samples, timings and aggregates."""

    run: PipelineRun
    samples: list[EvalSample]
    metric_names: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    """``warmup``, ``answer`` (all questions) and ``score`` (all metrics), in seconds."""

    def aggregates(self) -> dict[str, Any]:
        """See :func:`aggregate`."""
        return aggregate(self.samples, self.metric_names)


def _sample_dict(sample: EvalSample, chunks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    hits = []
    for rank, hit in enumerate(sample.hits, 1):
        chunk = hit.chunk
        if chunk.id not in chunks:
            start, end = chunk_span(hit)
            entry = chunks[chunk.id] = {"source": chunk.source, "start": start, "end": end, "text": chunk.text}
            page = chunk.metadata.get("page")
            if page is not None:  # PDF chunks: offsets are relative to the page
                entry["page"] = page
        shape = hit.to_dict(rank)  # the hit's one JSON shape; its text and metadata are kept once, in ``chunks``
        del shape["text"], shape["metadata"]
        shape["score"] = round(shape["score"], 6)
        hits.append(shape)
    question = sample.question
    values: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    details: dict[str, Any] = {}
    for name, result in sample.metrics.items():
        values[name] = result.value
        if result.error is not None:
            errors[name] = result.error
        if result.details:
            details[name] = result.details
    return {
        "id": question.id,
        "pipeline": sample.pipeline,
        "question": question.question,
        "references": question.answers,
        "gold_spans": [g.to_dict() for g in question.gold_spans],
        "gold_documents": question.gold_documents,
        "hits": hits,
        "answer": sample.answer,
        "citations": sample.citations,
        "usage": sample.usage,
        "timings": {k: round(v, 6) for k, v in sample.timings.items()},
        "latency_s": round(sample.latency, 6),
        "error": sample.error,
        "answer_cached": sample.answer_cached,
        "metrics": values,
        "metric_errors": errors,
        "metric_details": details,
    }


@dataclass(slots=True)
class EvalResult:
    """Everything a suite run produced."""

    suite: Suite
    questions: list[EvalQuestion]
    questions_total: int
    pipelines: list[PipelineResult]
    metric_names: list[str]
    collection: dict[str, Any]
    started_at: str
    finished_at: str
    duration_s: float
    versions: dict[str, str | None] = field(default_factory=package_versions)

    def to_dict(self) -> dict[str, Any]:
        """The complete, JSON-ready report (``report.json``)."""
        chunks: dict[str, dict[str, Any]] = {}
        samples = [_sample_dict(s, chunks) for p in self.pipelines for s in p.samples]
        return {
            "format": REPORT_FORMAT,
            "suite": self.suite.to_dict(),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "versions": self.versions,
            "collection": self.collection,
            "questions": {"total": self.questions_total, "evaluated": len(self.questions)},
            "metrics": list(self.metric_names),
            "pipelines": [
                {
                    **p.run.describe(),
                    "seconds": {k: round(v, 4) for k, v in p.seconds.items()},
                    "aggregates": p.aggregates(),
                }
                for p in self.pipelines
            ],
            "samples": samples,
            "chunks": chunks,
        }
