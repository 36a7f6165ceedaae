"""The text-to-SQL benchmark script without a model: its arguments and the report from saved answers."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "evaluation" / "benchmarks"


def _bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("sql_bench_under_test", BENCH / "sql_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sql_bench = _bench()


def test_arguments_default_to_all_systems_and_the_qwen_model() -> None:
    args = sql_bench.parse_args([])
    assert args.systems.split(",") == ["ragkit", "langchain", "llamaindex"]
    assert args.models == "qwen-0.5b"
    assert args.limit is None and not args.resume and not args.report
    args = sql_bench.parse_args(["--models", "smollm2,qwen-1.5b", "--systems", "ragkit", "--limit", "5", "--resume"])
    assert (args.models, args.systems, args.limit, args.resume) == ("smollm2,qwen-1.5b", "ragkit", 5, True)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--systems", "ragkit,haystack"], "haystack"),
        (["--models", "gpt-5"], "gpt-5"),
        (["--systems", ""], "(none given)"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_arguments_stop_with_what_is_wrong(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        sql_bench.parse_args(argv)
    assert stopped.value.code == 2
    assert named in capsys.readouterr().err


def _answer(qid: str, kind: str, correct: bool, valid: bool = True, refused: bool = False, seconds: float = 2.0) -> str:
    row = {
        "id": qid,
        "kind": kind,
        "question": "?",
        "sql": None if refused else "SELECT 1",
        "text": "",
        "refused": refused,
        "error": "",
        "valid": valid,
        "correct": correct,
        "rows": 1,
        "seconds": seconds,
        "calls": 1,
        "prompt_tokens": 100,
        "completion_tokens": 20,
    }
    return json.dumps(row) + "\n"


def test_report_compares_systems_on_the_questions_all_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "qwen-0.5b"
    model.mkdir()
    (model / "summary.json").write_text(json.dumps({"model_name": "qwen2.5-coder-0.5b-instruct"}), encoding="utf-8")
    # ragkit answered q01-q03 (2 right), langchain q01-q02 (1 right, 1 refused): compared on q01-q02
    (model / "ragkit.jsonl").write_text(
        _answer("q01", "count", True) + _answer("q02", "count", True) + _answer("q03", "count", False),
        encoding="utf-8",
    )
    (model / "langchain.jsonl").write_text(
        _answer("q01", "count", True, seconds=4.0) + _answer("q02", "count", False, False, True, seconds=4.0),
        encoding="utf-8",
    )
    out = tmp_path / "sql.json"
    assert sql_bench.main(["--report", "--work", str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text(encoding="utf-8"))
    m = data["models"]["qwen-0.5b"]
    assert m["compared_on"] == 2
    ragkit = m["systems"]["ragkit"]
    assert (ragkit["accuracy"], ragkit["answered_in_all"], ragkit["refusals"]) == (1.0, 3, 0)
    assert m["systems"]["langchain"]["accuracy"] == 0.5
    assert m["systems"]["langchain"]["valid_sql"] == 0.5
    assert m["systems"]["langchain"]["refusals"] == 1
    assert "llamaindex" not in m["systems"]  # never run: no row
    lines = [line for line in printed.splitlines() if line.startswith("| qwen2.5-coder")]
    assert lines[0].startswith("| qwen2.5-coder-0.5b-instruct | ragkit | 2 (of 3 answered) | 1.000 |")
    assert "| 0.50x | 2.00x |" in lines[1]  # half ragkit's accuracy, twice its seconds
    assert "| count | 2 | 1.00 | 0.50 |" in printed


def test_report_with_nothing_saved_prints_an_empty_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sql_bench.main(["--report", "--work", str(tmp_path), "--out", str(tmp_path / "o.json")]) == 0
    assert json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))["models"] == {}
    assert len(capsys.readouterr().out.splitlines()) == 2  # the header and its rule only


# -- the agent-task runner ----------------------------------------------------------------


def _agent_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agent_bench_under_test", BENCH / "agent_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent_bench = _agent_bench()


def test_agent_answers_match_numbers_with_separators_tolerance_and_sign() -> None:
    match = agent_bench.answer_matches
    assert match("Los Angeles has 2,485,219 more people than San Diego [1].", 2485219)
    assert not match("Los Angeles has 2,485,218 more people.", 2485219, 0)
    assert match("The total times 1.2 is 4.75.", 4.752, 0.01)
    assert not match("The total times 1.2 is 4.8.", 4.752, 0.01)
    assert match("It is about 84.8 minutes long.", 84.8, 0.1)
    assert match("2010 brought in 19.77 less than 2009.", -19.77, 0.01)
    assert match("The difference is -19.77.", -19.77, 0.01)
    assert not match("Iron Maiden has 21 albums and Led Zeppelin 14.", 1.5)
    assert match("The answer is Rock.", "rock") and not match("Rockabilly", "rock")


def test_agent_tasks_all_parse_and_the_report_reads_saved_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = agent_bench.load_tasks()
    assert len(tasks) >= 15
    ok = {"status": "ok"}
    rows = [
        {"id": "a", "success": True, "status": "completed", "steps": 3, "calls": [ok, ok]},
        # three calls, but two failed (unknown tool): the task's minimum of 2 was not met
        {"id": "b", "success": False, "status": "capped", "steps": 9, "calls": [ok, {"status": "error"}, {}]},
    ]
    for row, seconds in zip(rows, (10, 30), strict=True):
        row.update(tool_calls=len(row["calls"]), min_tool_calls=2, seconds=seconds)
    (tmp_path / "agent-qwen-0.5b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # a --mode native run keeps its own file, and its rows say which protocol they ran
    native = {**rows[0], "protocol": "native", "steps": 2}
    (tmp_path / "agent-qwen-0.5b-native.jsonl").write_text(json.dumps(native) + "\n", encoding="utf-8")
    assert agent_bench.main(["--report", "--work", str(tmp_path), "--out", str(tmp_path / "a.json")]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("| qwen")]
    assert len(lines) == 2
    # rows from before the protocol was recorded ran ReAct (the local model had no native tool calls then)
    assert lines[0].startswith(
        f"| qwen2.5-coder-0.5b-instruct | react | 2/{len(tasks)} | 0.500 | 2.50 | 1.50 | 6.00 | 0.500 |"
    )
    assert "capped 1, completed 1" in lines[0]
    assert lines[1].startswith(
        f"| qwen2.5-coder-0.5b-instruct | native | 1/{len(tasks)} | 1.000 | 2.00 | 2.00 | 2.00 |"
    )
    assert agent_bench.results_path(tmp_path, "qwen-0.5b", "react").name == "agent-qwen-0.5b-react.jsonl"
    with pytest.raises(SystemExit):
        agent_bench.parse_args(["--models", "nope"])
