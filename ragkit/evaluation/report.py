"""Writing and reading evaluation reports: ``report.json``, ``report.md`` and ``report.html``.

The JSON report is complete (suite, versions, timestamps, aggregates, every
sample, the text of every retrieved chunk); the Markdown one, rendered here,
is the summary tables; the HTML one (:mod:`ragkit.evaluation.html_report`)
adds charts and a per-question table. All three are rendered from the JSON
data, so :func:`render_markdown` and :func:`render_html` work on a loaded
report (:func:`load_report`) too. What both renderers read of the data lives
in :mod:`ragkit.evaluation.report_data`; this module imports the HTML
renderer, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragkit.errors import StorageError
from ragkit.evaluation.html_report import render_html_bytes
from ragkit.evaluation.report_data import (
    REPORT_FILES,
    format_ms,
    format_value,
    headline_metrics,
    json_bytes,
    load_report,
    per_k_metrics,
    summary_header,
    summary_rows,
)
from ragkit.evaluation.results import EvalResult, gc_paused

__all__ = [
    "INDENT_UP_TO",
    "k_tables",
    "load_report",
    "render_markdown",
    "stage_table",
    "summary_table",
    "write_reports",
]


def summary_table(data: Mapping[str, Any], names: list[str] | None = None) -> str:
    """The Markdown table of metric means per pipeline (default: :func:`headline_metrics`), errors, latency, tokens."""
    names = headline_metrics(data) if names is None else names
    header = summary_header(names)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(data, names)]
    return "\n".join(lines)


def k_tables(data: Mapping[str, Any]) -> str:
    """One Markdown table per per-``k`` metric: pipelines down, ``k`` across."""
    blocks = []
    for base, ks in per_k_metrics(data).items():
        lines = [
            f"### {base}",
            "",
            "| pipeline | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|" + "---|" * len(ks),
        ]
        for pipeline in data.get("pipelines", []):
            by_k = pipeline.get("aggregates", {}).get("by_k", {}).get(base)
            if by_k is None:
                continue
            lines.append(f"| {pipeline['name']} | " + " | ".join(format_value(by_k.get(str(k))) for k in ks) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def stage_table(data: Mapping[str, Any]) -> str:
    """Median milliseconds per question of each pipeline stage: pipelines down, stages across ('' when none)."""
    stages: list[str] = []
    for pipeline in data.get("pipelines", []):
        for name in pipeline.get("aggregates", {}).get("stages_s", {}):
            if name not in stages:
                stages.append(name)
    if not stages:
        return ""
    lines = ["| pipeline | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for pipeline in data.get("pipelines", []):
        timings = pipeline.get("aggregates", {}).get("stages_s", {})
        cells = [format_ms(timings[name]["p50"]) if name in timings else "–" for name in stages]
        lines.append(f"| {pipeline['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _failures(data: Mapping[str, Any], limit: int = 20) -> list[str]:
    lines = []
    for sample in data.get("samples", []):
        reasons = [f"{name}: {reason}" for name, reason in sample.get("metric_errors", {}).items()]
        if sample.get("error"):
            reasons.insert(0, f"pipeline: {sample['error']}")
        if reasons:
            lines.append(f"- `{sample['pipeline']}` {sample['id']}: " + "; ".join(dict.fromkeys(reasons)))
    if len(lines) > limit:
        lines = [*lines[:limit], f"- … and {len(lines) - limit} more (see report.json)"]
    return lines


def render_markdown(data: Mapping[str, Any]) -> str:
    """The Markdown report: what ran, metric per pipeline, metric vs k, and the failures."""
    suite = data.get("suite", {})
    questions = data.get("questions", {})
    versions = data.get("versions", {})
    parts = [
        f"# Evaluation: {suite.get('name', '?')}",
        "",
        f"Suite `{suite.get('file', '')}` · {questions.get('evaluated', 0)} of {questions.get('total', 0)} questions"
        f" · started {data.get('started_at', '')} · {data.get('duration_s', 0):.1f} s"
        f" · ragkit {versions.get('ragkit') or '?'}",
        "",
        "## Metrics per pipeline",
        "",
        "Means over the samples a metric could score; `(n failed)` counts the samples it could not. "
        "Metrics with a cut-off are shown at their largest k here, at every k below.",
        "",
        summary_table(data),
    ]
    replayed = [
        f"`{p['name']}` {p['aggregates']['answers_cached']} of {p['aggregates']['samples']}"
        for p in data.get("pipelines", [])
        if p.get("aggregates", {}).get("answers_cached")
    ]
    if replayed:
        parts += [
            "",
            "Answers replayed from the answer cache (latency and tokens are those of the run that wrote them): "
            + ", ".join(replayed)
            + ".",
        ]
    tables = k_tables(data)
    if tables:
        parts += ["", "## Metrics by k", "", tables]
    stages = stage_table(data)
    if stages:
        parts += ["", "## Time per stage", "", "Median per question (a batched stage's time is shared).", "", stages]
    failures = _failures(data)
    if failures:
        parts += ["", "## Failures", "", *failures]
    return "\n".join(parts) + "\n"


INDENT_UP_TO = 2000
"""Reports with more samples than this are written without indentation (faster, a third smaller)."""


def _json_bytes(data: Mapping[str, Any]) -> bytes:
    """The report file's content: indented up to :data:`INDENT_UP_TO` samples, compact beyond."""
    return json_bytes(data, indent=len(data.get("samples", [])) <= INDENT_UP_TO) + b"\n"


def write_reports(result: EvalResult | Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out_dir``; returns their paths."""
    with gc_paused():
        data = result.to_dict() if isinstance(result, EvalResult) else dict(result)
        rendered = {
            "json": _json_bytes(data),
            "markdown": render_markdown(data).encode("utf-8"),
            "html": render_html_bytes(data),
        }
    folder = Path(out_dir).expanduser()
    paths = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for kind, content in rendered.items():
            path = folder / REPORT_FILES[kind]
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
            paths[kind] = path
    except OSError as exc:
        raise StorageError(f"cannot write reports to {folder}: {exc.strerror}") from None
    return paths
