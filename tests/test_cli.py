"""The ragkit command line: ingest, search (single and batch), collections, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "evaluation" / "datasets" / "sample-docs"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store folder with the sample documents ingested as 'demo' through the CLI."""
    home = tmp_path_factory.mktemp("cli-home")
    corpus = tmp_path_factory.mktemp("cli-corpus") / "docs"
    shutil.copytree(SAMPLE, corpus)
    result = CliRunner().invoke(app, ["ingest", str(corpus), "-c", "demo", "--store-dir", str(home)])
    assert result.exit_code == 0, result.output
    assert "demo: added 5, updated 0, unchanged 0, deleted 0, failed 0" in result.output
    return home, corpus


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_reingest_reports_unchanged(store):
    home, corpus = store
    result = run("ingest", str(corpus), "-c", "demo", "--store-dir", str(home), "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["unchanged"] == 5 and report["chunks_written"] == 0


def test_search_prints_ranked_sources(store):
    home, _ = store
    result = run("search", "Where was Super Bowl 50 played?", "-c", "demo", "-k", "2", "--store-dir", str(home))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("[1] ")
    assert "super-bowl-50.pdf p.1" in result.output


def test_search_json_with_filter_and_lexical_mode(store):
    home, _ = store
    result = run(
        "search",
        "plague",
        "-c",
        "demo",
        "--mode",
        "lexical",
        "--filters",
        'file_type == "txt"',
        "--json",
        "--store-dir",
        str(home),
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)["hits"]
    assert hits and all(h["metadata"]["file_type"] == "txt" and h["origin"] == "lexical" for h in hits)
    assert {"rank", "score", "chunk_id", "source", "start", "end", "page", "row", "text"} <= set(hits[0])


def test_batch_search_from_stdin_writes_json_lines(store):
    home, _ = store
    result = run(
        "search",
        "-c",
        "demo",
        "--queries-file",
        "-",
        "-k",
        "1",
        "--store-dir",
        str(home),
        input="Black Death\n\npacket switching\n",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["query"] for line in lines] == ["Black Death", "packet switching"]
    assert lines[1]["hits"][0]["source"].endswith("packet-switching.md")


def test_collections_list_show_delete(store, tmp_path):
    home, corpus = store
    # a table since issue 14 item 20 (it showed names only): name, chunks, sources, embedder, store
    header, row = run("collections", "list", "--store-dir", str(home)).output.splitlines()
    assert header.split() == ["NAME", "CHUNKS", "SOURCES", "EMBEDDER", "STORE"]
    name, chunks, sources, embedder, store_type = row.split()
    assert (name, sources, store_type) == ("demo", "5", "faiss") and int(chunks) > 5
    assert embedder.startswith("sentence-transformers:all-MiniLM-L6-v2")
    assert json.loads(run("collections", "list", "--json", "--store-dir", str(home)).output) == ["demo"]
    shown = json.loads(run("collections", "show", "demo", "--json", "--store-dir", str(home)).output)
    assert shown["embedding"]["dimension"] == 384 and shown["stats"]["sources"] == 5
    other = tmp_path / "other"
    assert run("ingest", str(corpus / "black-death.txt"), "-c", "tmp", "--store-dir", str(other)).exit_code == 0
    assert run("collections", "delete", "tmp", "--yes", "--store-dir", str(other)).exit_code == 0
    assert run("collections", "list", "--store-dir", str(other)).output.strip() == "no collections"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "x", "-c", "nope"], 3, "error: collection 'nope' does not exist"),
        (["search", "x", "-c", "demo", "--filter", "pagee > 1"], 2, "error: filter field 'pagee' does not exist"),
        (["search", "x", "-c", "demo", "--filter", "page >"], 2, "error: cannot parse filter"),
        (["search", "x", "-c", "demo", "--filter", "not " * 1000 + "page"], 2, "error: filter nests more than 32"),
        (["search", "x", "-c", "demo", "--filter", "page == " + "-" * 3000 + "1"], 2, "error: filter nests more"),
        (["search", "x", "-c", "demo", "--filter", 'page > "2"'], 2, "without quotes: page > 2"),
        (["search", "x", "-c", "demo", "--mode", "lexical", "--filter", 'page > "2"'], 2, "in the keyword index"),
        (["search", "x", "-c", "demo", "--mode", "fuzzy"], 2, "error: --mode must be 'dense' or 'lexical'"),
        (["search", "-c", "demo"], 2, "error: give either a QUERY or --queries-file"),
        (["collections", "show", "nope"], 3, "error: collection 'nope' does not exist"),
        (["ingest", ".", "-c", "demo\n"], 2, "error: collection name 'demo\\n' is not valid"),
        (["search", "x", "-c", "demo\n"], 2, "error: collection name 'demo\\n' is not valid"),
        (["ingest", "/nonexistent/path", "-c", "demo"], 2, "/nonexistent/path"),
        (["ingest", ".", "-c", "demo", "--config", "nope"], 3, "error: no recipe named 'nope'"),
    ],
)
def test_errors_are_one_line_with_an_exit_code(store, args, code, message):
    home, _ = store
    result = run(*args, "--store-dir", str(home))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_is_fast_because_nothing_heavy_is_imported():
    probe = (
        "import sys\n"
        "from ragkit.cli import app\n"
        "from typer.testing import CliRunner\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(app, ['search', '--help']).exit_code == 0\n"
        "heavy = [m for m in ('numpy', 'faiss', 'torch', 'sentence_transformers', 'bm25s') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_installed_script_runs():
    script = Path(sys.executable).parent / "ragkit"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "ingest" in done.stdout and "search" in done.stdout


def test_version_and_short_help_flags():
    from ragkit import __version__

    for flag in ("--version", "-V"):
        result = run(flag)
        assert result.exit_code == 0 and result.output.strip() == f"ragkit {__version__}"
    for args in (["-h"], ["ingest", "-h"], ["eval", "-h"], ["collections", "list", "-h"], ["rerank", "train", "-h"]):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage: ragkit" in result.output
    assert "{PATH}..." in run("ingest", "-h").output, "the usage names what the arguments are"


def _ragkit(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``ragkit`` script, its output piped (not a terminal), as a script or CI log runs it."""
    import os

    script = Path(sys.executable).parent / "ragkit"
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TERMINAL_WIDTH")}
    environ.update(env or {})
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=environ, cwd=cwd, stdin=subprocess.DEVNULL
    )


COMMANDS = [
    ["ingest"],
    ["search"],
    ["ask"],
    ["serve"],
    ["serve-model"],
    ["collections", "list"],
    ["collections", "show"],
    ["collections", "delete"],
    ["eval", "run"],
    ["eval", "compare"],
    ["eval", "testset"],
    ["eval", "optimise"],
    ["rerank", "train"],
]


def test_flags_render_without_a_value_type_in_help():
    # issue 14 item 20: "--sync <bool>", "--json <bool>", "--help -h <bool>" read as options taking a value
    for command in COMMANDS:
        result = run(*command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "<bool>" not in result.output, command
    help_text = _ragkit("ingest", "--help").stdout
    # the flag is followed by its description, no value type between them (how far the description runs before
    # it wraps depends on the widest option of the command)
    assert [line.split()[1:3] for line in help_text.splitlines() if "--sync" in line] == [["--sync", "Delete"]]
    pair = [line for line in run("eval", "run", "--help").output.splitlines() if "--answer-cache" in line]
    assert pair and "--no-answer-cache" in pair[0] and "<bool>" not in pair[0]


def test_help_uses_the_terminal_width_or_100_columns_without_one():
    # issue 14 item 20: help was cut at 80 columns (rich's width when it finds no terminal)
    piped = _ragkit("search", "--help").stdout
    assert max(len(line) for line in piped.splitlines()) == 100
    wide = _ragkit("search", "--help", env={"COLUMNS": "160"}).stdout
    assert max(len(line) for line in wide.splitlines()) == 160
    assert len(wide.splitlines()) < len(piped.splitlines())  # fewer wrapped lines in a wider window


def test_a_value_after_a_flag_is_refused_not_taken_as_a_path(tmp_path):
    # issue 14 item 20: "ragkit ingest notes --sync true" ingested a path named 'true'
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("# A\n\nSome text.\n")
    home = tmp_path / "home"
    done = _ragkit("ingest", "notes", "-c", "notes", "--store-dir", str(home), "--sync", "true", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "'--sync': a flag takes no value, got 'true' after it: write --sync alone" in done.stderr
    assert "does not exist" not in done.stderr and not home.exists()  # refused before any work
    for args in (
        ["search", "-c", "notes", "--json", "yes"],
        ["collections", "delete", "notes", "-y", "no"],
        ["eval", "suite.yaml", "--json", "TRUE"],
        ["ask", "-c", "notes", "--trace", "false"],
    ):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "a flag takes no value" in result.output, args
    # a real argument of that name still works after the flag's own arguments, or after --
    (tmp_path / "true").mkdir()
    (tmp_path / "true" / "b.md").write_text("# B\n\nMore text.\n")
    done = _ragkit("ingest", "notes", "-c", "notes", "--store-dir", str(home), "--sync", "--", "true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "added 2" in done.stdout
