"""Execution accuracy for text-to-SQL: run SQL read-only and compare result sets.

Two results match when they have the same number of rows and columns and
their rows are equal as multisets (as lists, in order, when the question
asks for an order), where:

- column names are ignored, and so is the order of the columns (the
  predicted columns may be any permutation of the gold ones), but an extra
  or missing column is a mismatch;
- numbers compare within a tolerance (relative 1e-4, or 0.005 absolute:
  a sum rounded to cents still matches), and text that is a number
  (``'2009'`` from ``strftime``) compares as that number;
- text compares exactly after trimming spaces; ``NULL`` only matches ``NULL``.

The questions file is ``questions.yaml`` beside this module.
"""

from __future__ import annotations

import itertools
import math
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions.yaml"
REL_TOL = 1e-4
ABS_TOL = 0.005 + 1e-9
MAX_ROWS = 10_000
"""Rows fetched from a predicted query at most; one that returns more is scored as not matching."""
FENCED = re.compile(r"```(?:sql|sqlite)?\s*\n(.*?)```", re.IGNORECASE | re.DOTALL)
SQL_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Question:
    """One question with its gold SQL."""

    id: str
    question: str
    sql: str
    kind: str = ""
    ordered: bool = False


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """The questions of ``path`` (``questions.yaml``), in file order."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Question(
            id=str(item["id"]),
            question=str(item["question"]),
            sql=" ".join(str(item["sql"]).split()),
            kind=str(item.get("kind", "")),
            ordered=bool(item.get("ordered", False)),
        )
        for item in data["questions"]
    ]


def connect_readonly(database: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite file (``mode=ro``, ``query_only``)."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, check_same_thread=False)
    db.execute("PRAGMA query_only = ON")
    return db


def execute(
    db: sqlite3.Connection, sql: str, timeout_s: float = 10.0, max_rows: int = MAX_ROWS
) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on ``db``; raises ``sqlite3.Error`` (also when it runs past ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    db.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    try:
        cursor = db.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
    finally:
        db.set_progress_handler(None, 0)
    if len(rows) > max_rows:
        raise sqlite3.OperationalError(f"more than {max_rows} rows")
    return [tuple(row) for row in rows]


def _normal(value: Any) -> Any:
    """A cell as compared: numbers (and numeric text) as float, text trimmed, bytes as is."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        return float(text) if NUMBER.match(text) else text
    return value


def _cells_match(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return bool(type(a) is type(b) and a == b)


def _rows_match(gold: tuple[Any, ...], predicted: tuple[Any, ...]) -> bool:
    return all(_cells_match(g, p) for g, p in zip(gold, predicted, strict=True))


def _match_with(gold: list[tuple[Any, ...]], predicted: list[tuple[Any, ...]], ordered: bool) -> bool:
    if ordered:
        return all(_rows_match(g, p) for g, p in zip(gold, predicted, strict=True))
    # multiset match: exact keys first (fast), then a greedy pass for what tolerance must decide
    left = list(predicted)
    for row in gold:
        for index, candidate in enumerate(left):
            if _rows_match(row, candidate):
                left[index] = left[-1]
                left.pop()
                break
        else:
            return False
    return not left


def result_sets_match(gold: Sequence[Sequence[Any]], predicted: Sequence[Sequence[Any]], ordered: bool = False) -> bool:
    """Whether ``predicted`` rows are the ``gold`` rows (see the module's rules)."""
    gold_rows = [tuple(_normal(v) for v in row) for row in gold]
    predicted_rows = [tuple(_normal(v) for v in row) for row in predicted]
    if len(gold_rows) != len(predicted_rows):
        return False
    if not gold_rows:
        return True
    width = len(gold_rows[0])
    if any(len(row) != width for row in gold_rows + predicted_rows):
        return False
    if width > 6:
        return _match_with(gold_rows, predicted_rows, ordered)
    for order in itertools.permutations(range(width)):
        permuted = [tuple(row[i] for i in order) for row in predicted_rows]
        if _match_with(gold_rows, permuted, ordered):
            return True
    return False


def extract_sql(text: str | None) -> str | None:
    """The SQL in a reply that wraps it: the first fenced block, else from the first SELECT/WITH to a ``;``/blank line.

    The same extraction for every system, to tell the SQL a model wrote from
    how its framework passed it on (a code fence, prose before or after).
    """
    if not text:
        return text
    fenced = FENCED.search(text)
    if fenced and fenced.group(1).strip():
        text = fenced.group(1)
    start = SQL_START.search(text)
    if start is None:
        return text.strip()
    sql = text[start.start() :]
    for end in (";", "\n\n"):
        if end in sql:
            sql = sql[: sql.index(end)]
    return sql.strip()


@dataclass
class Score:
    """How one predicted query fared against the gold one."""

    valid: bool
    """The predicted SQL ran without error."""
    correct: bool
    """Its result set matches the gold one."""
    error: str = ""
    rows: int = 0


def score_sql(db: sqlite3.Connection, question: Question, predicted_sql: str | None) -> Score:
    """Run ``predicted_sql`` (``None``/empty: no SQL, invalid) and compare it with the gold SQL's result."""
    if not predicted_sql or not predicted_sql.strip():
        return Score(valid=False, correct=False, error="no SQL")
    gold = execute(db, question.sql)
    try:
        predicted = execute(db, predicted_sql)
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError) as exc:
        return Score(valid=False, correct=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return Score(valid=True, correct=result_sets_match(gold, predicted, question.ordered), rows=len(predicted))
