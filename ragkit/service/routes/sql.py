"""Text-to-SQL over REST: databases registered by admin keys, questions from read keys.

* ``POST /v1/sql/databases`` (admin) ``{name, url, tables?, deny_tables?, deny_columns?, max_rows?}``
  registers a database (any SQLAlchemy URL); the schema is read once to check it.
* ``GET /v1/sql/databases`` (read) lists them (passwords in URLs masked).
* ``DELETE /v1/sql/databases/{name}`` (admin) forgets one.
* ``POST /v1/sql`` (read) ``{database, question}`` answers with the SQL that ran, the rows,
  one citation per row, the attempts and the trace (:class:`SQLAnswer` of ``ragkit-sql``).

The registrations persist in ``{store_dir}/sql_databases.json`` (mode 0600:
URLs may hold passwords). Engines come from the ``sql_engine`` component of
the ``ragkit-sql`` connector, found through the registry (this module never
imports it); their model is the default pipeline's generator, shared with
``/ask``. A key limited to some collections may use only the databases of
the same names, and gets the same 404 for the others as for a database that
does not exist. Every query is checked (one read-only SELECT over the
allowed tables, a LIMIT) and runs on a read-only connection.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ragkit.errors import ConflictError, NotFoundError, storage_errors
from ragkit.service.auth import Principal, require
from ragkit.service.errors import error_responses
from ragkit.service.state import ServiceState, get_state

router = APIRouter(prefix="/v1", tags=["sql"])

FILE_NAME = "sql_databases.json"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_PASSWORD = re.compile(r"(?P<head>://[^/:@]*:)[^@/]*@")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return _PASSWORD.sub(r"\g<head>***@", url)


class RegisterDatabase(BaseModel):
    """A database to register: its name, SQLAlchemy URL and allowlist."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_NAME, description="The name questions use.")
    url: str = Field(min_length=1, max_length=2000, description="SQLAlchemy URL, e.g. sqlite:////data/shop.sqlite.")
    tables: list[str] | None = Field(default=None, description="Tables queries may read (default: all).")
    deny_tables: list[str] = Field(default_factory=list)
    deny_columns: list[str] = Field(default_factory=list, description="'table.column' never shown nor readable.")
    max_rows: int = Field(default=100, ge=1, le=10_000, description="The LIMIT cap.")


class DatabaseInfo(BaseModel):
    """A registered database (URL password masked) and its tables."""

    name: str
    url: str
    tables: list[str]
    deny_columns: list[str] = Field(default_factory=list)
    max_rows: int


class DatabaseList(BaseModel):
    """The databases the caller may query."""

    databases: list[DatabaseInfo]


class SQLRequest(BaseModel):
    """A question for a registered database."""

    model_config = ConfigDict(extra="forbid")

    database: str = Field(pattern=_NAME)
    question: str = Field(min_length=1, max_length=4000)


class SQLCitation(BaseModel):
    """One cited row."""

    number: int
    chunk_id: str
    document_id: str
    source: str
    row: int | None
    quote: str
    title: str | None = None


class SQLAttemptModel(BaseModel):
    """One try at the SQL."""

    sql: str
    error: str | None
    stage: str


class SQLResponse(BaseModel):
    """The answer: text, the SQL that ran, columns and rows, cited rows, attempts, trace."""

    question: str
    text: str
    sql: str | None
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    database: str
    error: str | None
    citations: list[SQLCitation]
    attempts: list[SQLAttemptModel]
    trace: list[dict[str, Any]]
    timings: dict[str, float]
    usage: dict[str, int]


