"""Every ```python block in the README and the user guide runs, in order, per file.

Blocks of one page share a namespace, run from the repository root with
``RAGKIT_HOME`` pointing at a fresh folder. Write ```text or ```bash for
anything that must not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _pages_with_code():
    return [p for p in PAGES if BLOCK.search(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")), 1):
        try:
            exec(compile(code, f"{page.name} block {number}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{page.name}, python block {number} failed: {type(exc).__name__}: {exc}")


def test_user_guide_links_every_page():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        if page.name != "index.md":
            assert f"({page.name})" in index, f"docs/index.md does not link {page.name}"


# -- docs/asking.md shows what `ragkit ask` prints (issue 14 item 23: it showed idealised output) -----------------

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
INGEST_LINE = re.compile(
    r"^(?P<name>[\w.-]+): added \d+, updated \d+, unchanged \d+, deleted \d+, failed \d+, skipped \d+ "
    r"\(\d+ chunks written, \d+ embedded, in \d+(\.\d+)?s\)$"
)
LOADING_LINE = re.compile(r"^loading (?P<models>[^…]+)… \(once per process; the answer follows\)$")
SOURCES_LABEL = re.compile(r"^Sources(?: \(inferred by word overlap: the model wrote no markers\))?:$")
SOURCE_LINE = re.compile(
    r"^  \[(?P<number>\d+)\] (?P<source>\S[^\[]*?)(?: › (?P<section>.+?))?(?:, page \d+)?(?:, row \d+)?"
    r" \[chars (?P<start>\d+)-(?P<end>\d+)\]$"
)


def _asking_blocks() -> tuple[str, dict]:
    """The terminal output block and the ``--json`` block of docs/asking.md's command-line section."""
    import json

    page = (ROOT / "docs" / "asking.md").read_text(encoding="utf-8")
    blocks = FENCE.findall(page)
    [terminal] = [body for kind, body in blocks if kind == "text" and "\nSources" in body]
    [answer] = [json.loads(body) for kind, body in blocks if kind == "json" and '"citations"' in body]
    return terminal, answer


def _sources_block(output: str) -> tuple[str, list[re.Match[str]]]:
    """``ragkit ask``'s answer and its parsed source lines; fails where the output is not in the documented shape."""
    answer, _, sources = output.rstrip("\n").rpartition("\n\n")
    label, *lines = sources.split("\n")
    assert answer.strip(), f"no answer text before the sources in {output!r}"
    assert SOURCES_LABEL.match(label), f"not a sources label: {label!r}"
    matches = [SOURCE_LINE.match(line) for line in lines]
    assert lines and all(matches), f"source lines not in the documented shape: {lines!r}"
    return answer, [m for m in matches if m]


def _keys(value: object) -> set[str]:
    assert isinstance(value, dict), value
    return set(value)


def test_asking_page_shows_the_output_ragkit_ask_prints(tmp_path, monkeypatch):
    import io
    import json
    import sys

    from typer.testing import CliRunner

    import ragkit.cli
    from ragkit.cli import app

    terminal, documented = _asking_blocks()
    lines = terminal.rstrip("\n").split("\n")
    # the documented block: the ingest summary, the loading line (a terminal's), the answer, then its sources
    ingest_line, loading_line, rest = lines[0], lines[1], "\n".join(lines[2:])
    assert INGEST_LINE.match(ingest_line), ingest_line
    loading = LOADING_LINE.match(loading_line)
    assert loading, loading_line
    _, documented_sources = _sources_block(rest)

    # the same commands today, through the CLI (the answer capped, so the test is quicker; its shape is the same)
    question = "Where was Super Bowl 50 played?"
    home = tmp_path / "home"
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(ROOT / "evaluation" / "datasets" / "sample-docs"), "--collection",
                                   "docs", "--store-dir", str(home)])  # fmt: skip
    assert ingested.exit_code == 0, ingested.output
    assert INGEST_LINE.match(ingested.output.strip()), ingested.output
    asked = runner.invoke(
        app, ["ask", question, "--collection", "docs", "--store-dir", str(home), "--max-tokens", "48"]
    )
    assert asked.exit_code == 0, asked.output
    _, live_sources = _sources_block(asked.output)
    for line in documented_sources + live_sources:
        assert int(line["end"]) > int(line["start"]), line.group(0)

    # the loading line, as ask writes it on a terminal
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stderr = Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    models = [type("Model", (), {"model_name": name.strip()})() for name in loading["models"].split(",")]
    ragkit.cli._say_loading(models)
    monkeypatch.undo()
    assert stderr.getvalue().strip() == loading_line

    # --json: the same keys as the documented (abridged) Answer, for the answer, a citation, a hit and usage
    printed = runner.invoke(
        app, ["ask", question, "--collection", "docs", "--store-dir", str(home), "--max-tokens", "48", "--json"]
    )
    assert printed.exit_code == 0, printed.output
    live = json.loads(printed.output)
    assert _keys(documented) == _keys(live)
    assert documented["question"] == question
    for field in ("citations", "hits", "queries", "trace"):
        assert documented[field] and live[field], field
        assert _keys(documented[field][0]) == _keys(live[field][0]), field
    assert _keys(documented["usage"]) == _keys(live["usage"])
    # the first answer in a process also times loading the models
    assert _keys(documented["timings"]) - {"load"} == _keys(live["timings"]) - {"load"}
