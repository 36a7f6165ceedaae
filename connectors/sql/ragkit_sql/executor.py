"""Run checked SQL on a read-only connection, with a row cap and a time limit.

* SQLite is opened read-only by URI (``sqlite+pysqlite:///file:PATH?mode=ro&uri=true``),
  with ``PRAGMA query_only`` on and no database ``ATTACH``-able; while a query
  runs, an authorizer lets through only reads and functions outside the
  validator's denied list, and a progress handler stops a statement that runs
  past ``timeout_s``.
* PostgreSQL connects with ``default_transaction_read_only=on`` and every
  query runs in a transaction opened with ``SET TRANSACTION READ ONLY`` and
  ``SET LOCAL statement_timeout``; the transaction is rolled back afterwards.
  The query runs as a prepared statement, so a second statement (``COMMIT;
  BEGIN READ WRITE; ...``) cannot ride along. A ``postgresql://`` URL
  without a driver uses psycopg 3.
* Other databases run in a transaction that is always rolled back (their
  read-only guarantee is the validator's alone).

Results are columns and rows of JSON-safe values (:func:`json_safe`). This is
the one module that imports SQLAlchemy: :mod:`ragkit_sql.schema` reads the
schema through :meth:`SQLExecutor.inspector`, :meth:`SQLExecutor.sample_rows`
and :meth:`SQLExecutor.reading_schema`.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from ragkit.errors import ConfigError, InputError, NotFoundError, UnavailableError
from ragkit_sql.validator import ValidatedSQL, function_allowed

__all__ = ["QueryResult", "SQLExecutionError", "SQLExecutor", "SQLTimeoutError", "database_name", "json_safe"]


class SQLExecutionError(InputError):
    """The database refused or failed the query (a model may repair it: the message is the database's)."""


class SQLTimeoutError(SQLExecutionError):
    """The query ran past the executor's time limit and was cancelled."""


@dataclass
class QueryResult:
    """What a query returned: ``columns``, ``rows`` (JSON-safe), whether rows were cut at the cap."""

    sql: str
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "sql": self.sql,
            "columns": self.columns,
            "rows": self.rows,
            "truncated": self.truncated,
            "seconds": round(self.seconds, 6),
        }


