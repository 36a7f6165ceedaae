"""Comparing two evaluation reports: aggregate deltas, and the questions whose metric flipped.

A question's metric *flipped* when it passed in one report and not in the
other: passing means a value of at least ``threshold`` (0.5 by default, so a
0/1 metric flips when it changes), failing means a lower value or no value.
Samples are matched by pipeline name and question id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class MetricDelta:
    """One pipeline's mean of one metric in both reports."""

    pipeline: str
    metric: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """``after - before`` (``None`` when either is missing)."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(slots=True)
class Flip:
    """A question whose metric passed in one report and not in the other."""

    pipeline: str
    question_id: str
    question: str
    metric: str
    before: float | None
    after: float | None

    @property
    def improved(self) -> bool:
        """Whether it went from failing to passing."""
        return self.after is not None and (self.before is None or self.after > self.before)


@dataclass(slots=True)
class Comparison:
    """What changed between two reports."""

    deltas: list[MetricDelta] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    only_before: list[str] = field(default_factory=list)
    """Pipelines only in the first report."""
    only_after: list[str] = field(default_factory=list)
    threshold: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "threshold": self.threshold,
            "only_before": self.only_before,
            "only_after": self.only_after,
            "deltas": [
                {"pipeline": d.pipeline, "metric": d.metric, "before": d.before, "after": d.after, "delta": d.delta}
                for d in self.deltas
            ],
            "flips": [
                {
                    "pipeline": f.pipeline,
                    "id": f.question_id,
                    "question": f.question,
                    "metric": f.metric,
                    "before": f.before,
                    "after": f.after,
                    "improved": f.improved,
                }
                for f in self.flips
            ],
        }


def _passes(value: float | None, threshold: float) -> bool:
    return value is not None and value >= threshold


def compare_reports(before: Mapping[str, Any], after: Mapping[str, Any], threshold: float = 0.5) -> Comparison:
    """Compare two loaded reports (see :func:`ragkit.evaluation.report.load_report`)."""
    first = {p["name"]: p for p in before.get("pipelines", [])}
    second = {p["name"]: p for p in after.get("pipelines", [])}
    result = Comparison(
        only_before=[n for n in first if n not in second],
        only_after=[n for n in second if n not in first],
        threshold=threshold,
    )
    for name in (n for n in second if n in first):
        a = first[name]["aggregates"]["metrics"]
        b = second[name]["aggregates"]["metrics"]
        for metric in dict.fromkeys([*a, *b]):
            result.deltas.append(
                MetricDelta(name, metric, a.get(metric, {}).get("mean"), b.get(metric, {}).get("mean"))
            )
    old = {(s["pipeline"], s["id"]): s for s in before.get("samples", [])}
    for sample in after.get("samples", []):
        previous = old.get((sample["pipeline"], sample["id"]))
        if previous is None:
            continue
        earlier = previous.get("metrics", {})
        for metric, now in sample.get("metrics", {}).items():
            if metric not in earlier:
                continue
            was = earlier[metric]
            if _passes(was, threshold) != _passes(now, threshold):
                result.flips.append(Flip(sample["pipeline"], sample["id"], sample["question"], metric, was, now))
    return result


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def format_comparison(comparison: Comparison, max_flips: int = 50) -> str:
    """The comparison as text: a delta table per pipeline, then the flipped questions."""
    lines: list[str] = []
    for name in comparison.only_before:
        lines.append(f"pipeline {name!r} is only in the first report")
    for name in comparison.only_after:
        lines.append(f"pipeline {name!r} is only in the second report")
    pipeline = None
    for d in comparison.deltas:
        if d.pipeline != pipeline:
            pipeline = d.pipeline
            lines += ["", f"{pipeline}:", f"  {'metric':<28} {'before':>8} {'after':>8} {'delta':>8}"]
        delta = "–" if d.delta is None else f"{d.delta:+.3f}"
        lines.append(f"  {d.metric:<28} {_number(d.before):>8} {_number(d.after):>8} {delta:>8}")
    improved = sum(1 for f in comparison.flips if f.improved)
    lines += [
        "",
        f"{len(comparison.flips)} flipped (threshold {comparison.threshold}): "
        f"{improved} now pass, {len(comparison.flips) - improved} now fail",
    ]
    for flip in comparison.flips[:max_flips]:
        sign = "+" if flip.improved else "-"
        question = flip.question if len(flip.question) <= 70 else flip.question[:69] + "…"
        lines.append(
            f"  {sign} [{flip.pipeline}] {flip.question_id} {flip.metric}: "
            f"{_number(flip.before)} → {_number(flip.after)}  {question}"
        )
    if len(comparison.flips) > max_flips:
        lines.append(f"  … and {len(comparison.flips) - max_flips} more (use --json)")
    return "\n".join(lines).strip() + "\n"
