"""The router over a real collection (real embedder, FAISS) and a real SQLite database.

The classifying and answering model is the real OpenAI client talking to the
wire-protocol FAKE server (:mod:`ragkit.testing.fake_openai`) with scripted
replies. The SQL side is the real text-to-SQL engine of ``ragkit-sql`` in the
tests at the end; the routing tests before them use
:class:`SqliteAnswererDouble`, a TEST DOUBLE of that engine: it runs one fixed
SQL statement on a real SQLite file and cites the rows, implementing the core's
``Answerer`` protocol the same way the engine does, so each test scripts one
model reply less.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ragkit import Collection
from ragkit.errors import ConfigError, RagkitError
from ragkit.query.answering import Answerer, PipelineAnswerer
from ragkit.query.router import Router, load_router, merge_answers, parse_route
from ragkit.rag.answer import Answer, Citation
from ragkit.rag.config import PipelineConfig
from ragkit.rag.pipeline import RagPipeline
from ragkit.recipes import find_recipe
from ragkit.testing.fake_openai import FakeOpenAIServer

CLASSIFY = "Answer with one word: documents, database, or both."


@dataclass
class SqlAnswerDouble:
    """The shape of the SQL engine's answer: text, the SQL it ran, the rows, and one citation per row."""

    text: str
    sql: str
    rows: list[tuple[Any, ...]]
    citations: list[Citation] = field(default_factory=list)


class SqliteAnswererDouble:
    """TEST DOUBLE of the text-to-SQL engine: one fixed SQL statement on a real SQLite file, rows cited."""

    def __init__(self, path: Path, sql: str) -> None:
        self.path = path
        self.sql = sql
        self.asked: list[str] = []

    def ask(self, question: str) -> SqlAnswerDouble:
        self.asked.append(question)
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as conn:
            rows = conn.execute(self.sql).fetchall()
        citations = [
            Citation(i, f"orders:{row[0]}", "orders", "sqlite:orders", 0, 0, 1.0, row=row[0], quote=repr(row))
            for i, row in enumerate(rows, 1)
        ]
        markers = "".join(f"[{c.number}]" for c in citations)
        return SqlAnswerDouble(f"ACME placed {len(rows)} orders {markers}.", self.sql, rows, citations)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    tmp = tmp_path_factory.mktemp("router")
    folder = tmp / "docs"
    folder.mkdir()
    (folder / "refunds.md").write_text("# Refunds\n\nCustomers may return goods within 30 days for a full refund.\n")
    (folder / "shipping.md").write_text("# Shipping\n\nOrders ship from Hamburg within two working days.\n")
    with Collection.create("docs", store_dir=tmp / "home") as collection:
        assert not collection.ingest([folder]).failed
    with Collection.open("docs", store_dir=tmp / "home") as collection:
        yield collection


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(1, "ACME", 10.0), (2, "Globex", 5.0), (3, "ACME", 7.5)]
        )
    return path


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(model="fake-model") as server:
        yield server


def _generator(fake: FakeOpenAIServer) -> dict[str, Any]:
    return {"type": "openai", "model": "fake-model", "base_url": fake.v1, "max_retries": 0}


def _script(fake: FakeOpenAIServer, route: str, answer: str = "Goods may be returned within 30 days [1].", **knobs):
    """Classification prompts get ``route``; every other prompt (the RAG answer) gets ``answer``."""

    def reply(messages: list[dict[str, Any]]) -> str:
        text = " ".join(str(m.get("content") or "") for m in messages)
        return route if CLASSIFY in text else answer

    return fake.reset(reply=reply, **knobs)


def _router(fake, docs, database, **options) -> tuple[Router, SqliteAnswererDouble]:
    pipeline = RagPipeline(PipelineConfig(generator=_generator(fake)), name="basic")
    sql = SqliteAnswererDouble(database, "SELECT id, customer, total FROM orders WHERE customer = 'ACME' ORDER BY id")
    options.setdefault("generator", _generator(fake))
    return Router(PipelineAnswerer(pipeline, docs), sql, **options), sql


def test_the_double_and_the_pipeline_implement_the_answerer_protocol(fake, docs, database):
    router, sql = _router(fake, docs, database)
    assert isinstance(sql, Answerer) and isinstance(router.vector, Answerer)


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("database", "sql"),
        ("Answer: Database.", "sql"),
        ("SQL", "sql"),
        ("documents", "vector"),
        ("**Documents**", "vector"),
        ("both", "both"),
        ("Both the documents and the database.", "both"),
        ("the documents, not the database", "vector"),
        ("banana", None),
        ("", None),
    ],
)
def test_parse_route_reads_what_models_write(text, route):
    assert parse_route(text) == route


