"""sql_bench's systems through an OpenAI-compatible server, without a local model: each framework's own OpenAI
client (ragkit's connector, LangChain's ``ChatOpenAI``, LlamaIndex's ``OpenAILike``) asks the FAKE OpenAI-compatible
server (``ragkit.testing.fake_openai``), which answers one scripted query, over a small real SQLite file."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ragkit import registry
from ragkit.testing.fake_openai import FakeOpenAIServer
from tests.evaluation.test_sql_bench_script import sql_bench

import sql_bench_openai  # isort: skip  (on sys.path once sql_bench is loaded)
from _llm_adapters import CallCounter  # isort: skip

SQL = "SELECT COUNT(*) FROM Artist"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "music.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE Artist (id INTEGER PRIMARY KEY, name NVARCHAR(120))")
        db.executemany("INSERT INTO Artist (name) VALUES (?)", [("AC/DC",), ("Accept",)])
    return path


class _Loaded:
    """What the bench knows of its loaded model when the server is someone else's: a name and a window."""

    model_name = "not-this-one"
    context_window = 4096


def test_the_openai_systems_are_known_and_not_run_by_default() -> None:
    args = sql_bench.parse_args(["--systems", ",".join(sql_bench_openai.OPENAI_SYSTEMS), "--openai-base-url", "u"])
    assert args.openai_base_url == "u"
    assert "ragkit-openai" not in sql_bench.parse_args([]).systems


@pytest.mark.parametrize("system", sql_bench_openai.OPENAI_SYSTEMS)
def test_each_system_asks_the_given_server_with_its_own_client(
    system: str, database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(model="served-model", reply=SQL) as fake:
        argv = ["sql_bench.py", "--openai-base-url", fake.v1, "--openai-model", "served-model"]
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.setattr(sql_bench_openai, "_endpoint", None)
        answer = sql_bench.BUILDERS[system](_Loaded(), database, 64, CallCounter())("How many artists are there?")
        assert answer["failed"] is False and answer["sql"].startswith(SQL), answer  # ragkit adds its LIMIT
        body: dict[str, Any] = fake.state.requests[-1]["body"]
    assert body["model"] == "served-model" and body["temperature"] == 0
    assert (body.get("max_tokens") or body.get("max_completion_tokens")) == 64
    assert "Artist" in str(body["messages"]), "the schema reached the model"


def test_the_bench_serves_its_own_model_and_counts_its_calls(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(model="upstream", reply=SQL) as fake:
        # the "loaded model" is a ragkit generator (here one in front of the fake); the bench serves it itself
        loaded = registry.build(
            "generator", {"type": "openai", "model": "upstream", "base_url": fake.v1, "api_key": "x"}
        )
        monkeypatch.setattr(sys, "argv", ["sql_bench.py"])
        monkeypatch.setattr(sql_bench_openai, "_endpoint", None)
        counter = CallCounter()
        try:
            answer = sql_bench.BUILDERS["langchain-openai"](loaded, database, 64, counter)(
                "How many artists are there?"
            )
        finally:
            sql_bench_openai.close_endpoint()
            loaded.close()
    assert answer["sql"].strip() == SQL
    assert counter.calls == 1 and counter.completion_tokens > 0, "the bench's server counted the call"
    assert not [t for t in threading.enumerate() if t.name == "sql-bench-model-server"], "the server was stopped"
