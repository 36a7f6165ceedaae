"""The SQL database as an agent tool (``{"type": "sql", "database": URL}``, entry point ``tool.sql``).

Two modes, chosen in the tool's config:

* ``mode: question`` (default): the model calls ``sql(question="...")`` in
  natural language; the :class:`~ragkit_sql.engine.SQLQueryEngine` writes,
  checks and runs the SQL (one repair) and the observation is the SQL, the
  columns and the rows. Best for small models.
* ``mode: query``: the model calls ``sql(query="SELECT ...")`` with SQL it
  wrote itself; the tool's description lists the tables and columns. The
  query goes through the same validator and read-only executor, and a
  refusal or a database error comes back as a :class:`ToolError` the model
  may fix.

Either way every returned row is cited (``source`` ``sql:<database>``,
``row`` its index, ``quote`` the row).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from ragkit.agents.tools import Tool, ToolError, ToolOutput
from ragkit.errors import ConfigError
from ragkit_sql.engine import SQLQueryEngine, render_rows
from ragkit_sql.executor import SQLExecutionError
from ragkit_sql.validator import SQLValidationError

__all__ = ["SQLTool"]

_MAX_CHARS = 4000
_OBSERVED_ROWS = 20


def _arguments(mode: str) -> type[BaseModel]:
    if mode == "query":
        field = ("query", "One read-only SQL SELECT statement over the tables listed in the description.")
    else:
        field = ("question", "The question about the database's data, as a full sentence.")
    model = pydantic.create_model(  # type: ignore[call-overload]
        "SQLArguments",
        __config__=ConfigDict(extra="forbid"),
        **{field[0]: (str, pydantic.Field(min_length=1, max_length=_MAX_CHARS, description=field[1]))},
    )
    return model  # type: ignore[no-any-return]


class SQLTool(Tool):
    """Query a SQL database read-only: in natural language (``mode: question``) or with SQL (``mode: query``).

    ``database`` is a SQLAlchemy URL; ``generator`` (question mode) a
    generator or its config (default: the local one of ``basic.yaml``);
    ``tables``, ``columns``, ``deny_tables``, ``deny_columns``, ``max_rows``
    and ``timeout_s`` are the engine's allowlist and limits.
    """

    default_name = "sql"

    def __init__(
        self,
        database: str,
        mode: str = "question",
        generator: Any = None,
        tables: Sequence[str] | None = None,
        columns: Mapping[str, Sequence[str]] | None = None,
        deny_tables: Sequence[str] = (),
        deny_columns: Sequence[str] = (),
        max_rows: int = 50,
        sql_timeout_s: float = 10.0,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout_s: float | None = 120.0,
        max_retries: int = 2,
    ) -> None:
        if mode not in ("question", "query"):
            raise ConfigError(f"tool {name or self.default_name!r}: mode must be 'question' or 'query', got {mode!r}")
        self.engine = SQLQueryEngine(
            database,
            generator,
            tables=tables,
            columns=columns,
            deny_tables=deny_tables,
            deny_columns=deny_columns,
            max_rows=max_rows,
            timeout_s=sql_timeout_s,
            answer=False,
        )
        self.mode = mode
        self._configured_description = description
        super().__init__(
            name=name,
            description=description,
            requires_approval=requires_approval,
            timeout_s=timeout_s,
            max_retries=max_retries,
        )
        self._model = _arguments(mode)

    def describe(self) -> str:
        """The description the model reads (in query mode: the dialect, tables and columns)."""
        database = self.engine.name
        if self.mode == "question":
            return (
                f"Answer a question from the SQL database {database!r} (read-only): ask in natural language; "
                "returns the SQL that ran and the rows."
            )
        tables = "; ".join(f"{t.name}({', '.join(t.column_names)})" for t in self.engine.schema.tables.values())
        return (
            f"Run one read-only {self.engine.executor.dialect} SELECT on the database {database!r} and return "
            f"the rows (at most {self.engine.max_rows}). Tables: {tables}"
        )

    @property  # type: ignore[override]
    def description(self) -> str:
        """The configured description, or :meth:`describe` (which lists the tables in query mode)."""
        return self._configured_description or self.describe()

    @description.setter
    def description(self, value: str) -> None:
        """Set by the base class to its default; the configured one (or :meth:`describe`) is kept."""

    def run(self, **arguments: Any) -> ToolOutput:
        """Run the question or the query; every returned row is cited."""
        if self.mode == "query":
            return self._query(str(arguments["query"]))
        return self._question(str(arguments["question"]))

    def _query(self, sql: str) -> ToolOutput:
        try:
            checked = self.engine.check(sql)
            result = self.engine.executor.run(checked)
        except (SQLValidationError, SQLExecutionError) as exc:
            raise ToolError(str(exc), tool=self.name) from None
        payload = {
            "sql": checked.sql,
            "columns": result.columns,
            "rows": result.rows[:_OBSERVED_ROWS],
            "row_count": len(result.rows),
            "truncated": result.truncated,
        }
        return ToolOutput(
            content=_observation(payload, result.columns, result.rows),
            citations=self.engine.citations(checked.sql, result),
            data=payload,
        )

    def _question(self, question: str) -> ToolOutput:
        answer = self.engine.ask(question)
        if answer.error is not None:
            raise ToolError(answer.error, tool=self.name)
        payload = {
            "sql": answer.sql,
            "columns": answer.columns,
            "rows": answer.rows[:_OBSERVED_ROWS],
            "row_count": len(answer.rows),
            "truncated": answer.truncated,
        }
        return ToolOutput(
            content=_observation(payload, answer.columns, answer.rows),
            citations=answer.citations,
            data=answer.to_dict(),
        )


def _observation(payload: dict[str, Any], columns: list[str], rows: list[list[Any]]) -> str:
    text = json.dumps(payload, ensure_ascii=False, default=str)
    if len(text) <= _MAX_CHARS:
        return text
    head = {k: v for k, v in payload.items() if k != "rows"}
    return json.dumps(head, ensure_ascii=False) + "\n" + render_rows(columns, rows, limit=10)[:_MAX_CHARS]
