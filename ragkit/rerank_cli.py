"""``ragkit rerank``: train a cross-encoder reranker on a question set over a collection.

::

    ragkit rerank train -c squad --questions questions.jsonl --format squad-dev --out my-reranker --max-minutes 10

The trainer belongs to the ``cross-encoder`` reranker (the
``ragkit-sentence-transformers`` connector); this module finds it through
the registry and never imports the connector, so ``ragkit --help`` stays
fast and the core stays light. Errors print as one line and exit non-zero,
as in :mod:`ragkit.cli`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ragkit.cli_support import CommandGroup, run_action

rerank_app = typer.Typer(
    cls=CommandGroup,
    help="Rerankers: train a cross-encoder on your questions and documents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


@rerank_app.callback()
def _group() -> None:
    """Rerankers: train a cross-encoder on your questions and documents."""


def _run(action: Callable[[], T]) -> T:
    """Run ``action``, turning ragkit errors into one line on stderr and an exit code."""
    return run_action(action, "interrupted; nothing was saved")


def find_trainer(reranker: str = "cross-encoder") -> Callable[..., Any]:
    """The ``train`` classmethod of reranker type ``reranker``, found through the registry."""
    from ragkit import registry
    from ragkit.errors import ConfigError, MissingDependencyError, NotFoundError

    try:
        cls = registry.get("reranker", reranker)
    except NotFoundError:
        raise MissingDependencyError(f"training the {reranker!r} reranker", "ragkit-sentence-transformers") from None
    train = getattr(cls, "train", None)
    if not callable(train):
        raise ConfigError(f"reranker {reranker!r} cannot be trained (it has no train method)")
    return train  # type: ignore[no-any-return]


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress bar on a terminal; on a pipe, a line on stderr every tenth of each phase."""
    if not enabled:
        yield None
        return
    labels = {"candidates": "retrieving candidates", "train": "training steps", "evaluate": "scoring held-out"}
    if not sys.stderr.isatty():
        shown: dict[str, int] = {}

        def log(stage: str, done: int, total: int) -> None:
            tenth = done * 10 // max(total, 1)
            if shown.get(stage, -1) < tenth:
                shown[stage] = tenth
                typer.echo(f"{labels.get(stage, stage)}: {done}/{total}", err=True)

        yield log
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield update


@rerank_app.command("train")
def train(
    collection: Annotated[str, typer.Option("--collection", "-c", help="The collection the questions are about.")],
    questions: Annotated[Path, typer.Option("--questions", help="Questions file (JSON lines).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for the trained reranker (new or empty); default <store>/rerankers/default, which "
            "recipes name as 'model: default'.",
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Questions format: ragkit or squad-dev.")] = "ragkit",
    documents: Annotated[
        Path | None,
        typer.Option(
            "--documents",
            help="The folder the collection ingested; gold-span sources are relative to it "
            "(default: the questions' folder; squad-dev: its documents/ folder).",
        ),
    ] = None,
    sample: Annotated[int | None, typer.Option("--sample", min=1, help="Use this many questions (seeded).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")] = None,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", min=0.01, help="Stop training after this many minutes.")
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs", min=0.01, help="Passes over the training pairs.")] = 1.0,
    held_out: Annotated[
        float, typer.Option("--held-out", min=0.0, max=0.9, help="Share of questions kept out to measure.")
    ] = 0.2,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Pairs per training step.")] = 16,
    candidates: Annotated[int, typer.Option("--candidates", min=2, help="Candidates retrieved per question.")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the sample, split and training.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    store_dir: Annotated[
        Path | None,
        typer.Option("--store-dir", envvar="RAGKIT_HOME", help="Where collections live (default ~/.ragkit)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train a cross-encoder reranker; prints held-out hit@1 / MRR before and after reranking."""

    def action() -> None:
        from ragkit.collection import Collection
        from ragkit.errors import InputError

        if format not in ("ragkit", "squad-dev"):
            raise InputError(f"--format must be 'ragkit' or 'squad-dev', got {format!r}")
        trainer = find_trainer()
        from ragkit.collection import HomeLayout

        target = out if out is not None else HomeLayout.of(store_dir).rerankers / "default"
        started = time.perf_counter()
        with Collection.open(collection, store_dir) as col, _progress(not as_json) as progress:
            report = trainer(
                collection=col,
                questions=questions,
                out_dir=target,
                format=format,
                documents_dir=documents,
                sample=sample,
                held_out=held_out,
                candidates=candidates,
                max_steps=max_steps,
                max_minutes=max_minutes,
                epochs=epochs,
                batch_size=batch_size,
                seed=seed,
                device=device,
                progress=progress,
            )
        data: dict[str, Any] = report.to_dict()
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        before, after = data["before"], data["after"]
        stopped = " (stopped by --max-minutes)" if data["stopped_by_time"] else ""
        typer.echo(
            f"trained {data['steps']} steps on {data['pairs']} pairs from {data['train_questions']} questions "
            f"in {time.perf_counter() - started:.0f} s{stopped}"
        )
        typer.echo(f"held-out questions: {data['held_out_questions']} (never trained on)")
        for name, key in (("hit@1", "hit_at_1"), ("hit@5", "hit_at_5"), ("MRR", "mrr")):
            typer.echo(f"  {name:<6} {before[key]:.3f} (retrieval order) -> {after[key]:.3f} (reranked)")
        typer.echo(f"saved to {data['out_dir']}")
        typer.echo(f"use it: {{type: cross-encoder, model: {data['out_dir']}}}")

    _run(action)
