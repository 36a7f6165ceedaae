"""``ragkit search --pipeline`` with its trace, and ``ragkit ask --conversation`` (real model, real collection)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.conversation import ConversationStore


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_search_with_the_hybrid_recipe_prints_its_trace(sample_store):
    result = run("search", "Where was Super Bowl 50 played?", "-c", "sample", "--store-dir", str(sample_store))
    plain = run(
        "search",
        "Where was Super Bowl 50 played?",
        "-c",
        "sample",
        "--store-dir",
        str(sample_store),
        "-p",
        "hybrid",
        "--json",
    )
    assert result.exit_code == 0 and plain.exit_code == 0, plain.output
    data = json.loads(plain.stdout)
    assert [entry["stage"] for entry in data["trace"]] == ["dense", "lexical", "dbsf"]
    assert data["hits"][0]["origin"] == "fused" and "super-bowl-50" in data["hits"][0]["source"]
    traced = run(
        "search",
        "Where was Super Bowl 50 played?",
        "-c",
        "sample",
        "--store-dir",
        str(sample_store),
        "-p",
        "hybrid",
        "--trace",
    )
    assert "dbsf (fuse)" in traced.stderr and "dense: 20 hits" in traced.stderr


def test_search_lines_from_a_file_with_a_pipeline(sample_store, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("Where was Super Bowl 50 played?\nWho won Super Bowl 50?\n", encoding="utf-8")
    result = run(
        "search", "-c", "sample", "--store-dir", str(sample_store), "-p", "hybrid", "--queries-file", str(queries)
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["Where was Super Bowl 50 played?", "Who won Super Bowl 50?"]
    assert all(line["trace"][-1]["stage"] == "dbsf" for line in lines)


def test_unknown_pipeline_and_mode_are_one_line_errors(sample_store):
    unknown = run("search", "x", "-c", "sample", "--store-dir", str(sample_store), "-p", "hybridd")
    assert unknown.exit_code != 0 and "no recipe named 'hybridd'" in unknown.stderr
    fuzzy = run("search", "x", "-c", "sample", "--store-dir", str(sample_store), "-p", "hybrid", "--mode", "fuzzy")
    assert fuzzy.exit_code != 0 and "search mode must be one of dense, lexical" in fuzzy.stderr


def test_ask_continues_a_stored_conversation(sample_store):
    args = ["-c", "sample", "--store-dir", str(sample_store), "--max-tokens", "12"]
    first = run("ask", "Where was Super Bowl 50 played?", *args, "--conversation", "new")
    assert first.exit_code == 0, first.output
    conversation_id = first.stderr.strip().splitlines()[-1].removeprefix("conversation: ")
    second = run("ask", "Who won it?", *args, "--conversation", conversation_id, "--json")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["conversation_id"] == conversation_id
    turns = ConversationStore(sample_store / "conversations.sqlite").get(conversation_id, None).turns
    assert [t.question for t in turns] == ["Where was Super Bowl 50 played?", "Who won it?"]
    missing = run("ask", "Who won it?", *args, "--conversation", "c_AAAAAAAAAAAAAAAAAAAAAA")
    assert missing.exit_code != 0 and "does not exist" in missing.stderr
