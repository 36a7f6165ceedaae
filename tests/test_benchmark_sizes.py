"""``run_all.py --size NAME=VALUE``: one size of the mode overridden, the service step's sizes passed on.

The smoke test (tests/test_benchmarks_smoke.py) relies on these to run ``--quick`` smaller still;
here they are checked without running a benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "evaluation" / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import common  # noqa: E402
import run_all  # noqa: E402


def _args(*sizes: str, quick: bool = True) -> argparse.Namespace:
    return argparse.Namespace(quick=quick, size=list(sizes))


def test_a_size_overrides_the_modes_value_and_leaves_the_others():
    sizes = run_all.mode_sizes(_args("questions=10", "eval_documents=none", "eval_overhead_sizes=all"))
    assert sizes["questions"] == 10 and sizes["eval_documents"] is None and sizes["eval_overhead_sizes"] == "all"
    untouched = {k: v for k, v in sizes.items() if k not in ("questions", "eval_documents", "eval_overhead_sizes")}
    assert untouched == {k: v for k, v in run_all.QUICK.items() if k in untouched}
    assert run_all.mode_sizes(_args("store_n=5", quick=False))["store_n"] == 5
    assert run_all.QUICK["questions"] == 50  # the mode's own table is not changed


def test_a_service_size_is_not_the_runners_and_an_unknown_name_is_refused():
    assert run_all.mode_sizes(_args("service.soak_requests=40")) == run_all.QUICK
    with pytest.raises(SystemExit, match="no_such_size=1: expected NAME=VALUE with NAME one of questions"):
        run_all.mode_sizes(_args("no_such_size=1"))
    with pytest.raises(SystemExit, match="questions: expected NAME=VALUE"):
        run_all.mode_sizes(_args("questions"))


def test_mapping_sizes_read_as_key_value_pairs():
    sizes = common.override_sizes({"ask_requests": {1: 1, 8: 2, 32: 2}}, ["ask_requests=1:1,8:1,32:1"], "--size")
    assert sizes == {"ask_requests": {1: 1, 8: 1, 32: 1}}
    with pytest.raises(SystemExit, match="ask_requests=KEY:VALUE"):
        common.override_sizes({"ask_requests": {1: 1}}, ["ask_requests=many"], "--size")


class _Runner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def run(self, name: str, script: str, args: list[str]) -> dict:
        self.calls.append((name, script, args))
        return {"step": name}


def test_the_service_step_gets_its_sizes_and_the_command_shows_every_override(tmp_path):
    runner = _Runner()
    results: dict = {}
    args = _args("questions=10", "service.soak_requests=40", "service.ask_requests=1:1,8:1,32:1")
    run_all.run_service(runner, results, tmp_path / "data", tmp_path / "work", args)  # type: ignore[arg-type]
    [(name, script, step)] = runner.calls
    assert (name, script, results["service"]) == ("service", "service_bench.py", {"step": "service"})
    passed = step[step.index("--quick") :]
    assert passed == ["--quick", "--size", "soak_requests=40", "--size", "ask_requests=1:1,8:1,32:1"]
    shown = run_all._command(argparse.Namespace(quick=True, only="service", size=args.size))
    assert shown == (
        "python evaluation/benchmarks/run_all.py --quick --only service --size questions=10 "
        "--size service.soak_requests=40 --size service.ask_requests=1:1,8:1,32:1"
    )
    without = run_all._command(argparse.Namespace(quick=True, only=None, size=[]))
    assert without == "python evaluation/benchmarks/run_all.py --quick"  # as before: the page's command unchanged
