"""Writing and reading evaluation reports: ``report.json``, ``report.md`` and ``report.html``.

The JSON report is complete (suite, versions, timestamps, aggregates, every
sample, the text of every retrieved chunk); the Markdown one is the summary
tables; the HTML one (:mod:`ragkit.evaluation.html_report`) adds charts and
a per-question table. All three are rendered from the JSON data, so
:func:`render_markdown` and :func:`render_html` work on a loaded report too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragkit.errors import InputError, StorageError
from ragkit.evaluation.results import REPORT_FORMAT, EvalResult, gc_paused, split_k

REPORT_FILES = {"json": "report.json", "markdown": "report.md", "html": "report.html"}


def format_value(value: float | None, digits: int = 3) -> str:
    """A metric value for a table (``–`` for none)."""
    return "–" if value is None else f"{value:.{digits}f}"


def metric_columns(data: Mapping[str, Any]) -> list[str]:
    """The report's metric names, in suite order."""
    return list(data.get("metrics", []))


def headline_metrics(data: Mapping[str, Any]) -> list[str]:
    """The metrics without a cut-off, and each per-k metric at its largest k (the rest: :func:`k_tables`)."""
    per_k = per_k_metrics(data)
    names = []
    for name in metric_columns(data):
        base, k = split_k(name)
        if k is None or k == per_k[base][-1]:
            names.append(name)
    return names


def _cell(aggregates: Mapping[str, Any], name: str) -> str:
    entry = aggregates.get("metrics", {}).get(name)
    if entry is None:
        return "n/a"
    text = format_value(entry.get("mean"))
    if entry.get("failed"):
        text += f" ({entry['failed']} failed)"
    return text


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.0f} ms"


def _tokens(aggregates: Mapping[str, Any]) -> str:
    total = aggregates.get("tokens", {}).get("total_tokens")
    return "–" if total is None else f"{total:.0f}"


def summary_table(data: Mapping[str, Any], names: list[str] | None = None) -> str:
    """The Markdown table of metric means per pipeline (default: :func:`headline_metrics`), errors, latency, tokens."""
    names = headline_metrics(data) if names is None else names
    header = ["pipeline", "kind", *names, "errors", "p50 latency", "p95 latency", "tokens/question"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for pipeline in data.get("pipelines", []):
        agg = pipeline.get("aggregates", {})
        latency = agg.get("latency_s", {})
        row = [
            pipeline["name"],
            pipeline.get("kind", ""),
            *(_cell(agg, n) for n in names),
            str(agg.get("errors", 0)),
            _ms(latency.get("p50")),
            _ms(latency.get("p95")),
            _tokens(agg),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_k_metrics(data: Mapping[str, Any]) -> dict[str, list[int]]:
    """Base metric name → its cut-offs, for the metrics computed per ``k``."""
    found: dict[str, list[int]] = {}
    for name in metric_columns(data):
        base, k = split_k(name)
        if k is not None:
            found.setdefault(base, [])
            if k not in found[base]:
                found[base].append(k)
    return {base: sorted(ks) for base, ks in found.items()}


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
        cells = [_ms(timings[name]["p50"]) if name in timings else "–" for name in stages]
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


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``report.json``; :class:`InputError` when it is missing or not an evaluation report."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"report {file} does not exist") from None
    except OSError as exc:
        raise InputError(f"cannot read report {file}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{file} is not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise InputError(f"{file} is not a ragkit evaluation report (expected format {REPORT_FORMAT!r})")
    return data


INDENT_UP_TO = 2000
"""Reports with more samples than this are written without indentation (faster, a third smaller)."""


def json_bytes(data: Any, indent: bool = False) -> bytes:
    """``data`` as UTF-8 JSON: with orjson when it is installed (ten times faster), else the standard library."""
    try:
        import orjson
    except ImportError:
        if indent:
            text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False)
        else:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    return bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 if indent else 0))


def _json_bytes(data: Mapping[str, Any]) -> bytes:
    """The report file's content: indented up to :data:`INDENT_UP_TO` samples, compact beyond."""
    return json_bytes(data, indent=len(data.get("samples", [])) <= INDENT_UP_TO) + b"\n"


def write_reports(result: EvalResult | Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out_dir``; returns their paths."""
    from ragkit.evaluation.html_report import render_html_bytes

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
