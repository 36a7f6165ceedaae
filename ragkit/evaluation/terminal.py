"""The evaluation summary for a person at a terminal: a table that fits the window, not raw Markdown.

``ragkit eval run`` prints Markdown when its output goes to a file or a pipe
(it pastes into notes and pull requests) and this rendering on a terminal:
the same cells as the report's summary table, turned on its side — one row
per metric, one column per pipeline — because suites have many metrics and
few pipelines, so it stays readable in an 80-column window.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ragkit.evaluation.report_data import headline_metrics, summary_header, summary_rows


def summary_for_terminal(data: Mapping[str, Any], width: int) -> str:
    """The summary table of ``data`` (a report dict) drawn with box lines to fit ``width`` columns."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    names = headline_metrics(data)
    header = summary_header(names)
    rows = summary_rows(data, names)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("", justify="left", overflow="fold")
    for row in rows:
        table.add_column(row[0], justify="right", overflow="fold")
    for position, title in enumerate(header[1:], start=1):
        table.add_row(title, *(row[position] for row in rows))
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, color_system=None, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines()).strip("\n")
