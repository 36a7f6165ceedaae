"""ragkit text-to-SQL: questions in natural language over any SQLAlchemy database, answered safely.

* :class:`SQLValidator` (``validator``): one read-only statement over allowlisted tables and columns, a LIMIT.
* :func:`introspect` / :class:`DatabaseSchema` (``schema``): tables, types, keys and sample rows for the prompt.
* :class:`SQLExecutor` (``executor``): runs checked SQL on a read-only connection with a row cap and a timeout.
* :class:`SQLQueryEngine` (``engine``): question → SQL → rows → answer with cited rows (:class:`SQLAnswer`).
* :class:`SQLTool` (``tool``): the engine as an agent tool (``{"type": "sql"}``).
"""

from typing import TYPE_CHECKING, Any

from ragkit_sql.engine import SQLAnswer, SQLAttempt, SQLQueryEngine, extract_sql
from ragkit_sql.executor import QueryResult, SQLExecutionError, SQLExecutor, SQLTimeoutError
from ragkit_sql.schema import DatabaseSchema, TableInfo, TableSelector, introspect
from ragkit_sql.validator import SQLValidationError, SQLValidator, ValidatedSQL

if TYPE_CHECKING:
    from ragkit_sql.tool import SQLTool

__all__ = [
    "DatabaseSchema",
    "QueryResult",
    "SQLAnswer",
    "SQLAttempt",
    "SQLExecutionError",
    "SQLExecutor",
    "SQLQueryEngine",
    "SQLTimeoutError",
    "SQLTool",
    "SQLValidationError",
    "SQLValidator",
    "TableInfo",
    "TableSelector",
    "ValidatedSQL",
    "extract_sql",
    "introspect",
]


def __getattr__(name: str) -> Any:
    # the tool needs ragkit.agents (pydantic); imported only when asked for
    if name == "SQLTool":
        from ragkit_sql.tool import SQLTool

        return SQLTool
    raise AttributeError(f"module 'ragkit_sql' has no attribute {name!r}")