def test_a_database_question_goes_to_sql_only(fake, docs, database):
    state = _script(fake, "Database.")
    router, sql = _router(fake, docs, database)
    answer = router.ask("How many orders did ACME place?")
    assert answer.route == "sql" and sql.asked == ["How many orders did ACME place?"]
    assert answer.text == "ACME placed 2 orders [1][2]."
    assert [c.source for c in answer.citations] == ["sqlite:orders", "sqlite:orders"]
    decision = answer.trace[0]
    assert decision == {**decision, "step": "route", "route": "sql", "by": "model", "raw": "Database."}
    assert decision["calls"][0]["model"] == "fake-model"
    assert answer.trace[1]["sql"].startswith("SELECT") and answer.trace[1]["rows"] == 2
    assert len(state.on("/v1/chat/completions")) == 1  # no RAG answer was generated


def test_a_document_question_goes_to_the_pipeline_only(fake, docs, database):
    _script(fake, "documents")
    router, sql = _router(fake, docs, database)
    answer = router.ask("How long do customers have to return goods?")
    assert answer.route == "vector" and sql.asked == []
    assert isinstance(answer.answers["vector"], Answer)
    assert answer.citations and answer.citations[0].source == "refunds.md"


def test_both_merges_the_answers_and_renumbers_the_sql_citations(fake, docs, database):
    _script(fake, "both", answer="Returns are accepted within 30 days [1].")
    router, _ = _router(fake, docs, database)
    answer = router.ask("How many orders did ACME place, and what is the refund policy?")
    assert answer.route == "both"
    documents = answer.answers["vector"].citations
    n = len(documents)
    assert n >= 1
    assert [c.number for c in answer.citations] == list(range(1, n + 3))  # no clash, no gap
    assert [c.source for c in answer.citations[n:]] == ["sqlite:orders", "sqlite:orders"]
    assert answer.citations[0].source == "refunds.md"
    assert answer.text == f"Returns are accepted within 30 days [1].\n\nACME placed 2 orders [{n + 1}][{n + 2}]."
    assert answer.text[answer.citations[n].positions[0] :].startswith(f"[{n + 1}]")
    assert answer.trace[-1] == {"step": "merge", "sql_citations_renumbered": {"1": n + 1, "2": n + 2}}
    assert answer.answers["sql"].citations[0].number == 1  # the side's own answer is left as it came
    assert [c["number"] for c in answer.to_dict()["citations"]] == list(range(1, n + 3))


def test_an_unreadable_model_answer_takes_the_default_route_and_says_why(fake, docs, database):
    _script(fake, "banana bread")
    router, _ = _router(fake, docs, database, default="vector")
    answer = router.ask("Where do orders ship from?")
    assert answer.route == "vector"
    assert answer.trace[0]["by"] == "default" and "'banana bread' names no route" in answer.trace[0]["reason"]


def test_a_failed_classification_call_takes_the_default_route(fake, docs, database):
    _script(fake, "database", fail_next=[500])
    router, _ = _router(fake, docs, database)
    answer = router.ask("How many orders did ACME place?")
    assert answer.route == "both" and answer.trace[0]["by"] == "default"
    assert "classification call failed" in answer.trace[0]["reason"]
    assert answer.trace[0]["calls"][0]["error"]


def test_rules_route_by_keywords(fake, docs, database):
    state = _script(fake, "unused")
    router, _ = _router(fake, docs, database, mode="rules", default="vector", rules={"sql": ["how many", "total"]})
    counted = router.ask("How many orders did ACME place?")
    assert counted.route == "sql" and counted.trace[0]["by"] == "rules" and "'how many'" in counted.trace[0]["reason"]
    policy = router.ask("What is the refund policy?")
    assert policy.route == "vector" and policy.trace[0]["by"] == "default"
    both = Router(router.vector, router.sql, mode="rules", rules={"sql": ["orders"], "vector": ["policy"]})
    assert both.ask("Orders and the refund policy?").route == "both"
    assert not any(CLASSIFY in str(r["body"]) for r in state.on("/v1/chat/completions"))


def test_a_side_that_fails_in_both_is_recorded_and_the_other_answers(fake, docs, database):
    _script(fake, "both")
    router, _ = _router(fake, docs, database)
    router.sql = SqliteAnswererDouble(database, "SELECT * FROM no_such_table")
    answer = router.ask("Orders and refunds?")
    assert answer.route == "both" and set(answer.answers) == {"vector"}
    assert "no such table" in answer.trace[2]["error"]
    with pytest.raises(sqlite3.OperationalError):
        Router(router.vector, router.sql, mode="sql").ask("How many orders?")


def test_a_router_without_a_database_answers_from_documents(fake, docs, database):
    _script(fake, "database")
    router, _ = _router(fake, docs, database)
    router.sql = None
    answer = router.ask("How many orders?")
    assert answer.route == "vector" and "no 'sql' side" in answer.trace[0]["reason"]


def test_config_errors_name_the_problem(fake, docs, database):
    router, sql = _router(fake, docs, database)
    with pytest.raises(ConfigError, match="needs 'vector'"):
        Router()
    with pytest.raises(ConfigError, match="mode must be"):
        Router(sql=sql, mode="guess")
    with pytest.raises(ConfigError, match="needs a generator"):
        Router(sql=sql)
    with pytest.raises(ConfigError, match="unknown route"):
        Router(sql=sql, mode="rules", rules={"db": ["x"]})
    with pytest.raises(RagkitError, match="question is empty"):
        router.ask("  ")


