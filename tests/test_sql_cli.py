"""``ragkit sql``: the core command builds the ragkit-sql engine through the registry (no connector import)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit import registry
from ragkit.cli import app
from ragkit.errors import MissingDependencyError
from ragkit.sql_cli import build_sql_engine, load_sql_recipe
from ragkit.testing.fake_openai import FakeOpenAIServer

pytest.importorskip("sqlglot", reason="the ragkit-sql connector is not installed")


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL);"
        "INSERT INTO products VALUES (1, 'Notebook', 3.5), (2, 'Fountain pen', 42.0), (3, 'Desk lamp', 25.0);"
        "CREATE TABLE secrets (id INTEGER PRIMARY KEY, token TEXT);"
        "INSERT INTO secrets VALUES (1, 'hunter2');"
    )
    connection.commit()
    connection.close()
    return path


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model="fake-model") as server:
        yield server


def recipe(tmp_path: Path, fake: FakeOpenAIServer, **extra: object) -> Path:
    path = tmp_path / "sql-fake.yaml"
    generator = {"type": "openai", "model": "fake-model", "base_url": fake.v1}
    path.write_text(
        json.dumps({"sql_engine": {"type": "sqlalchemy", "generator": generator, **extra}}), encoding="utf-8"
    )
    return path


def test_sql_answers_with_the_sql_and_rows(shop: Path, tmp_path: Path, fake: FakeOpenAIServer) -> None:
    replies = iter(["```sql\nSELECT name, price FROM products WHERE price > 20 ORDER BY price DESC\n```", "Two."])
    fake.reset(reply=lambda messages: next(replies))
    result = run(
        "sql",
        "Which products cost more than 20?",
        "--database",
        f"sqlite:///{shop}",
        "--config",
        str(recipe(tmp_path, fake)),
    )
    assert result.exit_code == 0, result.output
    text, _, rest = result.output.partition("\nSQL: ")
    assert text.strip() == "Two."
    assert rest.startswith("SELECT name, price FROM products WHERE price > 20 ORDER BY price DESC LIMIT 100")
    assert "Fountain pen | 42.0" in rest and "[2 row(s) from sql:shop]" in rest


def test_sql_json_has_the_whole_result(shop: Path, tmp_path: Path, fake: FakeOpenAIServer) -> None:
    fake.reset(reply="```sql\nSELECT count(*) AS n FROM products\n```")
    result = run(
        "sql", "How many products?", "-d", str(shop), "--config", str(recipe(tmp_path, fake, answer=False)), "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["rows"] == [[3]] and data["columns"] == ["n"]
    assert data["citations"][0]["source"] == "sql:shop" and data["citations"][0]["row"] == 0
    assert [a["error"] for a in data["attempts"]] == [None]
    assert {"schema", "generate", "total"} <= set(data["timings"])


def test_a_refused_query_exits_2_and_changes_nothing(shop: Path, tmp_path: Path, fake: FakeOpenAIServer) -> None:
    before = hashlib.sha256(shop.read_bytes()).hexdigest()
    fake.reset(reply="```sql\nDROP TABLE products\n```")
    result = run("sql", "Drop it", "-d", f"sqlite:///{shop}", "--config", str(recipe(tmp_path, fake)))
    assert result.exit_code == 2
    assert "refused (not_select)" in result.output
    assert hashlib.sha256(shop.read_bytes()).hexdigest() == before


def test_tables_option_is_the_allowlist(shop: Path, tmp_path: Path, fake: FakeOpenAIServer) -> None:
    fake.reset(reply="```sql\nSELECT token FROM secrets\n```")
    result = run(
        "sql", "Tokens?", "-d", str(shop), "--tables", "products", "--config", str(recipe(tmp_path, fake)), "--json"
    )
    assert result.exit_code == 2
    data = json.loads(result.output)
    assert "the table secrets is not allowed (allowed tables: products)" in data["error"]
    assert "CREATE TABLE secrets" not in json.dumps(data["trace"])


def test_database_is_required_and_errors_are_one_line(tmp_path: Path) -> None:
    result = run("sql", "anything")
    assert result.exit_code == 2 and "--database is required" in result.output
    result = run("sql", "anything", "-d", f"sqlite:///{tmp_path / 'missing.sqlite'}")
    assert result.exit_code == 3 and "does not exist" in result.output and "Traceback" not in result.output


def test_the_shipped_recipe_is_an_sql_engine_config(shop: Path) -> None:
    section = load_sql_recipe("sql")
    assert section["type"] == "sqlalchemy"
    assert section["generator"] == {"type": "transformers", "model": "qwen2.5-coder-0.5b-instruct"}  # as every recipe
    engine = build_sql_engine({**section, "database": str(shop)})
    assert engine.to_config()["max_rows"] == section["max_rows"]
    assert engine.run_sql("SELECT name FROM products ORDER BY id").rows[0] == ["Notebook"]


def test_missing_connector_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_entry_points", lambda: {})
    monkeypatch.setattr(registry, "_registry", {k: v for k, v in registry._registry.items() if k[0] != "sql_engine"})
    with pytest.raises(MissingDependencyError, match="pip install ragkit-sql"):
        build_sql_engine({"database": "sqlite:///x.sqlite"})
    result = run("sql", "q", "-d", "sqlite:///x.sqlite")
    assert result.exit_code == 6 and "pip install ragkit-sql" in result.output