def json_safe(value: Any) -> Any:
    """``value`` as something ``json.dumps`` writes: dates as ISO text, decimals as numbers, bytes as base64."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal):
        number = float(value)
        return int(value) if value == value.to_integral_value() and abs(number) < 2**53 else number
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def database_name(url: str) -> str:
    """A short name for citations: the SQLite file's stem or the database's name (``sql:<name>``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "database"
    if parsed.get_backend_name() == "sqlite":
        path = (parsed.database or "").removeprefix("file:").split("?")[0]
        return Path(path).stem or "memory"
    return parsed.database or parsed.host or parsed.get_backend_name()


def _readonly_sqlite_url(url: sa.URL) -> sa.URL:
    database = url.database or ""
    if not database or database == ":memory:" or "mode=memory" in database:
        raise ConfigError("an in-memory SQLite database has no tables to ask about: give a database file")
    path = database.removeprefix("file:").split("?")[0]
    try:
        found = Path(path).is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long
        found = False
    if not found:
        raise NotFoundError(f"SQLite database {path} does not exist")
    absolute = str(Path(path).resolve())
    return make_url(f"sqlite+pysqlite:///file:{quote(absolute)}?mode=ro&uri=true")


class SQLExecutor:
    """Runs SQL read-only on the database at ``url`` (any SQLAlchemy URL, or the path of a SQLite file).

    ``max_rows`` caps the rows fetched (the rest are left unread and
    ``truncated`` is set); ``timeout_s`` bounds each statement.
    """

    def __init__(self, url: str, *, max_rows: int = 100, timeout_s: float = 10.0) -> None:
        if max_rows < 1:
            raise ConfigError(f"max_rows must be at least 1, got {max_rows}")
        if timeout_s <= 0:
            raise ConfigError(f"timeout_s must be positive, got {timeout_s}")
        try:
            if "://" not in url and Path(url).expanduser().is_file():  # a SQLite file given by its path
                url = f"sqlite:///{Path(url).expanduser().resolve()}"
            parsed = make_url(url)
        except (ArgumentError, ValueError, OSError) as exc:
            raise ConfigError(f"database URL {url!r} is not a SQLAlchemy URL: {exc}") from None
        self.url = url
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        self.backend = parsed.get_backend_name()
        self.name = database_name(url)
        if self.backend == "sqlite":
            parsed = _readonly_sqlite_url(parsed)
        elif self.backend == "postgresql" and "+" not in parsed.drivername:
            parsed = parsed.set(drivername="postgresql+psycopg")
        self._url = parsed
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name (``sqlite``, ``postgresql`` ...)."""
        return self.backend

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created on first use), every connection read-only where the database allows."""
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> Engine:
        kwargs: dict[str, Any] = {}
        if self.backend == "postgresql":
            millis = int(self.timeout_s * 1000)
            kwargs["connect_args"] = {
                "options": f"-c default_transaction_read_only=on -c statement_timeout={millis}",
                "connect_timeout": max(1, int(self.timeout_s)),
            }
        try:
            engine = sa.create_engine(self._url, **kwargs)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigError(f"database URL for {self.name!r}: {exc}") from None
        except ImportError as exc:
            raise UnavailableError(f"the driver for {self.backend} is not installed: {exc}") from None
        if self.backend == "sqlite":

            @sa.event.listens_for(engine, "connect")
            def _query_only(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA query_only = ON")
                cursor.close()
                dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # no ATTACH, even of a new file

        return engine

    def run(self, sql: str | ValidatedSQL) -> QueryResult:
        """Run one statement and fetch at most ``max_rows`` rows.

        Raises :class:`SQLExecutionError` with the database's message (a
        write refused by the read-only connection included),
        :class:`SQLTimeoutError` past ``timeout_s``, :class:`UnavailableError`
        when the database cannot be reached.
        """
        text = sql.sql if isinstance(sql, ValidatedSQL) else sql
        started = time.perf_counter()
        driver_error: type[Exception] = getattr(self.engine.dialect.loaded_dbapi, "Error", DBAPIError)
        try:
            with self.engine.connect() as connection:
                raw = connection.connection.driver_connection
                self._begin(connection, raw)
                try:
                    columns, fetched = self._execute(connection, raw, text)
                finally:
                    self._end(connection, raw)
        except DBAPIError as exc:
            raise self._error(exc.orig or exc, exc.connection_invalidated) from None
        except driver_error as exc:  # raised by the driver's own cursor (PostgreSQL's prepared statements)
            raise self._error(exc, False) from None
        except SQLAlchemyError as exc:
            raise SQLExecutionError(f"the query failed on {self.name}: {exc}") from None
        truncated = len(fetched) > self.max_rows
        rows = [[json_safe(value) for value in row] for row in fetched[: self.max_rows]]
        return QueryResult(text, [str(c) for c in columns], rows, truncated, time.perf_counter() - started)

    def _execute(self, connection: sa.Connection, raw: Any, text: str) -> tuple[list[Any], list[Any]]:
        if self.backend == "postgresql":
            # a prepared statement (the extended protocol) holds exactly one statement: nothing can be stacked
            # after the query to COMMIT the read-only transaction and BEGIN a read-write one
            cursor = raw.cursor()
            try:
                cursor.execute(text, prepare=True)
                columns = [d.name for d in cursor.description or []]
                fetched = cursor.fetchmany(self.max_rows + 1) if cursor.description else []
            finally:
                cursor.close()
            return columns, fetched
        result = connection.exec_driver_sql(text)
        columns = list(result.keys()) if result.returns_rows else []
        rows = result.fetchmany(self.max_rows + 1) if result.returns_rows else []
        result.close()
        return columns, list(rows)

    def _begin(self, connection: sa.Connection, raw: Any) -> None:
        if self.backend == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(self.timeout_s * 1000)}")
            connection.exec_driver_sql("SELECT 1")  # a query ran: the transaction can no longer be made read-write
        elif self.backend == "sqlite":
            deadline = time.monotonic() + self.timeout_s
            raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
            raw.set_authorizer(_sqlite_read_only)

    def _end(self, connection: sa.Connection, raw: Any) -> None:
        if self.backend == "sqlite":
            raw.set_progress_handler(None, 0)
            raw.set_authorizer(None)
        connection.rollback()

    def _error(self, original: BaseException, invalidated: bool) -> Exception:
        message = (str(original).strip().splitlines() or [type(original).__name__])[0]
        lowered = message.lower()
        if "interrupted" in lowered or "statement timeout" in lowered or "canceling statement" in lowered:
            return SQLTimeoutError(f"the query ran longer than {self.timeout_s:g} s on {self.name} and was cancelled")
        if invalidated or _unreachable(lowered):
            return UnavailableError(f"database {self.name} cannot be reached: {message}")
        return SQLExecutionError(f"the query failed on {self.name}: {message}")

    # --- what schema introspection needs (SQLAlchemy stays in this module) ---

    def inspector(self) -> Any:
        """SQLAlchemy's inspector over the read-only engine."""
        return sa.inspect(self.engine)

    def type_name(self, column_type: Any) -> str:
        """A column type as the database spells it (``INTEGER``, ``NUMERIC(10, 2)``)."""
        try:
            return str(column_type.compile(dialect=self.engine.dialect))
        except Exception:  # an unknown type (NullType): still show something
            return str(column_type) or "ANY"

    def sample_rows(self, table: str, columns: Sequence[str], limit: int, schema: str | None = None) -> list[list[Any]]:
        """The first ``limit`` rows of ``table`` (JSON-safe), read in a rolled-back transaction."""
        selectable = sa.table(table, *[sa.column(c) for c in columns], schema=schema)
        with self.engine.connect() as connection:
            fetched = connection.execute(sa.select(selectable).limit(limit)).fetchall()
            connection.rollback()
        return [[json_safe(value) for value in row] for row in fetched]

    @contextmanager
    def reading_schema(self) -> Iterator[None]:
        """Turn a database error met while reading the schema into :class:`UnavailableError`."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise UnavailableError(f"cannot read the schema of {self.name}: {exc}") from None

    def close(self) -> None:
        """Close the engine's connections."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


_SQLITE_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})


def _sqlite_read_only(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    """SQLite authorizer while a query runs: reads and plain functions only (no PRAGMA, ATTACH, writes)."""
    if action in _SQLITE_READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        name = (arg2 or "").lower()
        return sqlite3.SQLITE_OK if function_allowed(name) else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


def _unreachable(message: str) -> bool:
    return any(
        part in message
        for part in ("connection refused", "could not connect", "unable to open database", "timeout expired")
    )
