"""``ragkit agent QUESTION --pipeline NAME``: run an agent recipe from the command line.

Only typer is imported at start-up; the agent, its model and its tools load
when the command runs. On a terminal (and in a pipe alike) the steps are
printed as they happen (thought, each tool call, its observation), then the
answer and its sources; ``--json`` prints the whole result, trace included.
A call that needs approval is asked about on a terminal (y/N); elsewhere the
pending calls and the resumable state are printed and the command exits 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ragkit.cli_support import run_action

NEEDS_APPROVAL_EXIT = 3
"""Exit code of a run that stopped for approval without a terminal to ask on."""


def agent(
    question: Annotated[str, typer.Argument(help="The question.")],
    pipeline: Annotated[
        str, typer.Option("--pipeline", "-p", help="Agent recipe name or YAML file with an 'agent:' section.")
    ] = "agent",
    tools: Annotated[
        list[str] | None,
        typer.Option("--tools", "-t", help="Tools to use instead of the recipe's (repeat, or comma-separated)."),
    ] = None,
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="The collection the search and ask tools read.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Most model steps.")] = None,
    store_dir: Annotated[
        Path | None,
        typer.Option("--store-dir", envvar="RAGKIT_HOME", help="Where collections live (default ~/.ragkit)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON, trace included.")] = False,
) -> None:
    """Answer a question with an agent: a model that calls tools (search, calculator ...) until it can answer."""

    def action() -> None:
        from ragkit.agents.agent import Agent
        from ragkit.agents.recipe import agent_config

        names = [name.strip() for item in tools or [] for name in item.split(",") if name.strip()]
        config = agent_config(pipeline, home=store_dir, tools=names or None, collection=collection, max_steps=max_steps)
        runner = Agent.from_config(config)
        if as_json:
            result = runner.run(question)
            typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
            if result.status == "needs_approval":
                raise typer.Exit(NEEDS_APPROVAL_EXIT)
            return
        result = _show(runner.stream(question))
        while result is not None and result.status == "needs_approval":
            if not sys.stdin.isatty():
                typer.echo("state (resume with Agent.resume or the REST route):", err=True)
                typer.echo(result.state or "")
                raise typer.Exit(NEEDS_APPROVAL_EXIT)
            decisions = {p.id: _ask(p) for p in result.pending}
            result = _show(runner.resume_stream(result.state or "", decisions))

    run_action(action)


def _ask(pending: Any) -> str:
    arguments = json.dumps(pending.arguments, ensure_ascii=False)
    return "approve" if typer.confirm(f"Allow {pending.tool}({arguments})?", default=False) else "deny"


def _show(events: Any) -> Any:
    """Print a run's events as they come; the result at its end."""
    result = None
    streaming = False
    for event in events:
        data = event.data
        if event.type == "step":
            forced = data.get("forced")
            label = f"step {data['number']}" + (
                f" (the {forced} cap was reached: answering without tools)" if forced else ""
            )
            typer.secho(label, dim=True, err=True)
        elif event.type == "thought":
            typer.secho(f"  thought: {_short(data['text'])}", dim=True, err=True)
        elif event.type == "tool_call":
            arguments = json.dumps(data["arguments"], ensure_ascii=False)
            typer.secho(f"  → {data['tool']}({_short(arguments)})", err=True)
        elif event.type == "observation":
            mark = "←" if data["status"] == "ok" else "✗"
            typer.secho(f"  {mark} {_short(data['content'])}", dim=True, err=True)
        elif event.type == "token":
            streaming = True
            sys.stdout.write(data["text"])
            sys.stdout.flush()
        elif event.type == "approval_required":
            for call in data["pending"]:
                arguments = json.dumps(call["arguments"], ensure_ascii=False)
                typer.echo(f"needs approval: {call['tool']}({arguments}) [call {call['id']}]", err=True)
        elif event.type == "done":
            result = event.result
            if result is not None and result.status != "needs_approval":
                _print_answer(result, streaming)
    return result


def _print_answer(result: Any, streamed: bool) -> None:
    if not streamed:
        typer.echo(result.answer)
    else:
        typer.echo("")
    if result.citations:
        label = "Sources (inferred: the answer cites none)" if all(c.inferred for c in result.citations) else "Sources"
        typer.echo(f"\n{label}:")
        for citation in result.citations:
            typer.echo(f"  [{citation.number}] {citation.location}")
    status = result.status
    if result.cap:
        status += f" ({result.cap} cap)"
    if result.error:
        status += f": {result.error}"
    calls = len(result.tool_calls)
    typer.secho(
        f"\n{status}; {len(result.steps)} steps, {calls} tool calls, {result.usage.total_tokens} tokens, "
        f"{result.timings.get('total', 0.0):.1f} s",
        dim=True,
        err=True,
    )


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
