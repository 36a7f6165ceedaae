"""ragkit text-to-SQL: questions in natural language over any SQLAlchemy database, answered safely.

* :class:`SQLValidator` (``validator``): one read-only statement over allowlisted tables and columns, a LIMIT.
* :func:`introspect` / :class:`DatabaseSchema` (``schema``): tables, types, keys and sample rows for the prompt.
* :class:`SQLExecutor` (``executor``): runs checked SQL on a read-only connection with a row cap and a timeout.
* :class:`SQLQueryEngine` (``engine``): question → SQL → rows → answer with cited rows (:class:`SQLAnswer`).
* :class:`SQLTool` (``tool``): the engine as an agent tool (``{"type": "sql"}``).
"""

from ragkit_sql.validator import SQLValidationError, SQLValidator, ValidatedSQL

__all__ = ["SQLValidationError", "SQLValidator", "ValidatedSQL"]
