"""The SQL validator: one read-only statement over allowlisted tables and columns, with a LIMIT.

Generated SQL is parsed with sqlglot in the database's dialect and refused
(:class:`SQLValidationError`, whose message names the reason; it goes back to
the model for one repair attempt) unless it is exactly one ``SELECT``
(``WITH ... SELECT``, ``UNION``/``INTERSECT``/``EXCEPT`` of selects included)
that:

* writes nothing: no ``INSERT``/``UPDATE``/``DELETE``/``MERGE``/``REPLACE``,
  no DDL, no ``PRAGMA``, ``ATTACH``/``DETACH``, ``COPY``, ``SET``,
  transaction control, ``SELECT ... INTO``, ``FOR UPDATE``/``FOR SHARE``
  locks, and no data-modifying statement hidden in a CTE or subquery;
* calls no dangerous function (:data:`DENIED_FUNCTIONS` and the prefixes in
  :data:`DENIED_FUNCTION_PREFIXES`: ``pg_sleep``, ``pg_read_file``,
  ``lo_import``, ``dblink``, ``set_config``, ``load_extension``,
  ``readfile``/``writefile``, ``randomblob`` ...);
* reads only allowlisted tables (by default every table introspected from the
  database) and columns, never a system catalog (``sqlite_master``,
  ``pg_catalog``, ``information_schema``) unless explicitly allowed, and no
  table in another schema or attached database.

The outermost query gets a ``LIMIT`` of at most ``max_rows`` (added, or
lowered to the cap). Only sqlglot is imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from ragkit.errors import InputError

__all__ = [
    "DENIED_FUNCTIONS",
    "DENIED_FUNCTION_PREFIXES",
    "SQLValidationError",
    "SQLValidator",
    "ValidatedSQL",
    "function_allowed",
    "sqlglot_dialect",
]

# sqlglot logs a warning when it falls back to parsing a statement as an opaque Command; the validator refuses those
logging.getLogger("sqlglot").setLevel(logging.ERROR)

DENIED_FUNCTIONS = frozenset(
    {
        # PostgreSQL: files, server programs, sleeping, settings, locks, sequences, SQL run from a string
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "lo_import",
        "lo_export",
        "lo_get",
        "lo_put",
        "lo_open",
        "lo_create",
        "lo_creat",
        "lo_unlink",
        "lo_from_bytea",
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "dblink_open",
        "dblink_send_query",
        "set_config",
        "current_setting",
        "nextval",
        "setval",
        "currval",
        "lastval",
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "query_to_xmlschema",
        "cursor_to_xml",
        "table_to_xml",
        "table_to_xml_and_xmlschema",
        "database_to_xml",
        "schema_to_xml",
        "txid_current",
        "copy",
        # SQLite: extensions, files, memory bombs, the sqlite shell's functions
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "randomblob",
        "zeroblob",
        "sqlite_compileoption_get",
        "sqlite_compileoption_used",
        "sqlite_offset",
        # MySQL and others
        "sleep",
        "benchmark",
        "load_file",
        "get_lock",
        "release_lock",
        "xp_cmdshell",
        "openrowset",
        "opendatasource",
    }
)
"""Functions refused wherever they appear (names compared in lower case)."""

DENIED_FUNCTION_PREFIXES = ("pg_", "lo_", "dblink", "sqlite_", "txid_", "xp_", "sys_exec", "sys_eval")
"""Function name prefixes refused: PostgreSQL's administration functions, large objects, dblink, SQLite internals."""

ALLOWED_PREFIXED_FUNCTIONS = frozenset({"pg_typeof", "sqlite_version"})
"""Harmless functions whose names carry a denied prefix."""

SAFE_TABLE_FUNCTIONS = frozenset(
    {
        "generate_series",
        "exploding_generate_series",
        "unnest",
        "explode",
        "json_each",
        "json_tree",
        "json_array_elements",
        "jsonb_array_elements",
    }
)
"""Table-valued functions allowed in FROM (they read only their arguments)."""

SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", "sqlite_temp_master", "sys", "mysql"})
SYSTEM_TABLE_PREFIXES = ("sqlite_", "pg_")
"""Tables that are system catalogs: refused unless a caller allows them by name."""

