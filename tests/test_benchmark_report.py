"""The benchmark page renders from saved results exactly as it did before the report was split into modules.

``tests/data/benchmarks/`` holds a ``results.json`` from a ``run_all.py --quick`` run (every step, the
query-pipelines section merged in) and a variant with failed steps, a failing store filter and no evaluation
step; the ``*.md``, ``*.txt`` and ``*.targets.json`` beside them are what ``report.py`` rendered from them
when it was one module. Any change to a number's format, a section's layout or a target's verdict shows
here as a diff, without running a benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "evaluation" / "benchmarks"
DATA = ROOT / "tests" / "data" / "benchmarks"
NOTES = "Hand-written notes, kept when the page is rewritten."

sys.path.insert(0, str(BENCHMARKS))
import report  # noqa: E402

CASES = ["results", "results-partial"]


def _load(case: str) -> dict:
    return json.loads((DATA / f"{case}.json").read_text(encoding="utf-8"))


def _expected(case: str, suffix: str) -> str:
    return (DATA / f"{case}{suffix}").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_targets_are_scored_as_before(case):
    results = _load(case)
    assert report.targets(results) == json.loads(_expected(case, ".targets.json"))


@pytest.mark.parametrize("case", CASES)
def test_page_and_summary_render_as_before(case):
    results = _load(case)
    results["targets"] = report.targets(results)
    assert report.markdown(results, NOTES) == _expected(case, ".md")
    assert report.text_tables(results) == _expected(case, ".txt")


def test_the_page_has_every_section_in_order():
    page = _expected("results", ".md")
    assert [line for line in page.splitlines() if line.startswith("## ")] == [
        "## Running it",
        "## Notes",
        "## The run",
        "## Targets",
        "## Ingestion",
        "## Retrieval",
        "## Vector stores at scale",
        "## REST service",
        "## Evaluation",
        "## Query pipelines",
        "## Commands",
    ]


def test_rerendering_a_page_keeps_its_notes(tmp_path):
    page = tmp_path / "benchmarks.md"
    results = _load("results")
    results["targets"] = report.targets(results)
    report.write_markdown(results, page)
    assert report.existing_notes(page) == report.DEFAULT_NOTES
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace(report.DEFAULT_NOTES, NOTES), encoding="utf-8")
    report.write_markdown(results, page)
    assert page.read_text(encoding="utf-8") == _expected("results", ".md")


def test_the_command_line_rerenders_saved_results(tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"{report.NOTES_START}\n{NOTES}\n{report.NOTES_END}\n", encoding="utf-8")
    command = [sys.executable, str(BENCHMARKS / "report.py"), str(DATA / "results.json"), "--docs", str(page)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == _expected("results", ".txt") + "\n"
    assert page.read_text(encoding="utf-8") == _expected("results", ".md")
