"""The SQLite executor: read-only by construction, even when the validator is bypassed."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import pytest
from ragkit_sql.executor import SQLExecutionError, SQLExecutor, SQLTimeoutError, database_name, json_safe
from sql_testdb import sha256

from ragkit.errors import ConfigError, NotFoundError


@pytest.fixture(scope="module")
def executor(shop_db: Path) -> SQLExecutor:
    return SQLExecutor(f"sqlite:///{shop_db}", max_rows=3, timeout_s=1.0)


def test_rows_and_columns_come_back_json_safe(executor: SQLExecutor) -> None:
    result = executor.run("SELECT id, name, joined FROM customers ORDER BY id")
    assert result.columns == ["id", "name", "joined"]
    assert result.rows[0] == [1, "Ada Lovelace", "2021-03-04"]
    assert json.loads(json.dumps(result.to_dict()))["rows"] == result.rows


def test_rows_are_capped_and_marked_truncated(executor: SQLExecutor) -> None:
    result = executor.run("SELECT id FROM customers ORDER BY id")
    assert result.rows == [[1], [2], [3]]
    assert result.truncated
    assert not executor.run("SELECT id FROM customers WHERE id = 1").truncated


@pytest.mark.parametrize(
    "write",
    [
        "DELETE FROM orders",
        "UPDATE products SET price = 0",
        "INSERT INTO customers (id, name) VALUES (99, 'x')",
        "DROP TABLE order_items",
        "CREATE TABLE evil (a)",
        "PRAGMA query_only = OFF",
        "PRAGMA journal_mode = DELETE",
        "VACUUM",
    ],
)
def test_writes_fail_on_the_read_only_connection(executor: SQLExecutor, shop_db: Path, write: str) -> None:
    before = sha256(shop_db)
    with pytest.raises(SQLExecutionError):
        executor.run(write)
    assert sha256(shop_db) == before


def test_attach_cannot_create_or_open_another_file(executor: SQLExecutor, tmp_path: Path) -> None:
    target = tmp_path / "evil.sqlite"
    with pytest.raises(SQLExecutionError):
        executor.run(f"ATTACH DATABASE '{target}' AS evil")
    assert not target.exists()


def test_stacked_statements_do_not_run(executor: SQLExecutor, shop_db: Path) -> None:
    before = sha256(shop_db)
    with pytest.raises(SQLExecutionError, match="one statement"):
        executor.run("SELECT 1; DELETE FROM orders")
    assert sha256(shop_db) == before


def test_denied_functions_are_refused_by_the_connection_too(executor: SQLExecutor) -> None:
    with pytest.raises(SQLExecutionError, match="not authorized"):
        executor.run("SELECT length(randomblob(10))")
    assert executor.run("SELECT sqlite_version()").rows


def test_a_runaway_query_is_cut_at_the_time_limit(executor: SQLExecutor) -> None:
    endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"
    with pytest.raises(SQLTimeoutError, match="longer than 1 s"):
        executor.run(endless)
    assert executor.run("SELECT count(*) FROM orders").rows == [[4]]


def test_missing_file_and_memory_database_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        SQLExecutor(f"sqlite:///{tmp_path / 'nope.sqlite'}")
    assert not (tmp_path / "nope.sqlite").exists()
    with pytest.raises(ConfigError, match="in-memory"):
        SQLExecutor("sqlite://")
    with pytest.raises(ConfigError, match="not a SQLAlchemy URL"):
        SQLExecutor("not a url")


def test_database_names_for_citations() -> None:
    assert database_name("sqlite:////data/chinook.sqlite") == "chinook"
    assert database_name("postgresql://u@h:5432/sales") == "sales"


def test_json_safe_values() -> None:
    assert json_safe(decimal.Decimal("2.50")) == 2.5
    assert json_safe(decimal.Decimal("3")) == 3
    assert json_safe(dt.date(2024, 1, 2)) == "2024-01-02"
    assert json_safe(b"\x00\x01") == "AAE="
    assert json_safe(float("nan")) == "nan"
