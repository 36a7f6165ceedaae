"""``ragkit ask`` (real local model, real collection) and ``ragkit serve``'s refusal to expose itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_ask_streams_the_answer_then_lists_cited_sources(sample_store):
    result = run(
        "ask", "Where was Super Bowl 50 played?", "-c", "sample", "--store-dir", str(sample_store), "--max-tokens", "40"
    )
    assert result.exit_code == 0, result.output
    answer, _, sources = result.output.partition("\nSources")
    assert answer.strip(), "the answer text comes first"
    assert "super-bowl-50.pdf" in sources and "page 1" in sources
    assert "[1]" in sources or "[2]" in sources


def test_ask_json_prints_the_whole_answer(sample_store):
    result = run(
        "ask",
        "Where was Super Bowl 50 played?",
        "-c",
        "sample",
        "--store-dir",
        str(sample_store),
        "--max-tokens",
        "24",
        "--json",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["grounded"] and answer["text"]
    assert answer["model"] == "qwen2.5-coder-0.5b-instruct"  # the recipes' packaged model
    assert answer["hits"] and answer["citations"]
    assert {"source", "chunk_id", "start", "end", "page", "inferred"} <= set(answer["citations"][0])
    assert 0 < answer["usage"]["completion_tokens"] <= 24
    assert {"retrieve", "assemble", "generate", "total"} <= set(answer["timings"])


def test_the_default_recipe_answers_the_demo_question_right(sample_store):
    """The README's demo question, on the recipes' packaged model: the right team, cited to the right file.

    SmolLM2-135M answered "The Panthers won Super Bowl 50", and so did Qwen2.5-Coder-0.5B with int8 weights
    quantised per tensor (or a bare "[2]"); per channel it answers like its float32 weights.
    """
    result = run(
        "ask",
        "Which NFL team won Super Bowl 50?",
        "-c",
        "sample",
        "--store-dir",
        str(sample_store),
        "--max-tokens",
        "40",
        "--json",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert "denver broncos" in answer["text"].lower(), answer["text"]
    assert "panthers won" not in answer["text"].lower()
    assert any(c["source"].endswith("super-bowl-50.pdf") for c in answer["citations"])


def test_ask_with_nothing_relevant_says_so_without_a_model(sample_store):
    result = run("ask", "zqxv wvut gluon chromodynamics", "-c", "sample", "--store-dir", str(sample_store), "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert not answer["grounded"] and answer["citations"] == [] and answer["model"] == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ask", "", "-c", "sample"], 2, "question is empty"),
        (["ask", "hi", "-c", "nope"], 3, "collection 'nope' does not exist"),
        (["ask", "hi", "-c", "sample", "--pipeline", "no-such-recipe"], 3, "no recipe named 'no-such-recipe'"),
        (["ask", "hi", "-c", "sample", "--mode", "fuzzy"], 2, "search mode"),
    ],
)
def test_ask_errors_are_one_line_with_an_exit_code(sample_store, args, code, message):
    result = run(*args, "--store-dir", str(sample_store))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_serve_refuses_a_public_interface_without_api_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAGKIT_API_KEYS"}
    result = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "serve", "--host", "0.0.0.0", "--port", "0", "--store-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "API key" in result.stderr and "0.0.0.0" in result.stderr


def test_the_first_answer_reports_model_loading_as_its_own_timing(sample_store):
    from ragkit.collection import Collection
    from ragkit.rag import PipelineConfig, RagPipeline
    from ragkit.registry import build

    config = PipelineConfig.parse({"answer": {"max_tokens": 8}})
    rag = RagPipeline(config, generator=build("generator", {"type": "transformers"}))  # a fresh, unloaded one
    with Collection.open("sample", sample_store) as collection:  # a fresh embedder too
        assert len(rag.unloaded_models(collection)) == 2
        first = rag.ask("Where was Super Bowl 50 played?", collection)
        assert first.timings["load"] > 0 and {"retrieve", "generate", "total"} <= set(first.timings)
        assert first.timings["total"] >= first.timings["load"] + first.timings["retrieve"]
        assert rag.unloaded_models(collection) == []
        second = rag.ask("Where was Super Bowl 50 played?", collection)
        assert "load" not in second.timings, "loaded once per process"


def test_ask_on_a_terminal_says_it_is_loading_first(sample_store):
    import pty

    primary, secondary = pty.openpty()  # stderr is a terminal: a person is waiting
    process = subprocess.run(
        [sys.executable, "-m", "ragkit.cli", "ask", "Where was Super Bowl 50 played?", "-c", "sample",
         "--store-dir", str(sample_store), "--max-tokens", "8"],
        stdout=subprocess.PIPE, stderr=secondary, timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )  # fmt: skip
    os.close(secondary)
    said = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        said += chunk
    os.close(primary)
    assert process.returncode == 0, said
    text = said.decode("utf-8", "replace")
    assert "loading all-MiniLM-L6-v2" in text and "once per process" in text, text
    assert b"Sources" in process.stdout
