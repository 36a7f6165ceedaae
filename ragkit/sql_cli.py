"""``ragkit sql``: ask a SQL database a question in natural language.

::

    ragkit sql "How many orders were shipped?" --database sqlite:///shop.sqlite
    ragkit sql "Top 5 artists by sales" --database postgresql://me@db/chinook --tables artist,album --json
    ragkit sql "..." --config sql            # the sql_engine: section of pipelines/sql.yaml (or a YAML file)

The engine is the ``sql_engine`` component ``sqlalchemy`` of the
``ragkit-sql`` connector, built through the registry: this module never
imports the connector (``pip install ragkit-sql`` adds it). The SQL is
checked (one read-only SELECT over the database's tables, with a LIMIT) and
runs on a read-only connection. Errors print as one line and exit non-zero,
as in :mod:`ragkit.cli`; a question no query could answer prints why and
exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from ragkit.cli_support import run_action

ENGINE_ROLE = "sql_engine"
ENGINE_TYPE = "sqlalchemy"
RECIPE_SECTION = "sql_engine"


def load_sql_recipe(name_or_path: str) -> dict[str, Any]:
    """The ``sql_engine:`` section of a recipe name (``sql``) or YAML file."""
    from ragkit.errors import ConfigError
    from ragkit.recipes import find_recipe
    from ragkit.yaml_io import read_mapping

    path = find_recipe(name_or_path)
    data = read_mapping(path, "SQL recipe")
    section = data.get(RECIPE_SECTION)
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path} has no '{RECIPE_SECTION}:' section (is it a SQL recipe such as pipelines/sql.yaml?)")
    return dict(section)


def build_sql_engine(spec: Mapping[str, Any]) -> Any:
    """The SQL engine of ``spec`` (``{"type": "sqlalchemy", "database": URL, ...}``) through the registry.

    Raises :class:`~ragkit.errors.MissingDependencyError` when the
    ``ragkit-sql`` connector is not installed.
    """
    from ragkit import registry
    from ragkit.errors import MissingDependencyError, NotFoundError

    config = {"type": ENGINE_TYPE, **spec}
    try:
        registry.get(ENGINE_ROLE, str(config["type"]))
    except NotFoundError:
        if config["type"] != ENGINE_TYPE:
            raise
        raise MissingDependencyError("text-to-SQL (ragkit sql, /v1/sql, the sql tool)", "ragkit-sql") from None
    return registry.build(ENGINE_ROLE, config)


def engine_spec(
    database: str | None,
    tables: str | None = None,
    config: str | None = None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """The engine config: the recipe's section (if any) with the command line's options on top."""
    from ragkit.errors import InputError

    spec: dict[str, Any] = load_sql_recipe(config) if config else {}
    if database:
        spec["database"] = database
    if not spec.get("database"):
        raise InputError("--database is required: a SQLAlchemy URL such as sqlite:///shop.sqlite")
    if tables:
        spec["tables"] = [t.strip() for t in tables.split(",") if t.strip()]
    if max_rows is not None:
        spec["max_rows"] = max_rows
    return spec


def sql_command(
    question: Annotated[str, typer.Argument(help="The question, in natural language.")],
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="SQLAlchemy URL (sqlite:///shop.sqlite, postgresql://user@host/db) or a SQLite file.",
        ),
    ] = None,
    tables: Annotated[
        str | None, typer.Option("--tables", help="Comma-separated tables the query may read (default: all).")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", help="A recipe name (e.g. 'sql') or YAML file with an 'sql_engine:' section."),
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option("--max-rows", min=1, help="Most rows returned (the LIMIT cap).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON, trace included.")] = False,
) -> None:
    """Ask a SQL database a question: the SQL is checked (read-only SELECT, LIMIT) and runs read-only."""

    def action() -> Any:
        spec = engine_spec(database, tables, config, max_rows)
        engine = build_sql_engine(spec)
        try:
            return engine.ask(question)
        finally:
            engine.close()

    answer = run_action(action, "interrupted; nothing was changed")
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_answer(answer)
    if answer.error is not None:
        raise typer.Exit(code=2)


def _print_answer(answer: Any) -> None:
    typer.echo(answer.text)
    if answer.sql:
        typer.echo(f"\nSQL: {answer.sql}")
    if answer.error is not None:
        for number, attempt in enumerate(answer.attempts, 1):
            typer.echo(f"attempt {number}: {attempt.sql!r}: {attempt.error}", err=True)
        return
    if answer.columns:
        typer.echo(f"\n{' | '.join(answer.columns)}")
        for row in answer.rows[:20]:
            typer.echo(" | ".join("NULL" if v is None else str(v) for v in row))
        more = len(answer.rows) - 20
        if more > 0 or answer.truncated:
            typer.echo(
                f"... {max(more, 0)} more row(s) shown in --json"
                + (" (cut at the row cap)" if answer.truncated else "")
            )
    typer.echo(f"\n[{len(answer.rows)} row(s) from sql:{answer.database}]")
