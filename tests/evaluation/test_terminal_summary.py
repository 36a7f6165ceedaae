"""``ragkit eval run`` on a terminal: the summary fits the window instead of raw 14-column Markdown."""

from __future__ import annotations

import copy

from ragkit.evaluation.report import summary_table
from ragkit.evaluation.report_data import headline_metrics, summary_header, summary_rows
from ragkit.evaluation.terminal import summary_for_terminal

from .test_reports import make_result


def _wide(data: dict) -> dict:
    """The report with a dozen more metrics, as the shipped suites have (14 columns and more)."""
    wide = copy.deepcopy(data)
    for pipeline in wide["pipelines"]:
        metrics = pipeline["aggregates"]["metrics"]
        for name in ("answer_hit_normalised@1", "recall@5", "ndcg@5", "precision@5", "exact_match", "answer_contains"):
            metrics[name] = {"mean": 0.5, "scored": 3, "failed": 0}
    wide["metrics"] = list(dict.fromkeys([*wide["metrics"], *metrics]))
    return wide


def test_the_terminal_summary_fits_the_window_and_keeps_every_cell(tmp_path) -> None:
    data = _wide(make_result(tmp_path).to_dict())
    markdown = summary_table(data)
    assert max(len(line) for line in markdown.splitlines()) > 100, "Markdown runs past a 100-column terminal"
    names = headline_metrics(data)
    rows = summary_rows(data, names)
    for width in (80, 100):
        text = summary_for_terminal(data, width=width)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width, text
        assert "|" not in text, "no Markdown pipes"
        assert all(row[0] in lines[0] for row in rows), "one column per pipeline"
        for position, title in enumerate(summary_header(names)[1:], start=1):
            [line] = [line for line in lines if line.strip().startswith(title + " ")]
            for row in rows:
                assert row[position] in line, (title, row[position], line)  # every cell, on its metric's line