class SQLDatabases:
    """The registered databases of one service, kept in ``{store_dir}/sql_databases.json``, engines built on use."""

    def __init__(self, store_dir: Path) -> None:
        self.path = Path(store_dir) / FILE_NAME
        self._lock = threading.Lock()
        self._engines: dict[str, Any] = {}
        self._specs: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.is_file():
            return {}
        with storage_errors(f"cannot read {self.path}"):
            data = json.loads(self.path.read_text(encoding="utf-8"))
        return {str(k): dict(v) for k, v in (data.get("databases") or {}).items()}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with storage_errors(f"cannot write {self.path}"):
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump({"databases": self._specs}, handle, indent=2, sort_keys=True)
            os.replace(temporary, self.path)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        with self._lock:
            return sorted(self._specs)

    def spec(self, name: str) -> dict[str, Any]:
        """The registration of ``name`` or 404."""
        with self._lock:
            if name not in self._specs:
                raise NotFoundError(f"no SQL database named {name!r} (register it with POST /v1/sql/databases)")
            return dict(self._specs[name])

    def register(self, body: RegisterDatabase, generator: Any) -> tuple[Any, list[str]]:
        """Check ``body`` (the database opens and its schema reads) and keep it; the engine is returned."""
        from ragkit.sql_cli import build_sql_engine

        spec = body.model_dump()
        name = spec.pop("name")
        with self._lock:
            if name in self._specs:
                raise ConflictError(f"a SQL database named {name!r} is registered already (DELETE it first)")
        engine = build_sql_engine(_engine_config(name, spec, generator))
        tables = list(engine.schema.tables)  # opens the database: a bad URL or table fails now
        with self._lock:
            if name in self._specs:
                raise ConflictError(f"a SQL database named {name!r} is registered already (DELETE it first)")
            self._specs[name] = spec
            self._engines[name] = engine
            self._save()
        return engine, tables

    def forget(self, name: str) -> None:
        """Forget ``name`` (404 if unknown) and close its engine."""
        with self._lock:
            if name not in self._specs:
                raise NotFoundError(f"no SQL database named {name!r}")
            del self._specs[name]
            engine = self._engines.pop(name, None)
            self._save()
        if engine is not None:
            engine.close()

    def engine(self, name: str, generator: Any) -> Any:
        """The engine of ``name`` (built on first use)."""
        from ragkit.sql_cli import build_sql_engine

        spec = self.spec(name)
        with self._lock:
            engine = self._engines.get(name)
        if engine is None:
            engine = build_sql_engine(_engine_config(name, spec, generator))
            with self._lock:
                engine = self._engines.setdefault(name, engine)
        return engine

    def close(self) -> None:
        """Close every engine."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()


def _engine_config(name: str, spec: dict[str, Any], generator: Any) -> dict[str, Any]:
    config = {key: value for key, value in spec.items() if key != "url"}
    return {"database": spec["url"], "name": name, "generator": generator, **config}


def databases_of(request: Request) -> SQLDatabases:
    """Dependency: the app's registered databases (read from the store folder on first use)."""
    app_state = request.app.state
    found: SQLDatabases | None = getattr(app_state, "ragkit_sql", None)
    if found is None:
        state: ServiceState = app_state.ragkit
        with _CREATE_LOCK:
            found = getattr(app_state, "ragkit_sql", None)
            if found is None:
                found = SQLDatabases(state.settings.store_dir)
                app_state.ragkit_sql = found
    return found


_CREATE_LOCK = threading.Lock()


def _info(name: str, spec: dict[str, Any], tables: list[str]) -> DatabaseInfo:
    return DatabaseInfo(
        name=name,
        url=mask_url(spec["url"]),
        tables=tables,
        deny_columns=list(spec.get("deny_columns") or []),
        max_rows=int(spec.get("max_rows") or 100),
    )


def _check(principal: Principal, name: str) -> None:
    if not principal.may_access(name):
        raise NotFoundError(f"no SQL database named {name!r} that API key {principal.name!r} may use")


@router.post(
    "/sql/databases",
    status_code=201,
    response_model=DatabaseInfo,
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
    summary="Register a SQL database",
)
async def register_database(
    body: RegisterDatabase,
    state: ServiceState = Depends(get_state),
    databases: SQLDatabases = Depends(databases_of),
    principal: Principal = Depends(require("admin")),
) -> DatabaseInfo:
    """Register a database by SQLAlchemy URL (admin keys); it is opened read-only and its schema read now."""
    _check(principal, body.name)

    def register() -> DatabaseInfo:
        _, tables = databases.register(body, state.pipeline(None).generator)
        return _info(body.name, body.model_dump(), tables)

    return await state.run(register)


@router.get(
    "/sql/databases",
    response_model=DatabaseList,
    responses=error_responses(401, 403),
    summary="List SQL databases",
)
async def list_databases(
    state: ServiceState = Depends(get_state),
    databases: SQLDatabases = Depends(databases_of),
    principal: Principal = Depends(require("read")),
) -> DatabaseList:
    """The databases the caller's key may query, with their allowed tables (as registered)."""
    found = []
    for name in principal.visible(databases.names()):
        spec = databases.spec(name)
        found.append(_info(name, spec, list(spec.get("tables") or [])))
    return DatabaseList(databases=found)


@router.delete(
    "/sql/databases/{name}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404),
    summary="Forget a SQL database",
)
async def delete_database(
    name: str,
    state: ServiceState = Depends(get_state),
    databases: SQLDatabases = Depends(databases_of),
    principal: Principal = Depends(require("admin")),
) -> Response:
    """Forget a registered database (the database itself is never touched)."""
    _check(principal, name)
    await state.run(databases.forget, name)
    return Response(status_code=204)


@router.post(
    "/sql",
    response_model=SQLResponse,
    responses=error_responses(400, 401, 403, 404, 422, 502, 503, 504),
    summary="Ask a SQL database",
)
async def ask_database(
    body: SQLRequest,
    state: ServiceState = Depends(get_state),
    databases: SQLDatabases = Depends(databases_of),
    principal: Principal = Depends(require("read")),
) -> dict[str, Any]:
    """Answer a question from a registered database: the SQL that ran, the rows, one citation per row."""
    _check(principal, body.database)
    databases.spec(body.database)  # 404 before any model work

    def ask() -> dict[str, Any]:
        engine = databases.engine(body.database, state.pipeline(None).generator)
        answer: dict[str, Any] = engine.ask(body.question).to_dict()
        return answer

    async with state.ask_slots():
        return await state.run(ask)
