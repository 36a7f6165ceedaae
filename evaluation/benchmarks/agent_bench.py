"""Agent tasks: questions that need two or more tool calls (look up, then compute or compare), per model.

The tasks are ``evaluation/datasets/agent_tasks.yaml``: SQL look-ups on the
Chinook database (built by ``evaluation/datasets/chinook/build.py``) and
searches over the squad-dev articles, each followed by arithmetic. Each
task runs ``ragkit.agents.Agent(generator=..., tools=[...]).run(question)``
with the tools the task lists:

- ``sql``: ``ragkit_sql.SQLTool`` over the Chinook database (read-only URL), with the same model;
- ``search``: the built-in ``search`` tool over a collection of the squad-dev articles made with
  ``pipelines/default.yaml`` (ingested once into the work folder);
- ``calculator``: the built-in calculator.

The agent's caps are ``pipelines/agent.yaml``'s (8 steps, 16 tool calls, 300 s,
256 tokens a step). A task succeeds when the final answer holds the
expected number (within the task's tolerance, default 0.5%; thousands
separators allowed; a negative answer may be written as its size) or the
expected words. Per model: success rate, tool calls and model steps per
task (mean; also the calls that ran without error), the share of runs that
made at least the task's ``min_tool_calls`` calls that ran, statuses (completed, capped, failed) and seconds per
task.

``--mode`` picks the agent's protocol: ``auto`` (the recipe's: native tool
calls where the model has them, as the packaged Qwen models do through their
chat template; ReAct for SmolLM2), ``react`` or ``native``. Each result is
appended to ``<work>/agent-<model>.jsonl`` (``agent-<model>-<mode>.jsonl``
for ``react`` and ``native``), with the protocol the run used; ``--resume``
keeps them and goes on.

    .venv/bin/python evaluation/benchmarks/agent_bench.py --models qwen-0.5b --limit 3
    .venv/bin/python evaluation/benchmarks/agent_bench.py --models qwen-0.5b,smollm2 --resume
    .venv/bin/python evaluation/benchmarks/agent_bench.py --report --models qwen-0.5b,smollm2
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log
from sql_bench import CHINOOK, DEFAULT_WORK, MODELS, load_module, readonly_url

TASKS = common.REPO / "evaluation" / "datasets" / "agent_tasks.yaml"
DEFAULT_OUT = common.REPO / "bench-out" / "steps" / "agents.json"
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
DEFAULT_TOLERANCE = 0.005
"""Relative tolerance of a numeric answer when the task gives none."""


CAPS = ("mode", "max_steps", "max_tool_calls", "max_tokens", "max_seconds", "step_max_tokens")
"""The options taken from ``pipelines/agent.yaml``'s agent."""


def saved(path: Path) -> list[dict[str, Any]]:
    """The results saved in ``path`` (none when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_tasks(path: Path = TASKS) -> list[dict[str, Any]]:
    """The tasks of ``agent_tasks.yaml``, in file order."""
    import yaml

    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["tasks"])


def numbers_in(text: str) -> list[float]:
    """Every number written in ``text`` (``2,485,219`` is one number)."""
    found = []
    for match in NUMBER.findall(text):
        try:
            found.append(float(match.replace(",", "")))
        except ValueError:
            continue
    return found


def answer_matches(text: str, expected: Any, tolerance: float | None = None) -> bool:
    """Whether ``text`` states ``expected``: a number within ``tolerance`` (absolute; default 0.5% of it), or words."""
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        words = re.escape(str(expected).strip().lower())
        return re.search(rf"(?<!\w){words}(?!\w)", text.lower()) is not None
    allowed = tolerance if tolerance is not None else max(abs(float(expected)) * DEFAULT_TOLERANCE, 1e-9)
    targets = {float(expected), abs(float(expected))}
    return any(math.isclose(n, t, rel_tol=0, abs_tol=allowed + 1e-9) for n in numbers_in(text) for t in targets)


def collection(work: Path) -> Path:
    """The store folder holding the ``squad`` collection of every squad-dev article (made once)."""
    import yaml

    from ragkit import Collection

    store = work / "agent-store"
    store.mkdir(parents=True, exist_ok=True)
    if "squad" in Collection.names(store):
        return store
    documents = common.dataset_dir() / "documents"
    recipe = yaml.safe_load((common.REPO / "pipelines" / "default.yaml").read_text(encoding="utf-8"))
    made = Collection.create("squad", {**recipe["collection"], "embedding_cache": False}, store_dir=store)
    log(f"ingesting {documents}")
    report = made.ingest([documents])
    made.close()
    if report.failed:
        raise SystemExit(f"ingest failed: {report.failed}")
    log(f"{report.chunks_written} chunks")
    return store


def tools_for(task: dict[str, Any], generator: Any, database: Path, store: Path | None) -> list[Any]:
    """The task's tools, built with ``generator`` where one needs a model."""
    from ragkit_sql import SQLTool

    from ragkit.agents.tools import build_tools

    made: list[Any] = []
    for name in task["tools"]:
        if name == "sql":
            made.append(SQLTool(database=readonly_url(database), generator=generator, name="sql"))
        elif name == "search":
            made += build_tools([{"type": "search", "collection": "squad", "home": str(store), "top_k": 4}])
        else:
            made += build_tools([name])
    return made


