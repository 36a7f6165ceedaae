"""An evaluation report's data, as both renderers read it: reading ``report.json``, JSON bytes, metric columns, cells.

The Markdown renderer (:mod:`ragkit.evaluation.report`) and the HTML one
(:mod:`ragkit.evaluation.html_report`) show the same numbers the same way;
what they share lives here, so neither renderer imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragkit.errors import InputError
from ragkit.evaluation.results import REPORT_FORMAT, split_k

REPORT_FILES = {"json": "report.json", "markdown": "report.md", "html": "report.html"}
"""The file each report format is written to, by format."""

SUMMARY_TAIL = ("errors", "p50 latency", "p95 latency", "tokens/question")
"""The summary table's columns after the metrics."""


def format_value(value: float | None, digits: int = 3) -> str:
    """A metric value for a table (``–`` for none)."""
    return "–" if value is None else f"{value:.{digits}f}"


def format_ms(seconds: float | None) -> str:
    """A duration for a table, in milliseconds (two decimals under 10 ms; ``–`` for none)."""
    if seconds is None:
        return "–"
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.0f} ms"


def metric_columns(data: Mapping[str, Any]) -> list[str]:
    """The report's metric names, in suite order."""
    return list(data.get("metrics", []))


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


def headline_metrics(data: Mapping[str, Any]) -> list[str]:
    """The metrics without a cut-off, and each per-k metric at its largest k (the others: per-k tables)."""
    per_k = per_k_metrics(data)
    names = []
    for name in metric_columns(data):
        base, k = split_k(name)
        if k is None or k == per_k[base][-1]:
            names.append(name)
    return names


def _metric_cell(aggregates: Mapping[str, Any], name: str) -> str:
    entry = aggregates.get("metrics", {}).get(name)
    if entry is None:
        return "n/a"
    text = format_value(entry.get("mean"))
    if entry.get("failed"):
        text += f" ({entry['failed']} failed)"
    return text


def _tokens(aggregates: Mapping[str, Any]) -> str:
    total = aggregates.get("tokens", {}).get("total_tokens")
    return "–" if total is None else f"{total:.0f}"


def summary_header(names: list[str]) -> list[str]:
    """The summary table's column titles for metric columns ``names``."""
    return ["pipeline", "kind", *names, *SUMMARY_TAIL]


def summary_rows(data: Mapping[str, Any], names: list[str]) -> list[list[str]]:
    """One row of text cells per pipeline: metric means (with failures), errors, latency, tokens."""
    rows = []
    for pipeline in data.get("pipelines", []):
        agg = pipeline.get("aggregates", {})
        latency = agg.get("latency_s", {})
        rows.append(
            [
                pipeline["name"],
                pipeline.get("kind", ""),
                *(_metric_cell(agg, n) for n in names),
                str(agg.get("errors", 0)),
                format_ms(latency.get("p50")),
                format_ms(latency.get("p95")),
                _tokens(agg),
            ]
        )
    return rows


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
