"""A rich progress display for suite runs (only on a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ragkit.evaluation.runner import ProgressCallback


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A ``progress(stage, done, total, errors)`` callback drawing one bar per stage on stderr.

    Yields ``None`` (no display) when ``enabled`` is false or stderr is not a terminal.
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[errors]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int, errors: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None, errors="")
            label = f"[red]{errors} errors" if errors else ""
            bar.update(tasks[stage], completed=done, total=total or None, errors=label)

        yield update