def run_model(args: argparse.Namespace, model: str) -> None:
    """Every task with ``model`` (in this process), appended to ``<work>/agent-<model>.jsonl`` as it comes."""
    import torch
    import yaml

    from ragkit import registry
    from ragkit.agents.agent import Agent

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    build = load_module("chinook_build", CHINOOK / "build.py")
    database = build.ensure(work=work)
    tasks = load_tasks()[: args.limit]
    path = results_path(work, model, args.mode)
    keep = (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        if args.resume and path.is_file()
        else []
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    done = {r["id"] for r in keep}
    todo = [t for t in tasks if t["id"] not in done]
    if not todo:
        log(f"{model}: nothing left to run")
        return
    store = collection(work) if any("search" in t["tools"] for t in todo) else None
    recipe = yaml.safe_load((common.REPO / "pipelines" / "agent.yaml").read_text(encoding="utf-8"))["agent"]
    caps = {
        k: recipe[k] for k in ("mode", "max_steps", "max_tool_calls", "max_tokens", "step_max_tokens") if k in recipe
    }
    if args.mode != "auto":
        caps["mode"] = args.mode
    config = {**MODELS[model], "threads": args.threads}
    generator = registry.build("generator", config)
    log(f"{model}: loading {config['model']}")
    started = time.perf_counter()
    generator.load()
    log(f"{model}: loaded in {time.perf_counter() - started:.1f} s; {len(todo)} tasks to run")
    wins = sum(bool(r["success"]) for r in keep)
    began = time.perf_counter()
    for index, task in enumerate(todo, start=1):
        agent = Agent(generator=generator, tools=tools_for(task, generator, database, store), **caps)
        protocol = agent.resolved_mode
        started = time.perf_counter()
        try:
            result = agent.run(task["question"])
            text, status, error = result.answer, result.status, result.error
            calls = [{"tool": c.tool, "arguments": c.arguments, "status": c.status} for c in result.tool_calls]
            steps = len(result.steps)
        except Exception as exc:  # a crash is a result too: counted as failed, with its reason
            text, status, error, calls, steps = "", "crashed", f"{type(exc).__name__}: {exc}"[:400], [], 0
        seconds = time.perf_counter() - started
        success = answer_matches(text, task["answer"], task.get("tolerance"))
        row = {
            "id": task["id"],
            "question": task["question"],
            "expected": task["answer"],
            "answer": text[:500],
            "success": success,
            "status": status,
            "error": error,
            "steps": steps,
            "tool_calls": len(calls),
            "min_tool_calls": task["min_tool_calls"],
            "calls": calls,
            "seconds": round(seconds, 2),
            "protocol": protocol,
        }
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        wins += int(success)
        log(
            f"{model} ({protocol}) {index}/{len(todo)} {task['id']}: {'success' if success else 'no'} "
            f"({status}, {len(calls)} calls, "
            f"{seconds:.0f} s; {wins}/{len(keep) + index} so far; elapsed {(time.perf_counter() - began) / 60:.1f} min)"
        )


def results_path(work: Path, model: str, mode: str) -> Path:
    """Where ``model``'s results under ``--mode mode`` go (``auto``: the recipe's own mode)."""
    return work / (f"agent-{model}.jsonl" if mode == "auto" else f"agent-{model}-{mode}.jsonl")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate, calls, steps, statuses and seconds over ``rows``."""
    n = len(rows)
    ok = [sum(1 for c in r.get("calls", []) if c.get("status") == "ok") for r in rows]
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return {
        "tasks": n,
        "success": round(sum(bool(r["success"]) for r in rows) / n, 4) if n else 0.0,
        "tool_calls_per_task": round(sum(r["tool_calls"] for r in rows) / n, 2) if n else 0.0,
        "steps_per_task": round(sum(r["steps"] for r in rows) / n, 2) if n else 0.0,
        "ok_tool_calls_per_task": round(sum(ok) / n, 2) if n else 0.0,
        "enough_calls": round(sum(k >= r["min_tool_calls"] for k, r in zip(ok, rows, strict=True)) / n, 4)
        if n
        else 0.0,
        "statuses": statuses,
        "seconds_per_task": round(sum(r["seconds"] for r in rows) / n, 1) if n else 0.0,
    }


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Each model's summary over the tasks it ran; to ``--out``."""
    work = Path(args.work)
    models = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        for mode in ("auto", "react", "native"):
            rows = saved(results_path(work, model, mode))
            if rows:
                protocols = sorted({row.get("protocol", "react") for row in rows})
                models[f"{model}:{mode}"] = {"model": model, "protocol": "/".join(protocols), **summarise(rows)}
    data = {"date": time.strftime("%Y-%m-%d"), "machine": common.machine(), "of": len(load_tasks()), "models": models}
    common.write_json(Path(args.out), data)
    return data


def table(data: dict[str, Any]) -> str:
    """Markdown: one row per model."""
    lines = [
        "| model | protocol | tasks run | success | tool calls/task | of them ok | model steps/task "
        "| made min. ok calls | statuses | s/task |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in data["models"].values():
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(s["statuses"].items()))
        lines.append(
            f"| {MODELS[s['model']]['model']} | {s['protocol']} | {s['tasks']}/{data['of']} | {s['success']:.3f} "
            f"| {s['tool_calls_per_task']:.2f} | {s['ok_tool_calls_per_task']:.2f} "
            f"| {s['steps_per_task']:.2f} | {s['enough_calls']:.3f} | {statuses} | {s['seconds_per_task']:.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parsed and checked arguments."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--models", default="qwen-0.5b", help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--limit", type=int, help="only the first N tasks")
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="the database, the collection and the results")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the results file")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--mode",
        choices=("auto", "react", "native"),
        default="auto",
        help="the agent's protocol (auto: pipelines/agent.yaml's, native tool calls where the model has them)",
    )
    parser.add_argument("--resume", action="store_true", help="keep the results saved before and go on")
    parser.add_argument("--report", action="store_true", help="only print the table of the saved results")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m.strip() and m.strip() not in MODELS]
    if unknown or not args.models.strip():
        parser.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(MODELS)}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit: must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run each chosen model in its own process, then print the table."""
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