# statement kinds that write, change the schema or the session, or escape the database
_FORBIDDEN_NODES: tuple[tuple[str, str], ...] = (
    ("Insert", "INSERT/REPLACE writes rows"),
    ("Update", "UPDATE writes rows"),
    ("Delete", "DELETE removes rows"),
    ("Merge", "MERGE writes rows"),
    ("Copy", "COPY reads or writes files and programs"),
    ("Create", "DDL (CREATE) changes the schema"),
    ("Drop", "DDL (DROP) changes the schema"),
    ("Alter", "DDL (ALTER) changes the schema"),
    ("AlterColumn", "DDL (ALTER) changes the schema"),
    ("RenameTable", "DDL (RENAME) changes the schema"),
    ("TruncateTable", "TRUNCATE removes rows"),
    ("Pragma", "PRAGMA changes or reads database settings"),
    ("Attach", "ATTACH opens another database file"),
    ("Detach", "DETACH changes the attached databases"),
    ("Set", "SET changes session settings"),
    ("Transaction", "transaction control is not allowed"),
    ("Commit", "transaction control is not allowed"),
    ("Rollback", "transaction control is not allowed"),
    ("Grant", "GRANT changes privileges"),
    ("Revoke", "REVOKE changes privileges"),
    ("Use", "USE changes the database"),
    ("LoadData", "LOAD DATA reads files"),
    ("Analyze", "ANALYZE writes statistics"),
    ("Command", "this statement is not a plain query"),
    ("Into", "SELECT ... INTO creates a table"),
    ("Lock", "FOR UPDATE/FOR SHARE takes row locks"),
    ("Placeholder", "query parameters are not supported: write the values into the query"),
    ("Parameter", "query parameters are not supported: write the values into the query"),
)
_FORBIDDEN: tuple[tuple[type[exp.Expression], str], ...] = tuple(
    (getattr(exp, name), why) for name, why in _FORBIDDEN_NODES if isinstance(getattr(exp, name, None), type)
)

_DIALECTS = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "tsql",
    "oracle": "oracle",
    "duckdb": "duckdb",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
}

_MAX_REPEAT = 100_000
"""Largest literal length allowed to ``repeat``/``lpad``/``rpad``/``replicate`` (memory bombs)."""


def sqlglot_dialect(name: str) -> str:
    """The sqlglot dialect of a SQLAlchemy dialect name (``postgresql`` → ``postgres``)."""
    return _DIALECTS.get(name.lower(), name.lower())


