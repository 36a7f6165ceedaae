"""What the agent machinery costs per step, beyond model and tool time (issue 11 target: < 1 ms).

A SCRIPTED in-process model (:class:`ragkit.agents.scripted.ScriptedGenerator`,
no model behind it) calls a no-op tool on every step, for ``--steps`` steps
(the step cap), then the forced answer ends the run. The agent records its
own model time (inside ``generator.generate``) and tool time (inside
``tool.call``: validation, the run, the timeout thread); the machinery is the
rest: prompts and messages, parsing (ReAct) or reading tool calls (native),
records, caps, source numbering, the trace. Per step = that rest divided by
the model calls of the run. Both protocols, ``--runs`` runs each, p50 and max.

    .venv/bin/python evaluation/benchmarks/agent_overhead_bench.py
    .venv/bin/python evaluation/benchmarks/agent_overhead_bench.py --steps 50 --runs 40 --out bench-out/steps/agent.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ragkit.agents.agent import Agent
from ragkit.agents.scripted import ScriptedGenerator
from ragkit.agents.tools import tool


@tool(timeout_s=None)
def noop(key: str = "x") -> str:
    """Do nothing and say so."""
    return "ok"


REACT_REPLY = 'Thought: call the tool again\nAction: noop\nAction Input: {"key": "x"}'
NATIVE_REPLY: dict[str, Any] = {"tool_calls": [{"name": "noop", "arguments": {"key": "x"}}]}


def one_run(mode: str, steps: int) -> dict[str, float]:
    """One capped run of ``steps`` tool steps; the machinery's seconds per model call."""
    reply: Any = REACT_REPLY if mode == "react" else NATIVE_REPLY
    final = "Final Answer: done" if mode == "react" else "done"
    generator = ScriptedGenerator([reply] * steps + [final], native=mode == "native")
    agent = Agent(generator=generator, tools=[noop], mode=mode, max_steps=steps, max_tool_calls=steps + 1)  # type: ignore[arg-type]
    began = time.perf_counter()
    result = agent.run("Call the tool until you are stopped.")
    wall = time.perf_counter() - began
    assert result.status == "capped" and result.cap == "steps", (result.status, result.cap)
    model_calls = len(result.steps)
    machinery = wall - result.timings["model"] - result.timings["tools"]
    return {
        "per_step_ms": 1000 * machinery / model_calls,
        "model_ms": 1000 * result.timings["model"] / model_calls,
        "tool_ms": 1000 * result.timings["tools"] / max(1, len(result.tool_calls)),
        "steps": float(model_calls),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="tool steps per run (the step cap)")
    parser.add_argument("--runs", type=int, default=30, help="runs per protocol")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"steps": args.steps, "runs": args.runs, "load_average": os.getloadavg()[0]}
    for mode in ("native", "react"):
        one_run(mode, 5)  # warm-up: imports, first schemas
        runs = [one_run(mode, args.steps) for _ in range(args.runs)]
        per_step = [r["per_step_ms"] for r in runs]
        results[mode] = {
            "per_step_ms_p50": statistics.median(per_step),
            "per_step_ms_max": max(per_step),
            "scripted_model_ms_p50": statistics.median(r["model_ms"] for r in runs),
            "noop_tool_ms_p50": statistics.median(r["tool_ms"] for r in runs),
        }
        print(
            f"{mode:6s}: agent machinery {results[mode]['per_step_ms_p50']:.3f} ms per step at p50 "
            f"(max {results[mode]['per_step_ms_max']:.3f} ms) over {args.runs} runs of {args.steps} steps; "
            f"excluded: scripted model {results[mode]['scripted_model_ms_p50']:.3f} ms, "
            f"no-op tool {results[mode]['noop_tool_ms_p50']:.3f} ms"
        )
    target_met = all(results[m]["per_step_ms_p50"] < 1.0 for m in ("native", "react"))
    print(f"target < 1 ms per step: {'met' if target_met else 'NOT met'} (load average {results['load_average']:.1f})")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