def test_merge_answers_of_plain_objects():
    first = SqlAnswerDouble(
        "A [1] and [2].", "", [], [Citation(1, "a", "d", "a.md", 0, 1, 1.0), Citation(2, "b", "d", "b.md", 0, 1, 1.0)]
    )
    second = SqlAnswerDouble("Rows [1].", "SELECT 1", [(1,)], [Citation(1, "r1", "t", "sqlite:t", 0, 0, 1.0, row=1)])
    text, citations, mapping = merge_answers(first, second)
    assert text == "A [1] and [2].\n\nRows [3]." and mapping == {1: 3}
    assert [(c.number, c.source) for c in citations] == [(1, "a.md"), (2, "b.md"), (3, "sqlite:t")]


# -- the real text-to-SQL engine (ragkit-sql) ------------------------------------------------------------

SQL_REPLY = "```sql\nSELECT id, customer, total FROM orders WHERE customer = 'ACME' ORDER BY id\n```"


def _script_engine(fake: FakeOpenAIServer, route: str) -> Any:
    """Scripted replies for every prompt the router, the RAG pipeline and the SQL engine send."""

    def reply(messages: list[dict[str, Any]]) -> str:
        text = " ".join(str(m.get("content") or "") for m in messages)
        if CLASSIFY in text:
            return route
        if "You translate questions into one" in text:
            return SQL_REPLY
        if "using only the result" in text:
            return "ACME placed 2 orders [1][2]."
        return "Goods may be returned within 30 days [1]."

    return fake.reset(reply=reply)


def _engine(fake: FakeOpenAIServer, database: Path) -> Any:
    pytest.importorskip("ragkit_sql")
    from ragkit import registry

    config = {"type": "sqlalchemy", "database": f"sqlite:///{database}", "generator": _generator(fake)}
    return registry.build("sql_engine", config)


def test_both_with_the_real_sql_engine_on_sqlite(fake, docs, database):
    _script_engine(fake, "both")
    engine = _engine(fake, database)
    try:
        assert isinstance(engine, Answerer)
        pipeline = RagPipeline(PipelineConfig(generator=_generator(fake)), name="basic")
        router = Router(PipelineAnswerer(pipeline, docs), engine, generator=_generator(fake))
        answer = router.ask("How many orders did ACME place, and what is the refund policy?")
    finally:
        engine.close()
    assert answer.route == "both"
    assert answer.answers["sql"].rows == [[1, "ACME", 10.0], [3, "ACME", 7.5]]
    n = len(answer.answers["vector"].citations)
    sql_citations = answer.citations[n:]
    assert [c.number for c in answer.citations] == list(range(1, n + 3))
    assert [c.quote for c in sql_citations] and all(c.source.startswith("sql:") for c in sql_citations)
    assert answer.text.endswith(f"ACME placed 2 orders [{n + 1}][{n + 2}].")
    assert answer.trace[2]["step"] == "sql" and "FROM orders" in answer.trace[2]["sql"] and answer.trace[2]["rows"] == 2


def test_a_failed_sql_answer_leaves_the_documents_to_answer(fake, docs, database):
    state = _script_engine(fake, "both")
    state.reply = lambda messages: (
        "both" if CLASSIFY in str(messages) else "DROP TABLE orders" if "translate" in str(messages) else "See [1]."
    )
    engine = _engine(fake, database)
    try:
        pipeline = RagPipeline(PipelineConfig(generator=_generator(fake)), name="basic")
        answer = Router(PipelineAnswerer(pipeline, docs), engine, generator=_generator(fake)).ask("Orders?")
    finally:
        engine.close()
    assert set(answer.answers) == {"vector"} and answer.trace[2]["error"]  # refused SQL, never run
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 3


def test_the_router_recipe_loads(fake, docs, database, tmp_path):
    data = yaml.safe_load(find_recipe("router").read_text(encoding="utf-8"))
    section = data["router"]
    assert section["vector"]["collection"] and section["sql"]["type"] == "sqlalchemy"
    pytest.importorskip("ragkit_sql")
    recipe = tmp_path / "router.yaml"
    section = {
        **section,
        "mode": "rules",
        "vector": {**section["vector"], "collection": "docs"},
        "sql": {**section["sql"], "database": f"sqlite:///{database}", "generator": _generator(fake)},
    }
    recipe.write_text(yaml.safe_dump({"router": section}), encoding="utf-8")
    _script_engine(fake, "unused")
    router = load_router(str(recipe), store_dir=docs.folder.parent.parent)
    try:
        assert isinstance(router.vector, PipelineAnswerer) and router.mode == "rules"
        answer = router.ask("How many orders did ACME place?")
    finally:
        router.sql.close()  # type: ignore[union-attr]
    assert answer.route == "sql" and answer.answers["sql"].rows == [[1, "ACME", 10.0], [3, "ACME", 7.5]]