class SQLValidationError(InputError):
    """The SQL was refused before it ran; ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"refused ({reason}): {message}")
        self.reason = reason


@dataclass(frozen=True)
class ValidatedSQL:
    """SQL that passed validation: ``sql`` is what runs (the LIMIT injected), ``original`` what was given."""

    sql: str
    original: str
    tables: tuple[str, ...]
    limit: int


@dataclass
class SQLValidator:
    """Checks generated SQL; see the module docstring.

    ``tables`` maps each allowed table (lower case) to its allowed columns
    (``None``: every column). ``deny_tables`` and ``deny_columns``
    (``"table.column"``) always win. ``allow_system`` names system catalogs
    that may be read anyway. ``max_rows`` is the LIMIT cap.
    """

    dialect: str = "sqlite"
    tables: Mapping[str, Iterable[str] | None] = field(default_factory=dict)
    deny_tables: Iterable[str] = ()
    deny_columns: Iterable[str] = ()
    allow_system: Iterable[str] = ()
    max_rows: int = 100

    def __post_init__(self) -> None:
        self.dialect = sqlglot_dialect(self.dialect)
        if self.max_rows < 1:
            raise InputError(f"max_rows must be at least 1, got {self.max_rows}")
        denied_tables = {t.lower() for t in self.deny_tables}
        self._denied_columns: dict[str, set[str]] = {}
        for item in self.deny_columns:
            table, dot, column = item.lower().rpartition(".")
            if not dot or not table or not column:
                raise InputError(f"deny_columns entries are 'table.column', got {item!r}")
            self._denied_columns.setdefault(table, set()).add(column)
        self._system = {t.lower() for t in self.allow_system}
        self._tables: dict[str, set[str] | None] = {}
        for table, columns in self.tables.items():
            name = table.lower()
            if name in denied_tables:
                continue
            allowed = None if columns is None else {c.lower() for c in columns}
            denied = self._denied_columns.get(name, set())
            if allowed is not None:
                allowed -= denied
            self._tables[name] = allowed
        for name in self._system:
            self._tables.setdefault(name, None)

    @property
    def allowed_tables(self) -> list[str]:
        """The tables a query may read, sorted."""
        return sorted(self._tables)

    def validate(self, sql: str) -> ValidatedSQL:
        """The checked statement with its LIMIT, or :class:`SQLValidationError` naming the reason."""
        statement = self._parse_one(sql)
        self._check_kinds(statement)
        self._check_functions(statement)
        tables = self._check_tables(statement)
        self._check_columns(statement)
        limited = self._limit(statement)
        return ValidatedSQL(
            sql=limited.sql(dialect=self.dialect, comments=False),
            original=sql,
            tables=tuple(sorted(tables)),
            limit=self.max_rows,
        )

    # --- steps ---

    def _parse_one(self, sql: str) -> exp.Expression:
        text = sql.strip()
        if not text:
            raise SQLValidationError("empty", "no SQL was given")
        try:
            statements = [s for s in sqlglot.parse(text, dialect=self.dialect) if s is not None]
        except SqlglotError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SQLValidationError("unparseable", f"the SQL does not parse as {self.dialect}: {first}") from None
        if not statements:
            raise SQLValidationError("empty", "no SQL statement was given (only comments or semicolons)")
        if len(statements) > 1:
            kinds = ", ".join(type(s).__name__.upper() for s in statements)
            raise SQLValidationError(
                "stacked", f"exactly one statement is allowed, got {len(statements)} ({kinds}); remove the ';'"
            )
        statement = statements[0]
        if not isinstance(statement, (exp.Select, exp.SetOperation)):
            why = self._forbidden_reason(statement)
            kind = type(statement).__name__.upper()
            raise SQLValidationError(
                "not_select", f"only a read-only SELECT is allowed, got {kind}" + (f": {why}" if why else "")
            )
        return statement

    @staticmethod
    def _forbidden_reason(node: exp.Expr) -> str | None:
        for cls, why in _FORBIDDEN:
            if isinstance(node, cls):
                return why
        return None

    def _check_kinds(self, statement: exp.Expression) -> None:
        for node in statement.walk():
            why = self._forbidden_reason(node)
            if why is not None:
                kind = type(node).__name__.upper()
                reason = {"LOCK": "lock", "PLACEHOLDER": "parameter", "PARAMETER": "parameter"}.get(kind, "write")
                raise SQLValidationError(reason, f"{kind} inside the query: {why}")
            if isinstance(node, (exp.DDL, exp.DML)):
                raise SQLValidationError("write", f"{type(node).__name__.upper()} inside the query writes data")

    def _check_functions(self, statement: exp.Expression) -> None:
        for node in statement.find_all(exp.Func):
            names = {type(node).__name__.lower()}
            if isinstance(node, exp.Anonymous):
                names.add(str(node.name).lower())
            else:
                names.add(node.sql_name().lower())
            for name in names:
                if not function_allowed(name):
                    raise SQLValidationError("function", f"the function {name}() is not allowed")
            if names & {"repeat", "lpad", "rpad", "replicate", "space", "padleft", "padright"}:
                for literal in node.find_all(exp.Literal):
                    if not literal.is_string and _number(literal) > _MAX_REPEAT:
                        raise SQLValidationError(
                            "function", f"{node.sql_name().lower()}() with a length over {_MAX_REPEAT}"
                        )

    @staticmethod
    def _is_cte_reference(table: exp.Table) -> bool:
        """Whether ``table`` names a CTE in scope, not a real table.

        Conservative, as databases resolve names: inside a CTE's own body only
        the CTEs defined before it are visible (and itself under ``WITH
        RECURSIVE``), so ``WITH t AS (SELECT * FROM t)`` reads the real ``t``.
        """
        if table.db or table.catalog:
            return False
        name = table.name.lower()
        child: exp.Expr = table
        node = table.parent
        while node is not None:
            if isinstance(node, exp.With):
                ctes = list(node.expressions)
                index = next((i for i, cte in enumerate(ctes) if cte is child), len(ctes))
                visible = {cte.alias_or_name.lower() for cte in ctes[:index]}
                if node.args.get("recursive") and index < len(ctes):
                    visible.add(ctes[index].alias_or_name.lower())
                if name in visible:
                    return True
            else:
                with_ = node.args.get("with_") or node.args.get("with")
                if (
                    isinstance(with_, exp.With)
                    and child is not with_
                    and name in {cte.alias_or_name.lower() for cte in with_.expressions}
                ):
                    return True
            child = node
            node = node.parent
        return False

    def _check_tables(self, statement: exp.Expression) -> set[str]:
        used: set[str] = set()
        for table in statement.find_all(exp.Table):
            if isinstance(table.this, exp.Func):  # a table-valued function (its name was checked as a function)
                function = _function_name(table.this)
                if function not in SAFE_TABLE_FUNCTIONS:
                    raise SQLValidationError("table", f"the table function {function}() is not allowed")
                continue
            name = table.name.lower()
            schema = (table.db or "").lower()
            catalog = (table.catalog or "").lower()
            if not name:
                raise SQLValidationError("table", f"cannot read from {table.sql(dialect=self.dialect)}")
            if self._is_cte_reference(table):
                continue
            qualified = ".".join(p for p in (catalog, schema, name) if p)
            if schema in SYSTEM_SCHEMAS or catalog in SYSTEM_SCHEMAS or name.startswith(SYSTEM_TABLE_PREFIXES):
                if qualified not in self._system and name not in self._system:
                    raise SQLValidationError("system_catalog", f"the system catalog {qualified} is not allowed")
                used.add(name)
                continue
            if catalog or (schema and schema not in self._default_schemas()):
                raise SQLValidationError(
                    "table", f"{qualified}: only tables of the database's own schema may be read, unqualified"
                )
            if name not in self._tables:
                allowed = ", ".join(self.allowed_tables) or "none"
                raise SQLValidationError("table", f"the table {name} is not allowed (allowed tables: {allowed})")
            used.add(name)
        return used

    def _default_schemas(self) -> set[str]:
        return {"main"} if self.dialect == "sqlite" else {"public"} if self.dialect == "postgres" else set()

    def _check_columns(self, statement: exp.Expression) -> None:
        # alias → real table, for every real table referenced
        real: dict[str, str] = {}
        for table in statement.find_all(exp.Table):
            name = table.name.lower()
            if isinstance(table.this, exp.Func) or self._is_cte_reference(table):
                continue
            real[table.alias_or_name.lower()] = name
            real.setdefault(name, name)
        referenced = set(real.values())
        restricted = {t for t in referenced if self._tables.get(t) is not None}
        denied_anywhere: dict[str, str] = {}
        for t in referenced:
            for denied_column in self._denied_columns.get(t, ()):
                denied_anywhere.setdefault(denied_column, t)
        derived = {a.alias.lower() for a in statement.find_all(exp.Alias) if a.alias}
        derived |= {c.name.lower() for ta in statement.find_all(exp.TableAlias) for c in ta.columns}
        known_columns: set[str] = set()
        for t in referenced:
            columns = self._tables.get(t)
            if columns is not None:
                known_columns |= columns
        for star in statement.find_all(exp.Star):
            parent = star.parent
            if isinstance(parent, exp.Count) or (isinstance(parent, exp.Func) and not isinstance(parent, exp.Column)):
                continue  # count(*)
            owner = parent.table.lower() if isinstance(parent, exp.Column) and parent.table else None
            scope = {real[owner]} if owner in real else referenced
            hidden = sorted(t for t in scope if self._denied_columns.get(t) or t in restricted)
            if hidden:
                raise SQLValidationError(
                    "column",
                    f"SELECT * over {', '.join(hidden)} would read columns that are not allowed: name the columns",
                )
        for column in statement.find_all(exp.Column):
            if isinstance(column.this, exp.Star):
                continue
            name = column.name.lower()
            owner = column.table.lower()
            if owner and owner in real:
                owning = real[owner]
                if name in self._denied_columns.get(owning, ()):
                    raise SQLValidationError("column", f"the column {owning}.{name} is not allowed")
                allowed = self._tables.get(owning)
                if allowed is not None and name not in allowed:
                    raise SQLValidationError(
                        "column", f"the column {owning}.{name} is not allowed (allowed: {', '.join(sorted(allowed))})"
                    )
                continue
            if not owner and name in real and name not in known_columns:
                whole = real[name]
                if self._denied_columns.get(whole) or whole in restricted:
                    raise SQLValidationError(
                        "column",
                        f"{name} refers to whole rows of {whole}, which has columns that are not allowed: "
                        "name the columns",
                    )
            if not owner and name in denied_anywhere:
                raise SQLValidationError("column", f"the column {denied_anywhere[name]}.{name} is not allowed")
            if not owner and restricted and name not in known_columns and name not in derived:
                unrestricted = referenced - restricted
                if not unrestricted:
                    raise SQLValidationError(
                        "column",
                        f"the column {name} is not allowed in {', '.join(sorted(referenced))} "
                        f"(allowed: {', '.join(sorted(known_columns))})",
                    )

    def _limit(self, statement: exp.Expression) -> exp.Expression:
        limited = statement.copy()
        current = limited.args.get("limit")
        value: int | None = None
        if isinstance(current, exp.Limit) and isinstance(current.expression, exp.Literal):
            value = _number(current.expression)
        elif isinstance(current, exp.Fetch) and isinstance(current.args.get("count"), exp.Literal):
            value = _number(current.args["count"])
        if value is None or value > self.max_rows or value < 0:
            limited.set("limit", exp.Limit(expression=exp.Literal.number(self.max_rows)))
        return limited


def function_allowed(name: str) -> bool:
    """Whether the function ``name`` may be called (not in :data:`DENIED_FUNCTIONS`, no denied prefix)."""
    name = name.lower()
    if name in ALLOWED_PREFIXED_FUNCTIONS:
        return True
    return name not in DENIED_FUNCTIONS and not name.startswith(DENIED_FUNCTION_PREFIXES)


def _function_name(node: exp.Func) -> str:
    return str(node.name).lower() if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _number(literal: exp.Literal) -> int:
    try:
        return int(float(str(literal.this)))
    except ValueError:
        return -1
